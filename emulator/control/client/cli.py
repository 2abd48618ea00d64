"""The `vcard` command: the only place that prints or picks exit codes.

Exit codes (the one table; README "The CLI" and ``vcard --help`` show it):

====  ===========================================================================
0     done
1     operational failure: the stack, pcscd or the card could not do it (one line
      saying what to do); also ``vcard status`` (and ``status --json``, which
      still prints its document) when the daemon is not running; ``vcard demo
      --script`` when a step of the show failed
2     usage error: a mistake on the command line or in a profile; nothing was done
70    a bug in vcard (EX_SOFTWARE); the traceback only with ``-v``
====  ===========================================================================
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any, NoReturn

from emulator.control.client import cli_args
from emulator.control.client.api import DaemonNotRunning, StackError, Status, VCard
from emulator.control.client.cli_demo import DemoUsageError, add_demo_parser, run_demo
from emulator.control.client.cli_fault import FaultUsageError, add_fault_parser, run_fault
from emulator.control.client.cli_keys import KeysUsageError, add_keys_parser, run_keys, status_registry_lines
from emulator.control.client.cli_trace import add_trace_parser, run_trace
from emulator.control.client.client import RequestFailed
from emulator.control.client.doctor import run_doctor
from emulator.control.client.pcsc import PcscError
from emulator.control.stack.paths import pcscd_client_env
from emulator.profile import ProfileError

__all__ = ["EXIT_CODES", "Exit", "build_parser", "main"]


class Exit(IntEnum):
    """``vcard``'s exit codes; :data:`EXIT_CODES` says what each means."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    BUG = 70


EXIT_CODES: dict[Exit, str] = {
    Exit.OK: "done",
    Exit.FAILURE: "operational failure (one line saying what to do); status [--json]: the daemon is not running; "
    "demo --script: a step of the show failed",
    Exit.USAGE: "usage error: a mistake on the command line or in a profile; nothing was done",
    Exit.BUG: "a bug in vcard; rerun with -v for the traceback",
}
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_BUG = Exit.OK, Exit.FAILURE, Exit.USAGE, Exit.BUG


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # "argument --slot: --slot must be ..." says the option twice: keep the type's own sentence
        message = re.sub(r"^argument (\S+): (?=\1 )", "", message)
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _exit_code_epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {int(code):<3} {text}" for code, text in EXIT_CODES.items())


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-v, --runtime-dir, --state-dir: before the subcommand, or after it (then SUPPRESS keeps the top's)."""
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks", **default)
    parser.add_argument(
        "--runtime-dir",
        type=cli_args.directory("--runtime-dir"),
        help="the stack's runtime directory (default: $VCARD_RUNTIME_DIR, /run/vcard for root)",
        **default,
    )
    parser.add_argument(
        "--state-dir",
        type=cli_args.directory("--state-dir"),
        help="where a profile's relative state_file lives (default: $VCARD_STATE_DIR, /var/lib/vcard for "
        "root); honoured by up and insert also when the daemon already runs",
        **default,
    )


def build_parser() -> Parser:
    parser = Parser(
        prog="vcard",
        description="A virtual smart card behind the real pcscd.",
        epilog=_exit_code_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, top=True)
    common = Parser(add_help=False)
    _global_options(common, top=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=text,
            parents=[common],
            epilog=_exit_code_epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    up = command("up", "start pcscd (if needed), the daemon and a card in slot 0")
    up.add_argument(
        "--profile",
        help="built-in profile name or .toml path for the card in slot 0 (default: default); checked first. "
        "On a running stack: used if slot 0 is empty, an error if slot 0 holds another profile's card",
    )
    up.add_argument("--private", action="store_true", help="pcscd with its own socket (set PCSCLITE_CSOCK_NAME)")
    up.add_argument(
        "--user",
        action="store_true",
        help="no root: pcscd and the daemon in a user namespace of yours, the socket in the runtime "
        'directory (then: eval "$(vcard env)")',
    )
    up.add_argument("--vpcd-listen-any", action="store_true", help="allow vpcd on 0.0.0.0 if no namespace can be made")
    up.add_argument("--no-card", action="store_true", help="start with both slots empty")
    up.add_argument("--trace", action="store_true", help="daemon logs APDUs (secrets redacted); when it starts")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr (shown on a terminal)")

    command("down", "stop the daemon and the pcscd that vcard started")
    status = command("status", "readers, slots, cards, profiles and state files")
    status.add_argument(
        "--json",
        action="store_true",
        help="one JSON object (schema: emulator/control/client/status_json.py, README); exit 0 running, 1 not",
    )
    command("doctor", "check pcscd, vpcd, ports and permissions; say how to fix each")
    command("env", 'print the shell lines that point PC/SC clients at this stack: eval "$(vcard env)"')

    slot_help = f"vpcd slot: {' or '.join(map(str, cli_args.SLOTS))} (default: 0)"
    timeout_help = f"seconds --wait waits for pcscd, above 0 and at most {cli_args.MAX_TIMEOUT:g} (default: 5)"
    ins = command("insert", "insert a card into a slot")
    ins.add_argument("--slot", type=cli_args.slot, default=0, help=slot_help)
    ins.add_argument("--profile", help="built-in profile name or .toml path (default: default); checked first")
    ins.add_argument("--fresh", action="store_true", help="a new card from the profile; the old state is set aside")
    ins.add_argument("--wait", action="store_true", help="return once pcscd reports the card")
    ins.add_argument("--timeout", type=cli_args.timeout, default=5.0, help=timeout_help)
    ins.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr (shown on a terminal)")

    rem = command("remove", "pull the card out of a slot")
    rem.add_argument("--slot", type=cli_args.slot, default=0, help=slot_help)
    rem.add_argument("--wait", action="store_true", help="return once pcscd reports the card gone")
    rem.add_argument("--timeout", type=cli_args.timeout, default=5.0, help=timeout_help)

    add_keys_parser(sub, common=common)
    add_demo_parser(sub, common=common)
    add_trace_parser(sub, common=common)
    add_fault_parser(sub, common=common)
    return parser


def _print_status(status: Status) -> None:
    info = status.stack
    if info is None:
        print("pcscd:  not started by vcard")
    else:
        where = {
            "netns": "own network namespace (vpcd on loopback only)",
            "userns": "own user and network namespace, no root (vpcd on loopback only)",
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


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Long steps as they start, on stderr: only on a terminal, never with --quiet (stdout stays the result)."""
    if args.quiet or not sys.stderr.isatty():
        return None
    import time

    start = time.monotonic()

    def tell(step: str) -> None:
        print(f"vcard: [{time.monotonic() - start:5.1f} s] {step} ...", file=sys.stderr, flush=True)

    return tell


def _cmd_up(vc: VCard, args: argparse.Namespace) -> int:
    before = vc.status()
    status = vc.up(
        profile=args.profile,
        private=args.private,
        listen_any=args.vpcd_listen_any,
        insert=not args.no_card,
        verbose=args.verbose,
        trace=args.trace,
        user=args.user,
        progress=_progress(args),
    )
    _print_status(status)
    # options that only matter when something starts: say so instead of dropping them silently
    if before.running and args.trace:
        print(
            "vcard: note: the daemon was already running; --trace applies when it starts (vcard down first)",
            file=sys.stderr,
        )
    if before.stack is not None and before.stack.alive and args.vpcd_listen_any:
        print("vcard: note: pcscd was already running; --vpcd-listen-any applies when it starts", file=sys.stderr)
    needed = pcscd_client_env(status.stack.pcscd_socket if status.stack else None)
    env = "".join(f"{k}={v} " for k, v in needed.items())
    me = _prog()
    print("\nTry:")
    print(
        f"  {env}pcsc_scan -c                 # the card as every PC/SC application sees it (pcsc_scan: watch events)"
    )
    print(f"  {env}opensc-tool -l -a -n")
    print(f"  {me} remove --wait; {me} insert --wait   # pull the card and put it back")
    print(f"  {me} status; {me} down")
    if needed:
        print(f'  eval "$({me} env)"   # or point this shell\'s PC/SC clients at this pcscd once')
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
    if args.json:
        import json

        from emulator.control.client.status_json import status_document

        print(json.dumps(status_document(status, str(vc.paths.root)), indent=2))
        return EXIT_OK if status.running else EXIT_FAILURE
    _print_status(status)
    if status.running:
        try:  # GET STATUS needs a secure channel; status must work without one
            for line in status_registry_lines(status):
                print(line)
        except PcscError as exc:
            print(f"registry: unavailable: {exc}")
    return EXIT_OK if status.running else EXIT_FAILURE


def _cmd_insert(vc: VCard, args: argparse.Namespace) -> int:
    reply = vc.insert(
        args.slot,
        profile=args.profile,
        fresh=args.fresh,
        wait=args.wait,
        timeout=args.timeout,
        progress=_progress(args),
    )
    print(f"slot {reply['slot']}: inserted card (profile {reply['profile']}, state {reply['state_file']})")
    if reply.get("set_aside"):
        print(f"previous state set aside as {reply['set_aside']}")
    return EXIT_OK


def _cmd_remove(vc: VCard, args: argparse.Namespace) -> int:
    reply = vc.remove(args.slot, wait=args.wait, timeout=args.timeout)
    print(f"slot {reply['slot']}: card removed")
    return EXIT_OK


def _cmd_env(vc: VCard, args: argparse.Namespace) -> int:
    """``export PCSCLITE_CSOCK_NAME=...`` for the stack's pcscd, quoted for sh (``eval "$(vcard env)"``)."""
    import shlex

    info = vc.stack
    if info is None or not info.alive:
        raise StackError(f"no vcard stack runs with runtime directory {vc.paths.root}; start one: vcard up --user")
    print(f"export PCSCLITE_CSOCK_NAME={shlex.quote(info.pcscd_socket)}")
    return EXIT_OK


def _cmd_doctor(vc: VCard, args: argparse.Namespace) -> int:
    return EXIT_OK if run_doctor(vc) else EXIT_FAILURE


def _cmd_keys(vc: VCard, args: argparse.Namespace) -> int:
    try:
        return run_keys(vc, args)
    except KeysUsageError as exc:
        raise UsageError(str(exc)) from None


def _cmd_fault(vc: VCard, args: argparse.Namespace) -> int:
    try:
        return run_fault(vc, args)
    except FaultUsageError as exc:
        raise UsageError(str(exc)) from None


def _cmd_demo(vc: VCard, args: argparse.Namespace) -> int:
    try:
        return run_demo(vc, args)
    except DemoUsageError as exc:
        raise UsageError(str(exc)) from None


COMMANDS: dict[str, Callable[[VCard, argparse.Namespace], int]] = {
    "up": _cmd_up,
    "down": _cmd_down,
    "status": _cmd_status,
    "insert": _cmd_insert,
    "remove": _cmd_remove,
    "doctor": _cmd_doctor,
    "env": _cmd_env,
    "keys": _cmd_keys,
    "demo": _cmd_demo,
    "trace": run_trace,
    "fault": _cmd_fault,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in words or "--verbose" in words
    try:
        args = parser.parse_args(words)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="vcard: %(message)s")
        vc = VCard(args.runtime_dir, state_dir=args.state_dir)
        return COMMANDS[args.command](vc, args)
    except (UsageError, ProfileError) as exc:
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
    except OSError as exc:  # the system refused (permissions, a full disk, ...): operational, one line
        if verbose:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"vcard: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception:
        if verbose:
            raise
        print("vcard: internal error; rerun with -v to see the traceback", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    raise SystemExit(main())
