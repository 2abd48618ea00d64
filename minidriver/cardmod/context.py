"""The context: CardAcquireContext, CardDeleteContext, the function table, entry-point rules.

Every entry point is a plain function registered with :func:`entry`. The decorator applies the
rules common to all of them (minidriver-spec.md §1, §3.0, §5.3) so that each function body deals
only with its own parameters:

* ``pCardData`` NULL, or a CARD_DATA no CardAcquireContext bound -> SCARD_E_INVALID_PARAMETER;
* in NO_CARD_MODE only the functions the SKI page allows run, the others answer
  SCARD_E_INVALID_PARAMETER;
* a :class:`MinidriverError` becomes its code; a card removed or reset under the context becomes
  SCARD_W_REMOVED_CARD / SCARD_W_RESET_CARD and ends every key handle (the context binds again
  on the next call, once the caller has reconnected);
* anything else is logged with its traceback and answered SCARD_E_UNEXPECTED.

CardAcquireContext fills ``pfnCard*`` for the negotiated version only (§1.2): an entry point is
registered with the version that introduced it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec

from ..pcsc import PcscCode, PcscError
from .codes import MinidriverError, ScardCode
from .types import (
    CARD_DATA_CURRENT_VERSION,
    CARD_DATA_MINIMUM_VERSION,
    CARD_SECURE_KEY_INJECTION_NO_CARD_MODE,
    CardData,
    CardDataVersion,
    PinSet,
)

__all__ = [
    "FUNCTION_TABLE",
    "CardAcquireContext",
    "CardDeleteContext",
    "MinidriverContext",
    "entry",
]

log = logging.getLogger("minidriver")

P = ParamSpec("P")

#: pfn field name -> (version that added it, the entry point)
FUNCTION_TABLE: dict[str, tuple[int, Callable[..., int]]] = {}

#: a PC/SC error under the context that means "the card went away" -> the code the caller gets
_CARD_GONE = {
    PcscCode.SCARD_W_REMOVED_CARD: ScardCode.SCARD_W_REMOVED_CARD,
    PcscCode.SCARD_E_NO_SMARTCARD: ScardCode.SCARD_W_REMOVED_CARD,
    PcscCode.SCARD_W_RESET_CARD: ScardCode.SCARD_W_RESET_CARD,
    PcscCode.SCARD_W_UNPOWERED_CARD: ScardCode.SCARD_W_RESET_CARD,
}


@dataclass
class MinidriverContext:
    """``pvVendorSpecific``: everything one context keeps between calls.

    Groups of entry points keep their own state in their own attribute (``vfs``, ``dh``, ``ski``)
    so they never reach into each other's.
    """

    version: int
    no_card: bool
    #: the ``hScard`` the session below was bound with; a different one means "rebind"
    bound_handle: int = 0
    #: transport + PIV session, built lazily by :func:`minidriver.cardmod.binding.session`
    connection: Any = None
    piv: Any = None
    authenticated: PinSet = PinSet.NONE
    vfs: Any = None
    dh: dict[int, bytes] = field(default_factory=dict)
    ski: Any = None
    #: set when the card was removed or reset under the context; cleared by a rebind
    card_lost: ScardCode | None = None

    def forget_card(self, why: ScardCode) -> None:
        """Drop all card-bound state: session, security status, caches, handles."""
        self.card_lost = why
        self.piv = None
        self.connection = None
        self.authenticated = PinSet.NONE
        self.vfs = None
        self.dh.clear()
        if self.ski is not None and hasattr(self.ski, "card_gone"):
            self.ski.card_gone()


def context_of(card_data: CardData) -> MinidriverContext:
    ctx = card_data.pvVendorSpecific
    if not isinstance(ctx, MinidriverContext):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "CARD_DATA has no context (CardAcquireContext first)")
    return ctx


def _card_gone_code(exc: BaseException) -> ScardCode | None:
    if isinstance(exc, PcscError) and exc.card_gone:
        return _CARD_GONE[PcscCode(exc.code)]
    return None


def entry(
    since: int, *, no_card: bool = False, name: str | None = None
) -> Callable[[Callable[P, int | None]], Callable[P, int]]:
    """Register an entry point added in CARD_DATA version ``since``.

    ``no_card``: callable in CARD_SECURE_KEY_INJECTION_NO_CARD_MODE (minidriver-spec.md §5.3).
    """

    def decorate(fn: Callable[P, int | None]) -> Callable[P, int]:
        spec_name = name or fn.__name__
        call: Callable[..., int | None] = fn

        @functools.wraps(fn)
        def wrapper(pCardData: CardData | None, *args: Any) -> int:
            try:
                if pCardData is None:
                    return ScardCode.SCARD_E_INVALID_PARAMETER
                ctx = context_of(pCardData)
                if ctx.no_card and not no_card:
                    return ScardCode.SCARD_E_INVALID_PARAMETER
                result = call(pCardData, *args)
                return ScardCode.SCARD_S_SUCCESS if result is None else int(result)
            except MinidriverError as exc:
                log.debug("%s: %s", spec_name, exc)
                return exc.code
            except Exception as exc:
                gone = _card_gone_code(exc)
                if gone is not None:
                    log.info("%s: card %s", spec_name, "removed" if gone == ScardCode.SCARD_W_REMOVED_CARD else "reset")
                    if pCardData is not None and isinstance(pCardData.pvVendorSpecific, MinidriverContext):
                        pCardData.pvVendorSpecific.forget_card(gone)
                    return gone
                log.exception("%s failed", spec_name)
                return ScardCode.SCARD_E_UNEXPECTED

        FUNCTION_TABLE[f"pfn{spec_name}"] = (since, wrapper)
        return wrapper  # type: ignore[return-value]  # wrapper takes pCardData=None too

    return decorate


def _check_card_fields(card_data: CardData) -> None:
    """CardAcquireContext steps 3-4 (minidriver-spec.md §3.1)."""
    if card_data.connection is None and (not card_data.hSCardCtx or not card_data.hScard):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_HANDLE, "hSCardCtx/hScard are 0")
    atr = card_data.pbAtr
    if atr is None or card_data.pwszCardName is None:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "pbAtr or pwszCardName is NULL")
    if not 2 <= card_data.cbAtr <= 0x22 or card_data.cbAtr > len(atr):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"cbAtr {card_data.cbAtr} is not a valid ATR length")
    if atr[0] in (0x00, 0xFF):
        raise MinidriverError(ScardCode.SCARD_E_UNKNOWN_CARD, "ATR starts with 00 or FF")


def CardAcquireContext(pCardData: CardData | None, dwFlags: int) -> int:
    """Bind a context to the card in ``pCardData`` (or to no card) and fill the function table.

    Check order: minidriver-spec.md §3.1.
    """
    try:
        if pCardData is None:
            return ScardCode.SCARD_E_INVALID_PARAMETER
        if not isinstance(dwFlags, int) or dwFlags & ~CARD_SECURE_KEY_INJECTION_NO_CARD_MODE:
            return ScardCode.SCARD_E_INVALID_PARAMETER
        no_card = bool(dwFlags & CARD_SECURE_KEY_INJECTION_NO_CARD_MODE)
        if not no_card:
            _check_card_fields(pCardData)
        if pCardData.pfnCspAlloc is None or pCardData.pfnCspReAlloc is None or pCardData.pfnCspFree is None:
            return ScardCode.SCARD_E_INVALID_PARAMETER
        if pCardData.dwVersion < CARD_DATA_MINIMUM_VERSION:
            return ScardCode.ERROR_REVISION_MISMATCH
        version = min(pCardData.dwVersion, CARD_DATA_CURRENT_VERSION)
        ctx = MinidriverContext(version=version, no_card=no_card)
        if not no_card:
            from .binding import bind

            bind(pCardData, ctx)
        pCardData.dwVersion = version
        pCardData.pvVendorSpecific = ctx
        for pfn, (since, fn) in FUNCTION_TABLE.items():
            if hasattr(pCardData, pfn):
                setattr(pCardData, pfn, fn if since <= version else None)
        return ScardCode.SCARD_S_SUCCESS
    except MinidriverError as exc:
        log.debug("CardAcquireContext: %s", exc)
        return exc.code
    except Exception as exc:
        gone = _card_gone_code(exc)
        if gone is not None:
            return gone
        log.exception("CardAcquireContext failed")
        return ScardCode.SCARD_E_UNEXPECTED


def CardDeleteContext(pCardData: CardData | None) -> int:
    """Free the context; sends no APDU (the card may be gone, no transaction is held)."""
    if pCardData is None or not isinstance(pCardData.pvVendorSpecific, MinidriverContext):
        return ScardCode.SCARD_E_INVALID_PARAMETER
    ctx = pCardData.pvVendorSpecific
    if ctx.ski is not None and hasattr(ctx.ski, "destroy_all"):
        ctx.ski.destroy_all()
    ctx.forget_card(ScardCode.SCARD_E_INVALID_HANDLE)
    pCardData.pvVendorSpecific = None
    for pfn in FUNCTION_TABLE:
        if hasattr(pCardData, pfn):
            setattr(pCardData, pfn, None)
    return ScardCode.SCARD_S_SUCCESS


FUNCTION_TABLE["pfnCardDeleteContext"] = (CardDataVersion.FOUR, CardDeleteContext)
