"""``vcard fault add|list|clear``: make the card misbehave on purpose (emulator/faults.py).

vcard fault add sw 6A82 --ins A4 --count 2      # the next 2 SELECTs answer 6A82
vcard fault add latency 50 --forever            # every command 50 ms late
vcard fault add mute --ins 87 [--ms 5000]       # no answer; the card is pulled after 5 s
vcard fault add tear --ins 24 --when after      # PIN change commits, then the card is pulled
vcard fault add slow-atr 1500                   # the ATR after power-on/reset 1.5 s late
vcard fault add atr 3B8001800101                # a different ATR after power-on/reset
"""

from __future__ import annotations

import argparse

from emulator.control.client import cli_args
from emulator.control.client.api import VCard
from emulator.control.messages import FaultInfo
from emulator.faults import FaultKind, FaultSpec, TearWhen

__all__ = ["FaultUsageError", "add_fault_parser", "run_fault"]

EXAMPLES = "make the card misbehave on purpose; each fault shows up in `vcard trace` when it fires\n\n" + (
    (__doc__ or "").split("\n\n", 1)[1]
)


class FaultUsageError(Exception):
    """A fault the command line describes wrongly; the CLI exits 2."""


def _byte(option: str) -> argparse._ActionType:
    def convert(text: str) -> int | None:
        if option == "--ins" and text.lower() == "any":
            return None
        try:
            value = int(text, 16)
        except ValueError:
            value = -1
        if not 0 <= value <= 0xFF or len(text) > 2:
            raise argparse.ArgumentTypeError(f"{option} must be one byte in hex (e.g. A4), got {text!r}")
        return value

    return convert


def _positive(option: str) -> argparse._ActionType:
    def convert(text: str) -> int:
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{option} must be a whole number of 1 or more, got {text!r}")
        return int(text)

    return convert


def add_fault_parser(sub: argparse._SubParsersAction, *, common: argparse.ArgumentParser) -> None:
    fault = sub.add_parser(
        "fault",
        help="inject faults: a status word, latency, a mute card, a tear, a slow or other ATR",
        parents=[common],
    )
    verbs = fault.add_subparsers(dest="fault_command", required=True, parser_class=type(fault))
    slot_help = "vpcd slot (default: 0)"
    add = verbs.add_parser(
        "add",
        parents=[common],
        help="add a fault",
        description=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("kind", choices=[k.value for k in FaultKind], help="what the card does")
    add.add_argument("value", nargs="?", help="sw: the status word (6A82); latency/slow-atr: ms; atr: the ATR in hex")
    add.add_argument("--slot", type=cli_args.slot, default=0, help=slot_help)
    add.add_argument("--ins", type=_byte("--ins"), default=None, help="only commands with this INS (hex; any: all)")
    add.add_argument("--cla", type=_byte("--cla"), default=None, help="only commands with this CLA (hex)")
    add.add_argument("--p1", type=_byte("--p1"), default=None, help="only commands with this P1 (hex)")
    add.add_argument("--applet", default=None, help="only commands to this applet (isd, piv)")
    add.add_argument("--count", type=_positive("--count"), default=1, help="how many times it fires (default: 1)")
    add.add_argument("--forever", action="store_true", help="fire until cleared")
    add.add_argument("--nth", type=_positive("--nth"), default=1, help="first fire at the N-th match (default: 1)")
    add.add_argument("--when", choices=[w.value for w in TearWhen], default="before", help="tear: before/after it runs")
    add.add_argument("--ms", type=_positive("--ms"), default=None, help="mute: pull the card after this many ms")
    lst = verbs.add_parser("list", parents=[common], help="the faults waiting to fire")
    lst.add_argument("--slot", type=cli_args.slot, default=None, help="only this slot")
    clear = verbs.add_parser("clear", parents=[common], help="remove one fault (by id) or all")
    clear.add_argument("id", nargs="?", default=None, help="the fault's id (see: vcard fault list)")
    clear.add_argument("--slot", type=cli_args.slot, default=None, help="only this slot")


def _spec(args: argparse.Namespace) -> FaultSpec:
    kind = FaultKind(args.kind)
    value = args.value
    needs_value = kind in (FaultKind.SW, FaultKind.LATENCY, FaultKind.SLOW_ATR, FaultKind.ATR)
    if needs_value and value is None:
        raise FaultUsageError(f"fault {kind.value} needs a value (see: vcard fault add --help)")
    if not needs_value and value is not None:
        raise FaultUsageError(f"fault {kind.value} takes no value, got {value!r}")
    fields: dict[str, object] = {
        "ins": args.ins, "cla": args.cla, "p1": args.p1, "applet": args.applet,
        "count": None if args.forever else args.count, "skip": args.nth - 1, "when": TearWhen(args.when),
    }  # fmt: skip
    try:
        if kind is FaultKind.SW:
            if len(value) != 4:
                raise ValueError(f"sw must be 4 hex digits (e.g. 6A82), got {value!r}")
            fields["sw"] = int(value, 16)
        elif kind in (FaultKind.LATENCY, FaultKind.SLOW_ATR):
            if not value.isascii() or not value.isdigit():
                raise ValueError(f"the delay must be whole milliseconds, got {value!r}")
            fields["delay_ms"] = int(value)
        elif kind is FaultKind.ATR:
            fields["atr"] = bytes.fromhex(value)
        elif kind is FaultKind.MUTE and args.ms is not None:
            fields["delay_ms"] = args.ms
        if args.ms is not None and kind is not FaultKind.MUTE:
            raise ValueError("--ms is only for mute")
        if kind is not FaultKind.TEAR and args.when != "before":
            raise ValueError("--when is only for tear")
        return FaultSpec.mute(**fields) if kind is FaultKind.MUTE else FaultSpec(kind, **fields)  # type: ignore[arg-type]
    except ValueError as exc:
        raise FaultUsageError(f"fault {kind.value}: {exc}") from None


def _line(info: FaultInfo) -> str:
    left = "until cleared" if info.remaining is None else f"{info.remaining} left"
    return f"{info.id}  slot {info.slot}  {info.kind:<8} {info.description}  (fired {info.fired}, {left})"


def run_fault(vc: VCard, args: argparse.Namespace) -> int:
    if args.fault_command == "add":
        spec = _spec(args)
        info = vc.fault(
            spec.kind,
            slot=args.slot,
            ins=spec.ins,
            cla=spec.cla,
            p1=spec.p1,
            applet=spec.applet,
            count=spec.count,
            skip=spec.skip,
            sw=spec.sw,
            delay_ms=spec.delay_ms,
            atr=spec.atr,
            when=spec.when,
        )
        print(f"added {_line(info)}")
        return 0
    if args.fault_command == "list":
        faults = vc.fault_list(args.slot)
        for info in faults:
            print(_line(info))
        if not faults:
            print("no faults")
        return 0
    cleared = vc.fault_clear(args.slot, args.id)
    print(f"cleared {cleared} fault{'s' if cleared != 1 else ''}")
    return 0
