"""The card's side of the wire, for the demo's view: the daemon's trace events of one slot.

The demo app only talks PC/SC; what the card itself saw comes from the
daemon's control socket (a ``subscribe`` stream, emulator/trace.py), with
secrets redacted as the applets declare them. When the daemon cannot stream
(an older daemon, another pcscd's reader), the view keeps the app's own log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from minidriver.iso7816 import sw_name

from .app import ApduRecord

__all__ = ["CardSideTrace"]

POLL = 0.25  #: longest wait for an event before checking whether to stop
RESUBSCRIBE_PAUSE = 0.1
BACKLOG = 32  #: events asked again after a resubscription (those already seen are skipped by seq)


class CardSideTrace:
    """A thread feeding the card's APDUs of ``slot`` to ``sink`` (as :class:`ApduRecord`)."""

    def __init__(self, client: Any, slot: int, sink: Callable[[ApduRecord], None], clock: Callable[[], float]) -> None:
        self.client = client
        self.slot = slot
        self.sink = sink
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._last_seq = 0

    def start(self) -> str | None:
        """Subscribe; None when streaming, else why not (one line for the event log)."""
        subscribe = getattr(self.client, "subscribe", None)
        if subscribe is None:
            return "this vcard has no event stream"
        try:
            self._stream = subscribe(slot=self.slot)
        except Exception as exc:  # an older daemon, a dead one: the app's own log stays
            return f"the daemon does not stream events ({exc})"
        self._thread = threading.Thread(target=self._run, name="demo-card-trace", daemon=True)
        self._thread.start()
        return None

    def _run(self) -> None:
        from ..trace import ApduEvent

        while not self._stop.is_set():
            try:
                event = self._stream.next_event(POLL)
            except Exception:  # the stream broke off: subscribe again below
                event = None
            if event is None:
                if self._stream.closed and not self._resubscribe():
                    return
                continue
            seq = getattr(event, "seq", 0)
            if seq and seq <= self._last_seq:
                continue  # the backlog of a new subscription repeats what we have
            self._last_seq = max(self._last_seq, seq)
            if isinstance(event, ApduEvent):
                self.sink(_record(event, self.clock()))

    def _resubscribe(self) -> bool:
        """The daemon ended the stream (restarted, or dropped an idle subscriber): subscribe again."""
        while not self._stop.wait(RESUBSCRIBE_PAUSE):
            try:
                self._stream = self.client.subscribe(slot=self.slot, last=BACKLOG)  # what we missed meanwhile
            except Exception:
                continue  # the daemon may be restarting; keep trying until stopped
            return True
        return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * POLL + 1)
        if self._stream is not None:
            self._stream.close()


def _record(ev: Any, at: float) -> ApduRecord:
    header = f"{ev.cla:02X} {ev.ins:02X} {ev.p1:02X} {ev.p2:02X}"
    name = ev.ins_name.replace("_", " ")
    extra = []
    if ev.applet:
        extra.append(ev.applet)
    if ev.sm:
        extra.append(f"SM {ev.sm}")
    if ev.redacted_fields:
        extra.append("secret redacted")
    if ev.fault:
        extra.append(f"fault {ev.fault}")
    sw = sw_name(ev.sw) if ev.sw else ev.sw_name  # the same words as the app's side of the view
    return ApduRecord(at, header, name, ev.lc, sw, ev.duration_ms, note=", ".join(extra))
