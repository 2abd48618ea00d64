"""Binding a context to its card: the transport behind ``hScard`` and the PIV session on it.

``hScard``/``hSCardCtx`` may change when the caller reconnects (minidriver-spec.md §1.1): they
are read on every call, and a new handle, or a card that was removed or reset under the context,
makes the next call bind again (SELECT the PIV application, caches dropped).
"""

from __future__ import annotations

from typing import Any

from ..iso7816 import ApduError
from ..piv import PivSession
from .codes import MinidriverError, ScardCode
from .context import MinidriverContext, context_of
from .types import CardData

__all__ = ["bind", "session"]


def _connection(card_data: CardData) -> Any:
    if card_data.connection is not None:
        return card_data.connection
    from ..pcsc import PcscConnection

    return PcscConnection.from_handles(card_data.hSCardCtx, card_data.hScard)


def bind(card_data: CardData, ctx: MinidriverContext) -> None:
    """SELECT the PIV application through the card's transport (CardAcquireContext step 8)."""
    connection = _connection(card_data)
    try:
        piv = PivSession(connection)
    except ApduError as exc:
        raise MinidriverError(ScardCode.SCARD_E_UNKNOWN_CARD, f"no PIV application ({exc})") from exc
    ctx.connection = connection
    ctx.piv = piv
    ctx.bound_handle = card_data.hScard
    ctx.card_lost = None


def session(card_data: CardData) -> PivSession:
    """The PIV session of a card context, bound again if the handle changed or the card was lost."""
    ctx = context_of(card_data)
    if ctx.no_card:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "no card in NO_CARD_MODE")
    if ctx.piv is None or card_data.hScard != ctx.bound_handle or ctx.card_lost is not None:
        # SCardReconnect keeps the handle's value, so the same hScard may be usable again: binding
        # asks pcscd (SCardStatus in from_handles, then SELECT), which fails with the card's
        # removed/reset code until the caller has reconnected
        ctx.forget_card(ScardCode.SCARD_W_RESET_CARD)
        bind(card_data, ctx)
    piv: PivSession = ctx.piv
    return piv
