"""``vcard trace``: what crossed the wire, as a table for people or JSON lines for machines.

Secrets (declared in each applet's command table) stay redacted unless
``--reveal`` is given; the daemon logs every reveal with the asker's uid.
"""

from __future__ import annotations

import argparse
import json
import sys

from emulator.control import messages
from emulator.control.client import cli_args
from emulator.control.client.api import VCard
from emulator.trace import TraceEvent, format_event

__all__ = ["DEFAULT_LAST", "add_trace_parser", "run_trace"]

#: events shown without --last
DEFAULT_LAST = 50


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"--last must be a number of events (0 or more), got {text!r}")
    return int(text)


def add_trace_parser(sub: argparse._SubParsersAction, *, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "trace",
        help="the APDUs, card events and fault hits of the recent past (or --follow them)",
        parents=[common],
        description="Every command and response with slot, channel, applet, INS and SW names, duration and "
        "secure messaging level; card insert/remove/reset/power; faults that fired. Secret data "
        "(PINs, keys, cryptograms) is redacted unless --reveal (the daemon logs the reveal).",
    )
    p.add_argument("--slot", type=cli_args.slot, default=None, help="only this slot (default: all)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    p.add_argument("--json", action="store_true", help="one JSON object per line (machine-readable)")
    p.add_argument("--reveal", action="store_true", help="show secret data (logged by the daemon)")
    p.add_argument(
        "--last", type=_count, default=None, help=f"the last N events (default: {DEFAULT_LAST}; with --follow: 0)"
    )


def _print(event: TraceEvent, as_json: bool) -> None:
    if as_json:
        print(json.dumps(messages.encode_event(event), sort_keys=True))
    else:
        print(format_event(event))


def run_trace(vc: VCard, args: argparse.Namespace) -> int:
    if args.reveal:
        print("vcard: --reveal: secret data is shown; do not share this output", file=sys.stderr)
    if not args.follow:
        last = DEFAULT_LAST if args.last is None else args.last
        for event in vc.trace(args.slot, last=last, reveal=args.reveal):
            _print(event, args.json)
        return 0
    with vc.subscribe(args.slot, last=args.last or 0, reveal=args.reveal) as stream:
        try:
            for event in stream:
                _print(event, args.json)
                sys.stdout.flush()
        except KeyboardInterrupt:  # the usual end of --follow
            return 0
    print("vcard: the daemon ended the trace stream", file=sys.stderr)
    return 1
