"""Conformance rows for the core entry points: context, capabilities/properties, PINs, files.

Row format: :mod:`minidriver.cardmod.checks`. Each ``run`` calls one entry point through the
function table CardAcquireContext filled (``card.pfnX``), as a CSP does, and returns the DWORD;
functional rows also check what came back and raise CheckFailed. Rows that spend PIN/PUK tries
put the counter back with the right value (non-destructive); rows that block the PIN are
destructive and unblock it again with the PUK.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .checks import Check, CheckEnv, CheckFailed
from .codes import ScardCode as C
from .context import CardAcquireContext, CardDeleteContext
from .structs import CardCapabilities, CardFreeSpaceInfo, CardKeySizes, ContainerMapRecord
from .types import CardData, Out

__all__ = ["CHECKS"]

OK = C.SCARD_S_SUCCESS
INVALID = C.SCARD_E_INVALID_PARAMETER
UNSUPPORTED = C.SCARD_E_UNSUPPORTED_FEATURE
CHECKS: list[Check] = []


def row(
    function: str, case: str, expected: int | tuple[int, ...], **kw: Any
) -> Callable[[Callable[[CheckEnv], int]], None]:
    def add(run: Callable[[CheckEnv], int]) -> None:
        CHECKS.append(Check(function, case, expected, run, **kw))

    return add


def call(env: CheckEnv, name: str, *args: Any, card: CardData | None = None) -> int:
    card = card or env.card
    fn = getattr(card, f"pfn{name}")
    if fn is None:
        raise CheckFailed(f"pfn{name} is NULL in a version {card.dwVersion} context")
    return int(fn(card, *args))


def expect(condition: bool, why: str) -> None:
    if not condition:
        raise CheckFailed(why)


@contextmanager
def scratch(env: CheckEnv, **fields: Any) -> Iterator[CardData]:
    """A CardData from the row's factory, changed by ``fields``, never left acquired or open."""
    from .helper import release

    card = env.make_card()
    saved = {name: getattr(card, name) for name in fields}
    for name, value in fields.items():
        setattr(card, name, value)
    try:
        yield card
    finally:
        if card.pvVendorSpecific is not None:
            CardDeleteContext(card)
        for name, value in saved.items():
            setattr(card, name, value)
        release(card)
        close = getattr(card.connection, "close", None)
        if callable(close):
            close()


def acquire_with(env: CheckEnv, flags: int = 0, **fields: Any) -> int:
    with scratch(env, **fields) as card:
        return CardAcquireContext(card, flags)


def read(env: CheckEnv, directory: str | None, name: str, card: CardData | None = None) -> bytes:
    data: Out[bytearray] = Out()
    size: Out[int] = Out()
    code = call(env, "CardReadFile", directory, name, 0, data, size, card=card)
    if code:
        raise CheckFailed(f"CardReadFile({directory}/{name}) returned {code:#x}")
    return bytes(data.value or b"")


def admin_response(env: CheckEnv, card: CardData | None = None) -> bytes:
    challenge: Out[bytearray] = Out()
    size: Out[int] = Out()
    code = call(env, "CardGetChallenge", challenge, size, card=card)
    if code:
        raise CheckFailed(f"CardGetChallenge returned {code:#x}")
    block = bytes(challenge.value or b"")
    cipher = TripleDES(env.mgmt_key) if len(block) == 8 else algorithms.AES(env.mgmt_key)
    enc = Cipher(cipher, modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def login(env: CheckEnv, card: CardData | None = None) -> None:
    code = call(env, "CardAuthenticatePin", "user", env.pin, len(env.pin), None, card=card)
    if code:
        raise CheckFailed(f"CardAuthenticatePin with the card's PIN returned {code:#x}")


def prop(env: CheckEnv, name: str, flags: int = 0, card: CardData | None = None) -> bytes:
    size: Out[int] = Out()
    buf = bytearray(512)
    code = call(env, "CardGetProperty", name, buf, len(buf), size, flags, card=card)
    if code:
        raise CheckFailed(f"CardGetProperty({name!r}) returned {code:#x}")
    return bytes(buf[: size.value])


# -- CardAcquireContext / CardDeleteContext (§3.1) -----------------------------------------------
row("CardAcquireContext", "pCardData NULL", INVALID)(lambda env: CardAcquireContext(None, 0))
row("CardAcquireContext", "unknown dwFlags bit", INVALID)(lambda env: acquire_with(env, 0x2))
row("CardAcquireContext", "dwVersion 3", C.ERROR_REVISION_MISMATCH)(lambda env: acquire_with(env, dwVersion=3))
row("CardAcquireContext", "hScard 0", C.SCARD_E_INVALID_HANDLE)(
    lambda env: acquire_with(env, hScard=0, hSCardCtx=0, connection=None)
)
row("CardAcquireContext", "pbAtr NULL", INVALID)(lambda env: acquire_with(env, pbAtr=None))
row("CardAcquireContext", "pwszCardName NULL", INVALID)(lambda env: acquire_with(env, pwszCardName=None))
row("CardAcquireContext", "cbAtr 1", INVALID)(lambda env: acquire_with(env, cbAtr=1))
row("CardAcquireContext", "pfnCspAlloc NULL", INVALID)(lambda env: acquire_with(env, pfnCspAlloc=None))
row("CardDeleteContext", "pCardData NULL", INVALID)(lambda env: CardDeleteContext(None))


@row("CardAcquireContext", "dwVersion 9 -> 7", OK)
def _negotiate_high(env: CheckEnv) -> int:
    with scratch(env, dwVersion=9) as card:
        code = CardAcquireContext(card, 0)
        expect(code != OK or card.dwVersion == 7, f"negotiated {card.dwVersion}, not 7")
        return code


@row("CardAcquireContext", "dwVersion 5: no v6 functions", OK)
def _negotiate_five(env: CheckEnv) -> int:
    with scratch(env, dwVersion=5) as card:
        code = CardAcquireContext(card, 0)
        expect(code != OK or card.dwVersion == 5, f"negotiated {card.dwVersion}, not 5")
        expect(code != OK or card.pfnCardGetProperty is None, "pfnCardGetProperty set in a v5 context")
        expect(code != OK or card.pfnCardDeriveKey is not None, "pfnCardDeriveKey missing in a v5 context")
        return code


@row("CardReadFile", "after CardDeleteContext", INVALID)
def _deleted(env: CheckEnv) -> int:
    from .vfs import CardReadFile

    with scratch(env) as card:
        expect(CardAcquireContext(card, 0) == OK, "CardAcquireContext failed")
        CardDeleteContext(card)
        expect(card.pfnCardReadFile is None, "the function table outlived the context")
        return CardReadFile(card, None, "cardid", 0, Out(), Out())


@row("CardReadFile", "NO_CARD_MODE context", INVALID)
def _no_card(env: CheckEnv) -> int:
    from .vfs import CardReadFile

    with scratch(env, hScard=0, hSCardCtx=0, pbAtr=None, cbAtr=0) as card:
        code = CardAcquireContext(card, 0x1)
        if code == UNSUPPORTED:
            from .checks import CheckSkipped

            raise CheckSkipped("this build has no NO_CARD_MODE")
        expect(code == OK, f"CardAcquireContext(NO_CARD_MODE) returned {code:#x}")
        return CardReadFile(card, None, "cardid", 0, Out(), Out())


# -- capabilities, free space, key sizes (§3.2) ----------------------------------------------------
row("CardQueryCapabilities", "NULL", INVALID)(lambda env: call(env, "CardQueryCapabilities", None))
row("CardQueryCapabilities", "dwVersion 2", C.ERROR_REVISION_MISMATCH)(
    lambda env: call(env, "CardQueryCapabilities", CardCapabilities(dwVersion=2))
)
row("CardQueryCapabilities", "dwVersion 0 counts as 1", OK)(
    lambda env: call(env, "CardQueryCapabilities", CardCapabilities(dwVersion=0))
)
row("CardQueryFreeSpace", "dwFlags 1", INVALID)(lambda env: call(env, "CardQueryFreeSpace", 1, CardFreeSpaceInfo()))
row("CardQueryFreeSpace", "NULL", INVALID)(lambda env: call(env, "CardQueryFreeSpace", 0, None))


@row("CardQueryFreeSpace", "24 containers at most", OK)
def _free_space(env: CheckEnv) -> int:
    info = CardFreeSpaceInfo()
    code = call(env, "CardQueryFreeSpace", 0, info)
    expect(code != OK or info.dwMaxKeyContainers == 24, f"dwMaxKeyContainers {info.dwMaxKeyContainers}")
    return code


row("CardQueryKeySizes", "dwFlags 1", INVALID)(lambda env: call(env, "CardQueryKeySizes", 2, 1, CardKeySizes()))
row("CardQueryKeySizes", "dwKeySpec 0 (undefined)", INVALID)(
    lambda env: call(env, "CardQueryKeySizes", 0, 0, CardKeySizes())
)
row("CardQueryKeySizes", "dwKeySpec 9 (undefined)", INVALID)(
    lambda env: call(env, "CardQueryKeySizes", 9, 0, CardKeySizes())
)
row("CardQueryKeySizes", "AT_ECDSA_P521 (unsupported)", UNSUPPORTED)(
    lambda env: call(env, "CardQueryKeySizes", 5, 0, CardKeySizes())
)
row("CardQueryKeySizes", "pKeySizes NULL", INVALID)(lambda env: call(env, "CardQueryKeySizes", 2, 0, None))


@row("CardQueryKeySizes", "AT_ECDHE_P256 = 256 bits", OK)
def _ec_sizes(env: CheckEnv) -> int:
    sizes = CardKeySizes()
    code = call(env, "CardQueryKeySizes", 6, 0, sizes)
    got = (sizes.dwMinimumBitlen, sizes.dwDefaultBitlen, sizes.dwMaximumBitlen, sizes.dwIncrementalBitlen)
    expect(code != OK or got == (256, 256, 256, 1), f"sizes {got}")
    return code


# -- properties (§3.2) ------------------------------------------------------------------------------
def get(env: CheckEnv, name: str | None, pb: bytearray | None, cb: int, size: Out[int] | None, flags: int = 0) -> int:
    return call(env, "CardGetProperty", name, pb, cb, size, flags)


row("CardGetProperty", "wszProperty NULL", INVALID)(lambda env: get(env, None, bytearray(4), 4, Out()))
row("CardGetProperty", "pdwDataLen NULL", INVALID)(lambda env: get(env, "Read Only Mode", bytearray(4), 4, None))
row("CardGetProperty", "unknown property", INVALID)(lambda env: get(env, "No Such Property", bytearray(4), 4, Out()))
row("CardGetProperty", "dwFlags on a flagless property", INVALID)(
    lambda env: get(env, "Read Only Mode", bytearray(4), 4, Out(), 1)
)
row("CardGetProperty", "CP_PARENT_WINDOW is write-only", INVALID)(
    lambda env: get(env, "Parent Window", bytearray(8), 8, Out())
)
row("CardGetProperty", "CP_CARD_PIN_INFO of PIN id 9", INVALID)(
    lambda env: get(env, "PIN Information", bytearray(36), 36, Out(), 9)
)
row("CardGetProperty", "CP_CARD_PIN_INFO dwVersion 5", C.ERROR_REVISION_MISMATCH)(
    lambda env: get(env, "PIN Information", bytearray(struct.pack("<I", 5) + bytes(32)), 36, Out(), 1)
)
row("CardGetProperty", "CP_CARD_KEYSIZES undefined key spec", INVALID)(
    lambda env: get(env, "Key Sizes", bytearray(20), 20, Out(), 0)
)
row("CardGetProperty", "CP_ENUM_ALGORITHMS bad selector", INVALID)(
    lambda env: get(env, "Algorithms", bytearray(64), 64, Out(), 4)
)


@row("CardGetProperty", "size probe (pbData NULL)", OK)
def _probe(env: CheckEnv) -> int:
    size: Out[int] = Out()
    code = get(env, "Card Identifier", None, 0, size)
    expect(code != OK or size.value == 16, f"*pdwDataLen {size.value}, not 16")
    return code


@row("CardGetProperty", "buffer too small", C.ERROR_INSUFFICIENT_BUFFER)
def _small(env: CheckEnv) -> int:
    size: Out[int] = Out()
    code = get(env, "Card Identifier", bytearray(8), 8, size)
    expect(size.value == 16, f"*pdwDataLen {size.value} on a small buffer, not the 16 needed")
    return code


@row("CardGetProperty", "CP_CARD_GUID = cardid", OK)
def _guid(env: CheckEnv) -> int:
    expect(prop(env, "Card Identifier") == read(env, None, "cardid"), "CP_CARD_GUID differs from cardid")
    return OK


@row("CardGetProperty", "not read-only, PIN list, plaintext PINs", OK)
def _basic_props(env: CheckEnv) -> int:
    expect(prop(env, "Read Only Mode") == bytes(4), "CP_CARD_READ_ONLY is not FALSE")
    expect(struct.unpack("<I", prop(env, "PIN List"))[0] & 0x06 == 0x06, "user and admin missing from the PIN list")
    expect(prop(env, "PIN Strength Verify", 1) == struct.pack("<I", 1), "user PIN strength is not PLAINTEXT")
    return OK


row("CardSetProperty", "read-only property", UNSUPPORTED)(
    lambda env: call(env, "CardSetProperty", "Capabilities", bytes(12), 12, 0)
)
row("CardSetProperty", "pbData NULL", INVALID)(lambda env: call(env, "CardSetProperty", "Parent Window", None, 8, 0))
row("CardSetProperty", "CP_PARENT_WINDOW of 4 bytes", INVALID)(
    lambda env: call(env, "CardSetProperty", "Parent Window", bytes(4), 4, 0)
)
row("CardSetProperty", "dwFlags 1", INVALID)(lambda env: call(env, "CardSetProperty", "Parent Window", bytes(8), 8, 1))
row("CardSetProperty", "CP_PARENT_WINDOW", OK)(
    lambda env: call(env, "CardSetProperty", "Parent Window", bytes(8), 8, 0)
)
row("CardSetProperty", "CP_PIN_CONTEXT_STRING", OK)(
    lambda env: call(env, "CardSetProperty", "PIN Context String", "Sign in".encode("utf-16-le"), 14, 0)
)


def containers(env: CheckEnv) -> list[ContainerMapRecord]:
    raw = read(env, "mscp", "cmapfile")
    return [ContainerMapRecord.from_bytes(raw[i : i + 86]) for i in range(0, len(raw), 86)]


def index_where(env: CheckEnv, valid: bool) -> int:
    for i, record in enumerate(containers(env)):
        if bool(record.bFlags & 1) == valid:
            return i
    from .checks import CheckSkipped

    raise CheckSkipped("no such container on this card")


def get_cprop(env: CheckEnv, index: int, name: str, flags: int = 0) -> int:
    return call(env, "CardGetContainerProperty", index, name, bytearray(4), 4, Out(), flags)


row("CardGetContainerProperty", "empty container", C.SCARD_E_NO_KEY_CONTAINER)(
    lambda env: get_cprop(env, index_where(env, False), "PIN Identifier")
)
row("CardGetContainerProperty", "index 200", C.SCARD_E_NO_KEY_CONTAINER)(
    lambda env: get_cprop(env, 200, "PIN Identifier")
)
row("CardGetContainerProperty", "dwFlags 1", INVALID)(
    lambda env: get_cprop(env, index_where(env, True), "PIN Identifier", 1)
)
row("CardGetContainerProperty", "unknown property", INVALID)(
    lambda env: get_cprop(env, index_where(env, True), "Color")
)
row("CardGetContainerProperty", "CCP_PIN_IDENTIFIER", OK)(
    lambda env: get_cprop(env, index_where(env, True), "PIN Identifier")
)
row("CardSetContainerProperty", "CCP_CONTAINER_INFO is read-only", UNSUPPORTED)(
    lambda env: call(env, "CardSetContainerProperty", index_where(env, True), "Container Info", bytes(40), 40, 0)
)
row("CardSetContainerProperty", "dwFlags 1", INVALID)(
    lambda env: call(env, "CardSetContainerProperty", 0, "PIN Identifier", bytes(4), 4, 1)
)

from . import checks_core_pins  # noqa: E402,F401 - the PIN and file rows append to CHECKS
