"""Shared pieces of the Cardmod unit tests: CARD_DATA over the in-process card (no pcscd)."""

from __future__ import annotations

from incard import InProcessConnection

from minidriver.cardmod import CardAcquireContext, CardData


class Handle:
    """One caller's handle on a shared in-process card: closing it leaves the card in place."""

    def __init__(self, card: InProcessConnection) -> None:
        self.card = card

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def transmit(self, apdu: bytes) -> bytes:
        return self.card.transmit(apdu)

    def close(self) -> None:
        pass


def card_data(card: InProcessConnection, **fields: object) -> CardData:
    """A CARD_DATA as a CSP fills it before CardAcquireContext, bound to ``card``."""
    data = CardData(pbAtr=card.atr, cbAtr=len(card.atr), pwszCardName="vcard PIV", hSCardCtx=1, hScard=1)
    data.connection = Handle(card)
    for name, value in fields.items():
        setattr(data, name, value)
    return data


def acquired(card: InProcessConnection, **fields: object) -> CardData:
    data = card_data(card, **fields)
    code = CardAcquireContext(data, 0)
    assert code == 0, hex(code)
    return data
