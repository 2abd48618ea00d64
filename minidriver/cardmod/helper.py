"""A CARD_DATA for a reader name: what a CSP does before CardAcquireContext, over real PC/SC.

    card_data = card_data_for_reader("Virtual PCD 00 00")
    assert CardAcquireContext(card_data, 0) == 0
    ...
    CardDeleteContext(card_data)
    release(card_data)

The PC/SC context and card handle are ours (one :class:`~minidriver.pcsc.PcscConnection` per
CARD_DATA, kept here); the minidriver reaches the card through ``hSCardCtx``/``hScard`` only,
as it would under Windows. :func:`reconnect` is the caller's SCardReconnect after a removal or
reset (same handle value, minidriver-spec.md §1.1).
"""

from __future__ import annotations

from ..pcsc import Disposition, PcscConnection, PcscError, list_readers
from .codes import MinidriverError, ScardCode
from .types import CARD_DATA_CURRENT_VERSION, CardData

__all__ = ["CARD_NAME", "card_data_for_reader", "connection_of", "reconnect", "release"]

#: pwszCardName: the Calais registry name a CSP would pass; any name is valid for a PIV card
CARD_NAME = "PIV Card (vcard minidriver)"

_OWNED: dict[int, PcscConnection] = {}


def _first_reader_with_card() -> PcscConnection:
    readers = list_readers()
    if not readers:
        raise MinidriverError(ScardCode.SCARD_E_NO_READERS_AVAILABLE, "no reader: is pcscd running with a reader?")
    for name in readers:
        try:
            return PcscConnection(name)
        except PcscError:
            continue
    raise MinidriverError(ScardCode.SCARD_E_NO_SMARTCARD, f"no card in any reader ({', '.join(readers)})")


def card_data_for_reader(reader: str | None = None, *, version: int = CARD_DATA_CURRENT_VERSION) -> CardData:
    """Connect to the card in ``reader`` (None: the first reader holding a card) and fill the
    CARD_DATA fields a caller sets before CardAcquireContext (§1.1). PcscError if PC/SC fails."""
    conn = PcscConnection(reader) if reader is not None else _first_reader_with_card()
    atr = conn.atr
    card_data = CardData(
        dwVersion=version,
        pbAtr=atr,
        cbAtr=len(atr),
        pwszCardName=CARD_NAME,
        hSCardCtx=int(conn.context),
        hScard=int(conn.handle),
    )
    _OWNED[id(card_data)] = conn
    return card_data


def connection_of(card_data: CardData) -> PcscConnection:
    """The PC/SC connection :func:`card_data_for_reader` made for ``card_data``."""
    try:
        return _OWNED[id(card_data)]
    except KeyError:
        raise ValueError("this CARD_DATA was not made by card_data_for_reader (or is released)") from None


def reconnect(card_data: CardData, disposition: Disposition = Disposition.LEAVE) -> None:
    """SCardReconnect the caller's handle (after SCARD_W_REMOVED_CARD/RESET_CARD) and refresh the ATR."""
    conn = connection_of(card_data)
    atr = conn.reconnect(disposition)
    card_data.pbAtr, card_data.cbAtr = atr, len(atr)
    card_data.hScard = int(conn.handle)


def release(card_data: CardData) -> None:
    """Disconnect and release the PC/SC context; the CARD_DATA keeps no handle. Safe twice."""
    conn = _OWNED.pop(id(card_data), None)
    if conn is not None:
        conn.close()
    card_data.hScard = card_data.hSCardCtx = 0
