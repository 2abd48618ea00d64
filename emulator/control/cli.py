"""The `vcard` command: the only place that prints or picks exit codes.

Exit codes: 0 done, 1 operational failure (one line saying what to do),
2 usage error, 70 a bug (traceback only with -v).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .api import DaemonNotRunning, StackError, Status, VCard
from .cli_keys import KeysUsageError, add_keys_parser, run_keys, status_registry_lines
from .client import RequestFailed
from .doctor import run_doctor
from .paths import pcscd_client_env
from .pcsc import PcscError

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 70


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _slot(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--slot must be a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--slot must be 0 or more, got {value}")
    return value


def build_parser() -> Parser:
    parser = Parser(prog="vcard", description="A virtual smart card behind the real pcscd.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    parser.add_argument("--runtime-dir", help="the stack's runtime directory (default: /run/vcard for root)")
    parser.add_argument("--state-dir", help="where card state files live (default: /var/lib/vcard for root)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    up = sub.add_parser("up", help="start pcscd (if needed), the daemon and a card in slot 0")
    up.add_argument("--profile", help="built-in profile name or .toml path for the card (default: default)")
    up.add_argument("--private", action="store_true", help="pcscd with its own socket (set PCSCLITE_CSOCK_NAME)")
    up.add_argument("--vpcd-listen-any", action="store_true", help="allow vpcd on 0.0.0.0 if no namespace can be made")
    up.add_argument("--no-card", action="store_true", help="start with both slots empty")
    up.add_argument("--trace", action="store_true", help="daemon logs APDUs (secrets redacted)")

    sub.add_parser("down", help="stop the daemon and the pcscd that vcard started")
    sub.add_parser("status", help="readers, slots, cards, profiles and state files")
    sub.add_parser("doctor", help="check pcscd, vpcd, ports and permissions; say how to fix each")

    ins = sub.add_parser("insert", help="insert a card into a slot")
    ins.add_argument("--slot", type=_slot, default=0)
    ins.add_argument("--profile", help="built-in profile name or .toml path (default: default)")
    ins.add_argument("--fresh", action="store_true", help="a new card from the profile; the old state is set aside")
    ins.add_argument("--wait", action="store_true", help="return once pcscd reports the card")
    ins.add_argument("--timeout", type=float, default=5.0)

    rem = sub.add_parser("remove", help="pull the card out of a slot")
    rem.add_argument("--slot", type=_slot, default=0)
    rem.add_argument("--wait", action="store_true", help="return once pcscd reports the card gone")
    rem.add_argument("--timeout", type=float, default=5.0)

    add_keys_parser(sub)
    return parser


def _print_status(status: Status) -> None:
    info = status.stack
    if info is None:
        print("pcscd:  not started by vcard")
    else:
        where = {
            "netns": "own network namespace (vpcd on loopback only)",
            "host": "this network namespace",
            "external": "started outside vcard",
        }[info.mode]
        print(
            f"pcscd:  pid {info.pcscd_pid} ({where}), socket {info.pcscd_socket}{'' if info.alive else ' - NOT RUNNING'}"
        )
    if not status.running:
        print("daemon: not running (start it: vcard up)")
        return
    print(f"daemon: pid {status.daemon_pid}")
    for s in status.slots:
        reader = s.reader or "(no reader in pcscd)"
        if s.present:
            link = "" if s.vpcd_connected else " [waiting for vpcd]"
            print(f"slot {s.slot}: {reader}: card present, profile {s.profile}, state {s.state_file}{link}")
        else:
            print(f"slot {s.slot}: {reader}: empty")


def _cmd_up(vc: VCard, args: argparse.Namespace) -> int:
    status = vc.up(
        profile=args.profile,
        private=args.private,
        listen_any=args.vpcd_listen_any,
        insert=not args.no_card,
        verbose=args.verbose,
        trace=args.trace,
    )
    _print_status(status)
    needed = pcscd_client_env(status.stack.pcscd_socket if status.stack else None)
    env = "".join(f"{k}={v} " for k, v in needed.items())
    me = _prog()
    print("\nTry:")
    print(f"  {env}pcsc_scan -c                 # the card as every PC/SC application sees it (pcsc_scan: watch events)")
    print(f"  {env}opensc-tool -l -a -n")
    print(f"  {me} remove --wait; {me} insert --wait   # pull the card and put it back")
    print(f"  {me} status; {me} down")
    return EXIT_OK


def _prog() -> str:
    """How the user reaches this command: `vcard` if it is on PATH, else its path."""
    import os
    import shutil

    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "vcard" and shutil.which("vcard") == os.path.abspath(argv0):
        return "vcard"
    if os.path.basename(argv0) == "vcard":
        return os.path.relpath(argv0) if not os.path.relpath(argv0).startswith("../..") else argv0
    return "vcard"


def _cmd_down(vc: VCard, args: argparse.Namespace) -> int:
    print("stopped" if vc.down() else "nothing was running")
    return EXIT_OK


def _cmd_status(vc: VCard, args: argparse.Namespace) -> int:
    status = vc.status()
    _print_status(status)
    if status.running:
        try:  # GET STATUS needs a secure channel; status must work without one
            for line in status_registry_lines(status):
                print(line)
        except PcscError as exc:
            print(f"registry: unavailable: {exc}")
    return EXIT_OK if status.running else EXIT_FAILURE


def _cmd_insert(vc: VCard, args: argparse.Namespace) -> int:
    reply = vc.insert(args.slot, profile=args.profile, fresh=args.fresh, wait=args.wait, timeout=args.timeout)
    print(f"slot {reply['slot']}: inserted card (profile {reply['profile']}, state {reply['state_file']})")
    if reply.get("set_aside"):
        print(f"previous state set aside as {reply['set_aside']}")
    return EXIT_OK


def _cmd_remove(vc: VCard, args: argparse.Namespace) -> int:
    reply = vc.remove(args.slot, wait=args.wait, timeout=args.timeout)
    print(f"slot {reply['slot']}: card removed")
    return EXIT_OK


def _cmd_doctor(vc: VCard, args: argparse.Namespace) -> int:
    return EXIT_OK if run_doctor(vc) else EXIT_FAILURE


def _cmd_keys(vc: VCard, args: argparse.Namespace) -> int:
    try:
        return run_keys(vc, args)
    except KeysUsageError as exc:
        raise UsageError(str(exc)) from None


COMMANDS: dict[str, Callable[[VCard, argparse.Namespace], int]] = {
    "up": _cmd_up,
    "down": _cmd_down,
    "status": _cmd_status,
    "insert": _cmd_insert,
    "remove": _cmd_remove,
    "doctor": _cmd_doctor,
    "keys": _cmd_keys,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    verbose = "-v" in (argv if argv is not None else sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="vcard: %(message)s")
        vc = VCard(args.runtime_dir, state_dir=args.state_dir)
        return COMMANDS[args.command](vc, args)
    except UsageError as exc:
        print(f"vcard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StackError, RequestFailed, PcscError, DaemonNotRunning) as exc:
        print(f"vcard: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("vcard: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # `vcard status | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception:
        if verbose:
            raise
        print("vcard: internal error; rerun with -v to see the traceback", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    raise SystemExit(main())
