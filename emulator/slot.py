"""A reader slot: the place a card is inserted into and removed from.

The transport asks the slot, never the card, so insert and remove are just
a swap of ``card`` under a lock. Removal powers the card off, which clears
every transient state (sessions, PIN status, selections).

The slot also reports what happens to its card as trace events (an
:class:`~emulator.trace.EventHub` given by the daemon) and carries out the
faults of its :class:`~emulator.faults.FaultTable` (emulator/faults.py says
what each kind models). A tear or the end of a mute pulls the card: the
link to vpcd is closed (``drop_link``, the daemon's) and the slot is empty,
exactly as ``vcard remove --tear``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .card import Power, VirtualCard
from .faults import Fault, FaultKind, FaultTable, Firing, TearWhen
from .iso7816 import sw_name
from .trace import ApduEvent, ApduRecord, CardEvent, EventHub, FaultEvent, Secret, TraceEvent
from .transport.server import CardAbsent
from .transport.vpcd import Ctrl

__all__ = ["CardAbsent", "Slot"]

log = logging.getLogger(__name__)

_CTRL_EVENTS = {Ctrl.POWER_OFF: "power_off", Ctrl.POWER_ON: "power_on", Ctrl.RESET: "reset"}
#: the last stretch of a fault's delay is waited out by yielding, not by a timed wait that oversleeps
SPIN_SECONDS = 0.001


@dataclass
class SlotInfo:
    number: int
    present: bool
    profile: str | None
    state_file: str | None


class Slot:
    def __init__(self, number: int, *, events: EventHub | None = None) -> None:
        self.number = number
        self.card: VirtualCard | None = None
        self.profile_name: str | None = None
        self.state_file: str | None = None
        self.events = events
        self.faults = FaultTable()
        #: closes the vpcd link at once (the daemon sets it to its server's ``disconnect``)
        self.drop_link: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._on_remove: Callable[[], None] | None = None
        self._interrupt = threading.Event()  #: cuts a latency or mute short (removal, shutdown)
        self._atr_due = False  #: a power-on/reset happened: the next GET ATR asks for the ATR
        self._fault_id = ""  #: the fault shaping the command being answered (for its trace event)

    def insert(
        self,
        card: VirtualCard,
        *,
        profile: str,
        state_file: str,
        on_remove: Callable[[], None] | None = None,
    ) -> None:
        with self._lock:
            if self.card is not None:
                raise ValueError(f"slot {self.number} already holds a card; remove it first")
            self.card = card
            self.profile_name = profile
            self.state_file = state_file
            self._on_remove = on_remove
            self._interrupt.clear()
            if self.events is not None:
                card.observer = self._on_apdu
        log.info("slot %d: card inserted (profile %s)", self.number, profile)
        self._publish(CardEvent(self.number, "insert", f"profile {profile}"))

    def replace(
        self,
        card: VirtualCard,
        *,
        profile: str,
        state_file: str,
        on_remove: Callable[[], None] | None = None,
    ) -> None:
        """Swap ``card`` in for the slot's card without pulling it: the vpcd link stays, pcscd sees nothing.

        The new card takes the old one's power state; the old one is powered
        off and its ``on_remove`` runs (its store closes). The host sees a new
        card only once it resets it (the pytest fixture's fast fresh card does
        ``SCardReconnect(SCARD_RESET_CARD)``; emulator/fixture_cards.py).
        """
        with self._lock:
            old, old_on_remove = self.card, self._on_remove
            if old is None:
                raise ValueError(f"slot {self.number} is empty; insert a card")
            if old.power is Power.ON:
                card.power_on()
            self.card = card
            self.profile_name = profile
            self.state_file = state_file
            self._on_remove = on_remove
            if self.events is not None:
                card.observer = self._on_apdu
        old.power_off()
        old.observer = None
        if old_on_remove is not None:
            old_on_remove()
        log.info("slot %d: card renewed in place (profile %s)", self.number, profile)
        self._publish(CardEvent(self.number, "insert", f"profile {profile}, in place of the previous card"))

    def remove(self, *, kind: str = "remove", detail: str = "") -> bool:
        """Pull the card; returns False if the slot was empty."""
        self._interrupt.set()
        with self._lock:
            card, on_remove = self.card, self._on_remove
            self.card = None
            self.profile_name = self.state_file = None
            self._on_remove = None
        if card is None:
            return False
        card.power_off()
        card.observer = None
        if on_remove is not None:
            on_remove()
        log.info("slot %d: card removed%s", self.number, f" ({kind})" if kind != "remove" else "")
        self._publish(CardEvent(self.number, kind, detail))
        return True

    def interrupt(self) -> None:
        """End a latency or mute now (the card is being removed)."""
        self._interrupt.set()

    def _wait_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (perf_counter) or an interrupt; timed waits oversleep, so the end is spun out."""
        rest = deadline - time.perf_counter()
        if rest > SPIN_SECONDS and self._interrupt.wait(rest - SPIN_SECONDS):
            return
        clock = time.perf_counter
        while clock() < deadline:  # at most SPIN_SECONDS: yielding here would hand the CPU away for a slice
            pass

    def info(self) -> SlotInfo:
        return SlotInfo(self.number, self.card is not None, self.profile_name, self.state_file)

    # -- events -------------------------------------------------------------
    def _publish(self, event: TraceEvent) -> None:
        if self.events is not None:
            self.events.publish(event)

    def _on_apdu(self, rec: ApduRecord) -> None:
        if self.events is not None:
            self.events.publish_apdu(self.number, rec, fault=self._fault_id)

    def _report(self, firing: Firing) -> None:
        for fault in firing.fired:
            self._publish(FaultEvent(self.number, fault.id, fault.spec.kind.value, fault.spec.describe()))

    # -- what the transport calls -------------------------------------------
    def atr(self) -> bytes:
        card = self.card
        if card is None:
            raise CardAbsent(f"slot {self.number} is empty")
        if self._atr_due:  # not a presence poll: the ATR after power-on/reset
            self._atr_due = False
            if self.faults:
                start = time.perf_counter()
                firing = self.faults.on_atr()
                self._report(firing)
                if firing.delay_ms:
                    self._wait_until(start + firing.delay_ms / 1000)
                if firing.atr is not None:
                    return firing.atr
        return card.atr

    def control(self, ctrl: Ctrl) -> None:
        card = self.card
        if card is None:
            return
        if ctrl is Ctrl.POWER_OFF:
            card.power_off()
        elif ctrl is Ctrl.POWER_ON:
            card.power_on()
            self._atr_due = True
        elif ctrl is Ctrl.RESET:
            card.reset()
            self._atr_due = True
        name = _CTRL_EVENTS.get(ctrl)
        if name is not None:
            self._publish(CardEvent(self.number, name))

    def transmit(self, apdu: bytes) -> bytes:
        card = self.card
        if card is None:
            raise CardAbsent(f"slot {self.number} is empty")
        if not self.faults or len(apdu) < 4:
            return card.transmit(apdu)
        start = time.perf_counter()  # the delay counts from here: the fault's own work is inside it
        firing = self.faults.on_command(apdu[0], apdu[1], apdu[2], card.selected_applet(apdu))
        if not firing.fired:
            return card.transmit(apdu)
        self._report(firing)
        if firing.delay_ms:
            self._wait_until(start + firing.delay_ms / 1000)
        fault = firing.terminal
        if fault is None:
            return self._answer(card, apdu, firing.fired[0].id)
        kind = fault.spec.kind
        if kind is FaultKind.SW:
            return self._fake_sw(card, apdu, fault)
        if kind is FaultKind.MUTE:
            log.warning("slot %d: fault %s: card mute; pulled in %d ms", self.number, fault.id, fault.spec.delay_ms)
            self._interrupt.wait(fault.spec.delay_ms / 1000)
            self._pull("tear", f"fault {fault.id}: mute for {fault.spec.delay_ms} ms, no answer")
            raise CardAbsent(f"slot {self.number}: mute card pulled")
        if fault.spec.when is TearWhen.AFTER:
            self._answer(card, apdu, fault.id)  # runs and commits; the response is never sent
        self._pull("tear", f"fault {fault.id}: {fault.spec.when.value} {apdu[:4].hex().upper()}")
        raise CardAbsent(f"slot {self.number}: card torn out")

    def _answer(self, card: VirtualCard, apdu: bytes, fault_id: str) -> bytes:
        self._fault_id = fault_id
        try:
            return card.transmit(apdu)
        finally:
            self._fault_id = ""

    def _fake_sw(self, card: VirtualCard, apdu: bytes, fault: Fault) -> bytes:
        sw = fault.spec.sw or 0
        out = sw.to_bytes(2, "big")
        rec = ApduRecord(apdu, out, applet=card.selected_applet(apdu), secret=Secret.COMMAND)
        rec.ins_name = f"INS_{apdu[1]:02X}"
        self._publish(ApduEvent.from_record(self.number, rec, fault=fault.id))
        log.info("slot %d: fault %s answered %04X %s", self.number, fault.id, sw, sw_name(sw))
        return out

    def _pull(self, kind: str, detail: str) -> None:
        # The slot is empty (and the event published) before the link drops: a host that
        # sees the card gone and at once asks the daemon (trace, insert) finds it gone too.
        self.remove(kind=kind, detail=detail)
        drop = self.drop_link
        if drop is not None:
            drop()
