"""Small helpers shared by the core entry points (properties, PINs, file system).

Kept apart so that each group module deals only with its own parameter rules.
"""

from __future__ import annotations

from ..iso7816 import SW, ApduError
from .codes import MinidriverError, ScardCode
from .context import MinidriverContext, context_of
from .types import CardData, Out

__all__ = ["alloc_copy", "apdu_error", "buffer", "ctx_of", "out_required"]


def ctx_of(card_data: CardData) -> MinidriverContext:
    return context_of(card_data)


def out_required(*boxes: object) -> None:
    """An out-parameter the spec does not mark ``_opt`` is NULL -> SCARD_E_INVALID_PARAMETER."""
    for box in boxes:
        if not isinstance(box, Out):
            raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "an out-parameter is NULL")


def buffer(data: bytes | bytearray | None, size: int, what: str) -> bytes:
    """``pbData``/``cbData`` as one value: NULL or a count beyond the buffer -> INVALID_PARAMETER."""
    if data is None:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"{what} is NULL")
    if not isinstance(size, int) or not 0 <= size <= len(data):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"{what}: count {size!r} does not fit the buffer")
    return bytes(data[:size])


def alloc_copy(card_data: CardData, data: bytes) -> bytearray:
    """A buffer from ``pfnCspAlloc`` holding ``data`` (the caller frees it with pfnCspFree).

    pfnCspAlloc returning NULL -> ERROR_NOT_ENOUGH_MEMORY (spec PFN_CSP_ALLOC remarks).
    """
    alloc = card_data.pfnCspAlloc
    buf = alloc(len(data)) if alloc is not None else None
    if buf is None:
        raise MinidriverError(ScardCode.ERROR_NOT_ENOUGH_MEMORY, "pfnCspAlloc returned NULL")
    buf[: len(data)] = data
    if len(buf) > len(data):
        del buf[len(data) :]
    return buf


#: status words -> minidriver codes when a card command fails (minidriver-spec.md §3.0, §6)
_SW_CODES = {
    SW.SECURITY_STATUS_NOT_SATISFIED: ScardCode.SCARD_W_SECURITY_VIOLATION,
    SW.AUTH_METHOD_BLOCKED: ScardCode.SCARD_W_CHV_BLOCKED,
    SW.FILE_NOT_FOUND: ScardCode.SCARD_E_FILE_NOT_FOUND,
    SW.REFERENCED_DATA_NOT_FOUND: ScardCode.SCARD_E_FILE_NOT_FOUND,
    SW.INS_NOT_SUPPORTED: ScardCode.SCARD_E_UNSUPPORTED_FEATURE,
    0x6A84: ScardCode.SCARD_E_WRITE_TOO_MANY,  # not enough memory in the card
    0x6A80: ScardCode.SCARD_E_INVALID_PARAMETER,  # wrong data
}


def apdu_error(exc: ApduError, what: str, **override: ScardCode) -> MinidriverError:
    """The minidriver error for a failed card command; ``override`` maps SW names (``SW_6A80=``)."""
    sw = exc.sw
    code = override.get(f"SW_{sw:04X}")
    if code is None:
        wrong_chv = sw & 0xFFF0 == 0x63C0
        code = ScardCode.SCARD_W_WRONG_CHV if wrong_chv else _SW_CODES.get(sw, ScardCode.SCARD_E_UNEXPECTED)
    return MinidriverError(code, f"{what}: card answered {sw:04X}")
