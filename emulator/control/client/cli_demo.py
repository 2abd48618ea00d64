"""``vcard demo``: the removal demo (emulator/demo/), wired into the CLI.

``vcard demo`` runs the application against a reader, with the keyboard; pull
and insert the card from another terminal (``vcard remove`` / ``vcard insert``).
``vcard demo --script`` plays the show with no keyboard and exits 0 when every
step happened as it should (1 otherwise, with one line saying which step).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from typing import Any

from emulator.control.client import cli_args

__all__ = ["DemoUsageError", "add_demo_parser", "run_demo"]


class DemoUsageError(Exception):
    """A demo option that cannot work here (the CLI exits 2)."""


def _pace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"--pace must be seconds from 0 to 60 (e.g. 1.5), got {text!r}")
    return value


def add_demo_parser(sub: Any, *, common: argparse.ArgumentParser) -> None:
    demo = sub.add_parser(
        "demo",
        help="a PC/SC application that unlocks with the card and locks when it is pulled",
        description="A real PC/SC application beside the card: it waits for the card, asks for the PIN, proves "
        "the 9A key by signing a fresh challenge, shows 'session unlocked', and locks the moment pcscd reports "
        "the card gone. --script plays a show with no keyboard (starting a private stack if none runs).",
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes:\n  0   done (--script: every step happened)\n  1   a step failed or the stack refused\n"
        "  2   usage error\n  70  a bug in vcard",
    )
    demo.add_argument(
        "--script",
        action="store_true",
        help="play the scripted show: insert, unlock, pull "
        "mid-signature, re-insert, unlock again; then print a summary",
    )
    demo.add_argument(
        "--slot",
        type=cli_args.slot,
        default=None,
        help="the vpcd slot whose reader the app watches (default: 0; --script: the first empty slot)",
    )
    demo.add_argument("--reader", help="any PC/SC reader by name instead of a vpcd slot (not with --script)")
    demo.add_argument(
        "--pace", type=_pace, default=1.5, help="--script: seconds each key moment stays on screen (default: 1.5)"
    )
    demo.add_argument("--plain", action="store_true", help="print one line per event instead of the live view")
    demo.add_argument("--log", type=argparse.FileType("w"), help="also write the event lines to this file")


def run_demo(vc: Any, args: argparse.Namespace) -> int:
    from emulator.demo.runner import run_interactive, run_script
    from emulator.demo.script import demo_card
    from minidriver.pcsc import PcscError

    if args.script and args.reader:
        raise DemoUsageError("--reader is for the interactive demo; --script uses a vpcd slot (--slot N)")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # a closed terminal or a kill: stop what the demo started, as on Ctrl-C

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    try:
        if args.script:
            card = demo_card(vc, slot=args.slot)
            try:
                result = run_script(card, pace=args.pace, plain=args.plain, log=args.log)
            finally:
                card.cleanup()
            for line in result.summary():
                print(line, flush=True)
            return 0 if result.ok else 1
        if not sys.stdin.isatty() or not sys.stdout.isatty():
            raise DemoUsageError("the interactive demo needs a terminal; without one use: vcard demo --script")
        if args.reader:
            run_interactive(args.reader)
        else:
            slot = args.slot or 0
            run_interactive(vc.reader_name(slot), client=vc.client, slot=slot)
        return 0
    except PcscError as exc:
        print(f"vcard: demo: {exc} (is the stack up? vcard status)", file=sys.stderr)
        return 1
    finally:
        if args.log is not None:
            args.log.close()
