"""A whole virtual card in process, behind minidriver's ``Connection`` protocol (no pcscd, no reader).

For unit tests of anything built on :mod:`minidriver` (PivSession, GPSession,
the Cardmod API): ``minidriver/`` itself never imports ``emulator``, the
tests may. Import it from a test in this directory::

    from incard import InProcessConnection
    conn = InProcessConnection()                 # default profile, fresh memory store
    session = PivSession(conn)

``remove()`` makes the next transmit fail like a pulled card (a
``PcscError`` with SCARD_W_REMOVED_CARD), ``insert()`` brings it back powered
on with its persistent state; ``reset()`` clears transient state as a warm
reset does and makes the next transmit fail with SCARD_W_RESET_CARD once, as
pcscd reports it to a shared handle.
"""

from __future__ import annotations

from emulator.card import VirtualCard
from emulator.factory import build_card
from emulator.profile import load_profile
from emulator.store import MemoryStore, Store
from minidriver.pcsc import PcscCode, PcscError

__all__ = ["InProcessConnection"]


class InProcessConnection:
    """Bytes to and from a :class:`VirtualCard` built from ``profile`` over ``store``."""

    def __init__(self, profile: str | None = None, store: Store | None = None) -> None:
        self.store = store if store is not None else MemoryStore()
        self.card: VirtualCard = build_card(load_profile(profile), self.store)
        self.card.power_on()
        self.present = True
        self._pending: PcscCode | None = None
        self.sent: list[bytes] = []  #: every command APDU, for tests that check the wire

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def transmit(self, apdu: bytes) -> bytes:
        if not self.present:
            raise PcscError(PcscCode.SCARD_W_REMOVED_CARD, "SCardTransmit")
        if self._pending is not None:
            code, self._pending = self._pending, None
            raise PcscError(code, "SCardTransmit")
        self.sent.append(bytes(apdu))
        return self.card.transmit(bytes(apdu))

    def remove(self) -> None:
        self.card.power_off()
        self.present = False

    def insert(self) -> None:
        self.card.power_on()
        self.present = True
        self._pending = None

    def reset(self) -> None:
        self.card.reset()
        self._pending = PcscCode.SCARD_W_RESET_CARD

    def reconnect(self) -> bytes:
        """After a reset: the handle is usable again (pcscd's SCardReconnect)."""
        self._pending = None
        return self.atr

    def close(self) -> None:
        self.present = False
