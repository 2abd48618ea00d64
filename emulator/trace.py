"""APDU traces and card events: what crossed the wire, as values (sans-I/O).

The card runtime fills an :class:`ApduRecord` for every command it answers
(channel, applet, INS name, SW, duration, secure messaging level, the wire
bytes and which of them are secret); the slot turns it into an
:class:`ApduEvent` with its number. Card life-cycle changes are
:class:`CardEvent`, fired faults :class:`FaultEvent`.

Redaction is declared where a command is defined: ``@command(INS.VERIFY,
secret=Secret.COMMAND)`` in the applet's table (:mod:`emulator.applets.base`),
plus what the runtime knows itself: data decrypted or encrypted under secure
messaging, and GET RESPONSE data of a secret response. Events keep the data
in memory (the daemon's ring buffer); :meth:`ApduEvent.redacted` blanks the
secret fields, which is what every consumer gets unless it asks to reveal.

:class:`EventHub` keeps a bounded ring of recent events per slot and feeds
bounded subscriber queues: a subscriber that falls behind is dropped with a
note, and publishing never blocks the card.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import IntFlag
from typing import ClassVar, Union

from .gp.levels import SecurityLevel
from .iso7816 import sw_name

__all__ = [
    "RING_EVENTS",
    "SUBSCRIBER_QUEUE",
    "ApduEvent",
    "ApduRecord",
    "CardEvent",
    "EventHub",
    "FaultEvent",
    "NoteEvent",
    "Secret",
    "Subscription",
    "TraceEvent",
    "format_event",
    "sm_name",
]

log = logging.getLogger(__name__)

#: recent events the daemon keeps per slot (``vcard trace`` without --follow)
RING_EVENTS = 2048
#: events a subscriber may lag behind before it is dropped
SUBSCRIBER_QUEUE = 4096


class Secret(IntFlag):
    """Which data of a command is secret (declared in the applet's command table)."""

    NONE = 0
    COMMAND = 1  #: the command data: PINs, keys, cryptograms
    RESPONSE = 2  #: the response data: witnesses, cryptograms, PIN-protected objects
    BOTH = 3


def sm_name(level: int) -> str:
    """``C_MAC|R_MAC``-style name of a secure messaging level; ``""`` for none."""
    if not level:
        return ""
    wire = SecurityLevel(level) & ~SecurityLevel.AUTHENTICATED
    if not wire:
        return ""
    return "|".join(flag.name or "" for flag in SecurityLevel if flag & wire and flag != SecurityLevel.AUTHENTICATED)


@dataclass(slots=True)
class ApduRecord:
    """What the card runtime learnt about one command while answering it (mutable while it runs)."""

    command: bytes
    response: bytes = b""
    channel: int = 0
    applet: str = ""
    ins_name: str = ""
    secret: Secret = Secret.NONE
    sm_level: int = 0
    duration_ns: int = 0


@dataclass(frozen=True, slots=True)
class ApduEvent:
    """One command and its response. Data fields are hex; None when redacted."""

    event: ClassVar[str] = "apdu"
    slot: int
    channel: int
    applet: str  #: the applet that answered ("" for the card runtime or none)
    cla: int
    ins: int
    p1: int
    p2: int
    ins_name: str
    sw: int
    sw_name: str
    lc: int  #: command data bytes on the wire
    resp_len: int  #: response data bytes on the wire (without SW)
    duration_ms: float
    sm: str  #: secure messaging level in force ("" for none)
    command_data: str | None
    response_data: str | None
    secret: tuple[str, ...] = ()  #: which data fields are secret
    redacted_fields: tuple[str, ...] = ()  #: which of them are blanked in this copy
    fault: str = ""  #: id of the fault that answered instead of the card, if any
    seq: int = 0
    time: float = 0.0

    @classmethod
    def from_record(cls, slot: int, rec: ApduRecord, *, fault: str = "", seq: int = 0, at: float = 0.0) -> ApduEvent:
        cmd, resp = rec.command, rec.response
        data, lc = _command_data(cmd)
        sw = int.from_bytes(resp[-2:], "big") if len(resp) >= 2 else 0
        secret: tuple[str, ...] = ()
        if rec.secret & Secret.COMMAND and lc:
            secret += ("command_data",)
        if rec.secret & Secret.RESPONSE and len(resp) > 2:
            secret += ("response_data",)
        return cls(
            slot=slot,
            channel=rec.channel,
            applet=rec.applet,
            cla=cmd[0] if cmd else 0,
            ins=cmd[1] if len(cmd) > 1 else 0,
            p1=cmd[2] if len(cmd) > 2 else 0,
            p2=cmd[3] if len(cmd) > 3 else 0,
            ins_name=rec.ins_name or (f"INS_{cmd[1]:02X}" if len(cmd) > 1 else "SHORT"),
            sw=sw,
            sw_name=sw_name(sw) if len(resp) >= 2 else "NONE",
            lc=lc,
            resp_len=max(len(resp) - 2, 0),
            duration_ms=round(rec.duration_ns / 1e6, 3),
            sm=sm_name(rec.sm_level),
            command_data=data.hex().upper(),
            response_data=resp[:-2].hex().upper(),
            secret=secret,
            fault=fault,
            seq=seq,
            time=at or time.time(),
        )

    def redacted(self) -> ApduEvent:
        """This event with its secret data blanked (None), as consumers get it by default."""
        if not self.secret or self.redacted_fields:
            return self
        changes: dict[str, None] = {name: None for name in self.secret}
        return replace(self, redacted_fields=self.secret, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class CardEvent:
    """insert, remove, tear, power_on, power_off or reset of the card in ``slot``."""

    event: ClassVar[str] = "card"
    slot: int
    kind: str
    detail: str = ""
    seq: int = 0
    time: float = 0.0

    def redacted(self) -> CardEvent:
        return self


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """A fault fired (faults.py): which one, what it did."""

    event: ClassVar[str] = "fault"
    slot: int
    fault: str  #: the fault's id
    kind: str
    detail: str = ""
    seq: int = 0
    time: float = 0.0

    def redacted(self) -> FaultEvent:
        return self


@dataclass(frozen=True, slots=True)
class NoteEvent:
    """Something about the stream itself (e.g. this subscriber was dropped)."""

    event: ClassVar[str] = "note"
    slot: int
    text: str
    seq: int = 0
    time: float = 0.0

    def redacted(self) -> NoteEvent:
        return self


TraceEvent = Union[ApduEvent, CardEvent, FaultEvent, NoteEvent]  # noqa: UP007 - a runtime value
EVENT_TYPES: dict[str, type[ApduEvent] | type[CardEvent] | type[FaultEvent] | type[NoteEvent]] = {
    cls.event: cls for cls in (ApduEvent, CardEvent, FaultEvent, NoteEvent)
}


def _command_data(cmd: bytes) -> tuple[bytes, int]:
    """The data field of a raw command APDU (ISO 7816-4 §5.1 cases), best effort for malformed ones."""
    body = cmd[4:]
    if len(body) <= 1:
        return b"", 0
    if body[0] == 0 and len(body) >= 3:  # extended
        n = int.from_bytes(body[1:3], "big")
        if len(body) in (3 + n, 5 + n) and n:
            return body[3 : 3 + n], n
        return b"", 0
    n = body[0]
    if len(body) in (1 + n, 2 + n):
        return body[1 : 1 + n], n
    return b"", 0


def format_event(ev: TraceEvent) -> str:
    """One line for people (logs and ``vcard trace``)."""
    stamp = time.strftime("%H:%M:%S", time.localtime(ev.time)) + f".{int(ev.time * 1000) % 1000:03d}"
    if isinstance(ev, ApduEvent):
        sm = f" [{ev.sm}]" if ev.sm else ""
        fault = f" (fault {ev.fault})" if ev.fault else ""
        head = f"{ev.cla:02X} {ev.ins:02X} {ev.p1:02X} {ev.p2:02X}"
        cmd = _data_text(ev.command_data, ev.lc)
        resp = _data_text(ev.response_data, ev.resp_len)
        where = f"ch{ev.channel} {ev.applet or '-'}"
        return (
            f"{stamp} slot {ev.slot} {where:<10} {ev.ins_name:<28} {head} {cmd} -> {resp} "
            f"{ev.sw:04X} {ev.sw_name} {ev.duration_ms:.3f} ms{sm}{fault}"
        )
    if isinstance(ev, CardEvent):
        return f"{stamp} slot {ev.slot} card {ev.kind}{': ' + ev.detail if ev.detail else ''}"
    if isinstance(ev, FaultEvent):
        return f"{stamp} slot {ev.slot} FAULT {ev.fault} {ev.kind}{': ' + ev.detail if ev.detail else ''}"
    return f"{stamp} slot {ev.slot} note: {ev.text}"


def _data_text(data: str | None, length: int) -> str:
    if not length:
        return "[]"
    if data is None:
        return f"[{length} bytes redacted]"
    return f"[{length}] {data}"


class PendingApdu:
    """An APDU event not built yet: the card's path only stores its record; readers build it."""

    __slots__ = ("fault", "rec", "seq", "slot", "time")

    def __init__(self, slot: int, rec: ApduRecord, fault: str, at: float) -> None:
        self.slot = slot
        self.rec = rec
        self.fault = fault
        self.time = at
        self.seq = 0

    def event(self) -> ApduEvent:
        return ApduEvent.from_record(self.slot, self.rec, fault=self.fault, seq=self.seq, at=self.time)


_Entry = Union[TraceEvent, PendingApdu]  # noqa: UP007


def _built(entry: _Entry) -> TraceEvent:
    return entry.event() if isinstance(entry, PendingApdu) else entry


class Subscription:
    """One subscriber's bounded buffer. ``offer`` never blocks and never wakes anyone: the
    reader polls (``drain``), so a traced APDU costs the card an append, not a thread switch."""

    def __init__(self, slot: int | None, maxsize: int = SUBSCRIBER_QUEUE) -> None:
        self.slot = slot
        self.maxsize = maxsize
        self._events: collections.deque[_Entry] = collections.deque()
        self.dropped = threading.Event()

    def offer(self, event: _Entry) -> bool:
        if self.slot is not None and event.slot != self.slot:
            return True
        if len(self._events) >= self.maxsize:
            self.dropped.set()
            return False
        self._events.append(event)
        return True

    def drain(self, limit: int = 512) -> list[TraceEvent]:
        """The events waiting (at most ``limit``), oldest first."""
        out: list[TraceEvent] = []
        events = self._events
        while events and len(out) < limit:
            out.append(_built(events.popleft()))
        return out

    def get(self, timeout: float) -> TraceEvent | None:
        """The next event, polling until ``timeout``; None if none came."""
        deadline = time.monotonic() + timeout
        while True:
            if self._events:
                return _built(self._events.popleft())
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.001)


class EventHub:
    """Numbers events, keeps the last :data:`RING_EVENTS` per slot, feeds subscribers. Thread-safe."""

    def __init__(self, ring: int = RING_EVENTS) -> None:
        self._seq = itertools.count(1)
        self._ring_size = ring
        self._rings: dict[int, collections.deque[_Entry]] = {}
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        #: called with each dropped subscription (the daemon logs it)
        self.on_drop: Callable[[Subscription], None] | None = None

    def publish_apdu(self, slot: int, rec: ApduRecord, *, fault: str = "") -> None:
        """The card's fast path: the record is kept; the event is built when someone reads it."""
        self._add(PendingApdu(slot, rec, fault, time.time()))

    def publish(self, event: TraceEvent) -> TraceEvent:
        entry = replace(event, time=event.time or time.time())
        self._add(entry)
        return entry

    def _add(self, event: _Entry) -> None:
        with self._lock:
            if isinstance(event, PendingApdu):
                event.seq = next(self._seq)
            else:
                object.__setattr__(event, "seq", next(self._seq))  # not shared with anyone yet
            ring = self._rings.get(event.slot)
            if ring is None:
                ring = self._rings[event.slot] = collections.deque(maxlen=self._ring_size)
            ring.append(event)
            if self._subs:
                lagging = [sub for sub in self._subs if not sub.offer(event)]
                for sub in lagging:
                    self._subs.remove(sub)
            else:
                lagging = []
        for sub in lagging:
            if self.on_drop is not None:
                self.on_drop(sub)

    def recent(self, slot: int | None = None, *, last: int | None = None, after: int = 0) -> list[TraceEvent]:
        """Events still in the rings, oldest first: of ``slot`` (or all), with seq > ``after``, the ``last`` N."""
        with self._lock:
            entries = self._recent(slot, last, after)
        return [_built(e) for e in entries]

    def _recent(self, slot: int | None, last: int | None, after: int) -> list[_Entry]:
        rings: Iterable[collections.deque[_Entry]] = (
            self._rings.values() if slot is None else [self._rings.get(slot, collections.deque())]
        )
        events = sorted((e for ring in rings for e in ring if e.seq > after), key=lambda e: e.seq)
        return events if last is None else events[-last:] if last else []

    def subscribe(
        self, slot: int | None, *, last: int = 0, maxsize: int = SUBSCRIBER_QUEUE
    ) -> tuple[Subscription, list[TraceEvent]]:
        """A new subscription and the backlog (the ``last`` recent events) with no gap between them."""
        sub = Subscription(slot, maxsize)
        with self._lock:
            backlog = self._recent(slot, last, 0)
            self._subs.append(sub)
        return sub, [_built(e) for e in backlog]

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def last_seq(self) -> int:
        with self._lock:
            return max((ring[-1].seq for ring in self._rings.values() if ring), default=0)
