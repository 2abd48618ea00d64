"""A reader slot: the place a card is inserted into and removed from.

The transport asks the slot, never the card, so insert and remove are just
a swap of ``card`` under a lock. Removal powers the card off, which clears
every transient state (sessions, PIN status, selections).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .card import VirtualCard
from .transport.server import CardAbsent
from .transport.vpcd import Ctrl

__all__ = ["CardAbsent", "Slot"]

log = logging.getLogger(__name__)


@dataclass
class SlotInfo:
    number: int
    present: bool
    profile: str | None
    state_file: str | None


class Slot:
    def __init__(self, number: int) -> None:
        self.number = number
        self.card: VirtualCard | None = None
        self.profile_name: str | None = None
        self.state_file: str | None = None
        self._lock = threading.Lock()
        self._on_remove: Callable[[], None] | None = None

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
        log.info("slot %d: card inserted (profile %s)", self.number, profile)

    def remove(self) -> bool:
        """Pull the card; returns False if the slot was empty."""
        with self._lock:
            card, on_remove = self.card, self._on_remove
            self.card = None
            self.profile_name = self.state_file = None
            self._on_remove = None
        if card is None:
            return False
        card.power_off()
        if on_remove is not None:
            on_remove()
        log.info("slot %d: card removed", self.number)
        return True

    def info(self) -> SlotInfo:
        return SlotInfo(self.number, self.card is not None, self.profile_name, self.state_file)

    # -- what the transport calls -------------------------------------------
    def atr(self) -> bytes:
        card = self.card
        if card is None:
            raise CardAbsent(f"slot {self.number} is empty")
        return card.atr

    def control(self, ctrl: Ctrl) -> None:
        card = self.card
        if card is None:
            return
        if ctrl is Ctrl.POWER_OFF:
            card.power_off()
        elif ctrl is Ctrl.POWER_ON:
            card.power_on()
        elif ctrl is Ctrl.RESET:
            card.reset()

    def transmit(self, apdu: bytes) -> bytes:
        card = self.card
        if card is None:
            raise CardAbsent(f"slot {self.number} is empty")
        return card.transmit(apdu)
