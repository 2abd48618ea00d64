"""Fault injection: rules that make a slot's card misbehave on purpose (sans-I/O).

A :class:`FaultSpec` says *what* (answer a status word, add latency, go mute,
tear the card out, delay the ATR, answer another ATR) and *when*: the
commands matching INS (and optionally CLA, P1, the applet selected on the
command's logical channel), after letting ``skip`` matching commands through,
for ``count`` firings (None: until cleared). :class:`FaultTable` holds the
faults of one slot and says which fire for a command or an ATR; the slot
(:mod:`emulator.slot`) carries them out and the trace reports each firing.

Kinds and what they model:

* ``sw``: the command never reaches the card; the reader gets ``sw``.
* ``latency``: the card answers ``delay_ms`` later (the command runs).
* ``mute``: the card never answers. pcscd 1.9.9 + vpcd 0.8 have no timeout
  for a silent card (vpcd's ``recv`` blocks holding the reader, and the
  client's ``SCardTransmit`` with it; presence polls stop meanwhile), so the
  host never gives up by itself. After ``delay_ms`` (default
  :data:`DEFAULT_MUTE_MS`, at most :data:`MAX_MUTE_MS`; ``vcard remove`` ends
  it at once) the slot pulls the card.
* ``tear``: pull the card at the matching command. ``before``: the command
  never runs. ``after``: it runs and commits, then the link drops before its
  response reaches the host.
* ``slow-atr``: the ATR after a power-on or reset comes ``delay_ms`` late
  (``SCardConnect``/``SCardReconnect`` wait; pcscd has no ATR timeout either).
* ``atr``: the ATR after a power-on or reset is ``atr`` instead of the card's.
  pcscd powers an idle card down, so one ``SCardReconnect(RESET)`` can be a
  power-on and a reset (two ATRs): use ``count=None`` and clear it.

What the host sees when the card is pulled under a command (tear, mute),
measured through pyscard: the pending ``SCardTransmit`` returns
SCARD_S_SUCCESS with an *empty* response (vpcd turns the dropped link into
one; pyscard's connection raises CardConnectionException), the next
transmit on that handle SCARD_E_NOT_TRANSACTED, and once pcscd's presence
poll saw the card go, SCARD_W_REMOVED_CARD.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from enum import Enum

__all__ = [
    "MAX_DELAY_MS",
    "MAX_MUTE_MS",
    "Fault",
    "FaultKind",
    "FaultSpec",
    "FaultTable",
    "Firing",
    "TearWhen",
]

#: latency and slow ATR above a minute are typos, not tests
MAX_DELAY_MS = 60_000
#: a mute card is pulled after this long at most, so nothing waits forever
MAX_MUTE_MS = 120_000
DEFAULT_MUTE_MS = 5_000


class FaultKind(Enum):
    SW = "sw"
    LATENCY = "latency"
    MUTE = "mute"
    TEAR = "tear"
    SLOW_ATR = "slow-atr"
    ATR = "atr"


class TearWhen(Enum):
    BEFORE = "before"  #: the command never runs
    AFTER = "after"  #: the command runs and commits; its response is lost


_ATR_KINDS = (FaultKind.SLOW_ATR, FaultKind.ATR)
#: kinds that answer instead of the card (at most one fires per command)
_TERMINAL = (FaultKind.SW, FaultKind.MUTE, FaultKind.TEAR)


def _byte(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF):
        raise ValueError(f"{name} must be a byte 00-FF, got {value!r}")


def _valid_sw(sw: int | None) -> bool:
    """SW1 is 61-6F or 90-9F (ISO 7816-3 §10.3.1: 60 is a procedure byte)."""
    if sw is None or isinstance(sw, bool) or not isinstance(sw, int) or not 0 <= sw <= 0xFFFF:
        return False
    return 0x61 <= sw >> 8 <= 0x6F or 0x90 <= sw >> 8 <= 0x9F


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: FaultKind
    ins: int | None = None  #: None: any INS
    cla: int | None = None
    p1: int | None = None
    applet: str | None = None  #: name of the applet selected on the command's channel ("piv", "isd")
    count: int | None = 1  #: firings before the fault is spent; None: until cleared
    skip: int = 0  #: matching commands (or ATRs) let through first
    sw: int | None = None  #: kind sw
    delay_ms: int = 0  #: latency, slow-atr; mute: how long before the card is pulled
    atr: bytes | None = None  #: kind atr
    when: TearWhen = TearWhen.BEFORE  #: kind tear

    def __post_init__(self) -> None:
        for name in ("ins", "cla", "p1"):
            _byte(name, getattr(self, name))
        if self.count is not None and (isinstance(self.count, bool) or self.count < 1):
            raise ValueError(f"count must be 1 or more (or none: until cleared), got {self.count!r}")
        if self.skip < 0:
            raise ValueError(f"skip must be 0 or more, got {self.skip}")
        if self.kind is FaultKind.SW and not _valid_sw(self.sw):
            raise ValueError(f"sw must be a status word 61xx-6Fxx or 9xxx (e.g. 6A82), got {self.sw!r}")
        if self.kind is not FaultKind.SW and self.sw is not None:
            raise ValueError(f"sw is only for kind sw, not {self.kind.value}")
        limit = MAX_MUTE_MS if self.kind is FaultKind.MUTE else MAX_DELAY_MS
        if not 0 <= self.delay_ms <= limit:
            raise ValueError(f"delay_ms must be 0-{limit}, got {self.delay_ms}")
        if self.kind in (FaultKind.LATENCY, FaultKind.SLOW_ATR) and self.delay_ms == 0:
            raise ValueError(f"{self.kind.value} needs a delay in ms above 0")
        if self.kind is FaultKind.ATR:
            if self.atr is None or not 2 <= len(self.atr) <= 33:
                raise ValueError("atr must be 2-33 bytes (ISO 7816-3 §8.2)")
        elif self.atr is not None:
            raise ValueError(f"atr is only for kind atr, not {self.kind.value}")
        if self.kind in _ATR_KINDS and (self.ins, self.cla, self.p1, self.applet) != (None, None, None, None):
            raise ValueError(f"{self.kind.value} fires at power-on/reset: it takes no INS, CLA, P1 or applet")

    @classmethod
    def mute(cls, **kw: object) -> FaultSpec:
        """A mute fault with the default bound when none is given."""
        spec = cls(FaultKind.MUTE, **kw)  # type: ignore[arg-type]
        return spec if spec.delay_ms else replace(spec, delay_ms=DEFAULT_MUTE_MS)

    def matches(self, cla: int, ins: int, p1: int, applet: str) -> bool:
        return (
            (self.ins is None or self.ins == ins)
            and (self.cla is None or self.cla == cla)
            and (self.p1 is None or self.p1 == p1)
            and (self.applet is None or self.applet == applet)
        )

    def describe(self) -> str:
        what = {
            FaultKind.SW: f"answer {self.sw or 0:04X}",
            FaultKind.LATENCY: f"add {self.delay_ms} ms",
            FaultKind.MUTE: f"no answer; card pulled after {self.delay_ms} ms",
            FaultKind.TEAR: f"pull the card {self.when.value} the command runs",
            FaultKind.SLOW_ATR: f"ATR {self.delay_ms} ms late",
            FaultKind.ATR: f"ATR {(self.atr or b'').hex().upper()}",
        }[self.kind]
        if self.kind in _ATR_KINDS:
            match = "power-on/reset"
        else:
            parts = [f"INS {self.ins:02X}" if self.ins is not None else "any INS"]
            parts += [f"CLA {self.cla:02X}"] if self.cla is not None else []
            parts += [f"P1 {self.p1:02X}"] if self.p1 is not None else []
            parts += [f"applet {self.applet}"] if self.applet else []
            match = ", ".join(parts)
        times = "until cleared" if self.count is None else f"{self.count}x"
        skip = f" after {self.skip} let through" if self.skip else ""
        return f"{what} on {match}, {times}{skip}"


@dataclass
class Fault:
    """A fault installed in a slot, with its counters."""

    id: str
    spec: FaultSpec
    seen: int = 0  #: matching commands (or ATRs) so far
    fired: int = 0

    @property
    def spent(self) -> bool:
        return self.spec.count is not None and self.fired >= self.spec.count


@dataclass(frozen=True, slots=True)
class Firing:
    """What the slot must do for one command or ATR."""

    delay_ms: int = 0  #: latency / slow ATR, summed
    terminal: Fault | None = None  #: sw, mute or tear (the first that fired)
    atr: bytes | None = None
    fired: tuple[Fault, ...] = field(default=())


class FaultTable:
    """The faults of one slot. Thread-safe; faults stay across remove/insert until cleared."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next = 1
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._faults)

    def add(self, spec: FaultSpec) -> Fault:
        with self._lock:
            fault = Fault(f"f{self._next}", spec)
            self._next += 1
            self._faults.append(fault)
            return fault

    def list(self) -> list[Fault]:
        with self._lock:
            return [replace(f) for f in self._faults]

    def clear(self, fault_id: str | None = None) -> int:
        """Remove one fault (by id) or all; returns how many went."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if fault_id is not None and f.id != fault_id]
            return before - len(self._faults)

    def on_command(self, cla: int, ins: int, p1: int, applet: str) -> Firing:
        with self._lock:
            return self._fire(lambda s: s.kind not in _ATR_KINDS and s.matches(cla, ins, p1, applet))

    def on_atr(self) -> Firing:
        with self._lock:
            return self._fire(lambda s: s.kind in _ATR_KINDS)

    def _fire(self, wanted: object) -> Firing:
        delay, terminal, atr = 0, None, None
        fired: list[Fault] = []
        for fault in self._faults:
            spec = fault.spec
            if not wanted(spec):  # type: ignore[operator]
                continue
            fault.seen += 1  # every matching command counts, whoever answers it
            if fault.seen <= spec.skip:
                continue
            if spec.kind in _TERMINAL and terminal is not None:
                fault.seen -= 1  # one answer per command: this one waits for the next match
                continue
            fault.fired += 1
            fired.append(replace(fault))
            if spec.kind in (FaultKind.LATENCY, FaultKind.SLOW_ATR):
                delay += spec.delay_ms
            elif spec.kind is FaultKind.ATR:
                atr = spec.atr if atr is None else atr
            else:
                terminal = replace(fault)
        self._faults = [f for f in self._faults if not f.spent]
        return Firing(delay, terminal, atr, tuple(fired))
