"""Cardmod.h v7 in Python: the NULL/out-parameter convention, constants and CARD_DATA.

Conventions (README "The minidriver API"):

* ``None`` is NULL. Input buffers are ``bytes``; a buffer the caller provides for the
  minidriver to fill (``pbData``/``cbData`` of CardGetProperty) is a ``bytearray``.
* An out-parameter (``PDWORD pdwDataLen``, ``PBYTE* ppbData``, ``PCARD_KEY_HANDLE phKey``) is an
  explicit box, :class:`Out`, read and written through ``.value``.
* Buffers the minidriver allocates for the caller come from ``CardData.pfnCspAlloc`` (a callable
  taking a size and returning a ``bytearray``, or ``None`` for "out of memory").
* Every entry point returns the spec's DWORD (:class:`~minidriver.cardmod.codes.ScardCode`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any, Generic, TypeVar

__all__ = [
    "CARD_DATA_VALUE_UNKNOWN",
    "AccessCondition",
    "CardData",
    "CardDataVersion",
    "DirAccessCondition",
    "KeySpec",
    "Out",
    "PinId",
    "PinSet",
]

T = TypeVar("T")

CARD_DATA_VALUE_UNKNOWN = 0xFFFFFFFF
CARD_SECURE_KEY_INJECTION_NO_CARD_MODE = 0x1
SCARD_PROVIDER_CARD_MODULE = 0x80000001
MAX_PINS = 8


class Out(Generic[T]):
    """An out-parameter: the minidriver writes ``.value``; ``Out()`` starts empty (``None``)."""

    __slots__ = ("value",)

    def __init__(self, value: T | None = None) -> None:
        self.value: T | None = value

    def __repr__(self) -> str:
        return f"Out({self.value!r})"


class CardDataVersion(IntEnum):
    """CARD_DATA.dwVersion (minidriver-spec.md §1.2)."""

    FOUR = 4
    FIVE = 5
    SIX = 6
    SEVEN = 7  #: CARD_DATA_CURRENT_VERSION


CARD_DATA_MINIMUM_VERSION = CardDataVersion.FOUR
CARD_DATA_CURRENT_VERSION = CardDataVersion.SEVEN


class KeySpec(IntEnum):
    """dwKeySpec values (AT_*)."""

    AT_KEYEXCHANGE = 1
    AT_SIGNATURE = 2
    AT_ECDSA_P256 = 3
    AT_ECDSA_P384 = 4
    AT_ECDSA_P521 = 5
    AT_ECDHE_P256 = 6
    AT_ECDHE_P384 = 7
    AT_ECDHE_P521 = 8


class PinId(IntEnum):
    """PIN_ID roles; 3..7 are further PINs (§3.3)."""

    ROLE_EVERYONE = 0
    ROLE_USER = 1
    ROLE_ADMIN = 2


class PinSet(IntFlag):
    """PIN_SET: a bit per PIN_ID (``1 << PinId``)."""

    NONE = 0x00
    EVERYONE = 0x01
    USER = 0x02
    ADMIN = 0x04
    ALL_ROLES = 0xFF


class AccessCondition(IntEnum):
    """CARD_FILE_ACCESS_CONDITION (§4)."""

    INVALID_AC = 0
    EVERYONE_READ_USER_WRITE_AC = 1
    USER_WRITE_EXECUTE_AC = 2
    EVERYONE_READ_ADMIN_WRITE_AC = 3
    UNKNOWN_AC = 4
    USER_READ_WRITE_AC = 5
    ADMIN_READ_WRITE_AC = 6


class DirAccessCondition(IntEnum):
    """CARD_DIRECTORY_ACCESS_CONDITION (§4)."""

    INVALID_DIR_AC = 0
    USER_CREATE_DELETE_DIR_AC = 1
    ADMIN_CREATE_DELETE_DIR_AC = 2


AllocFn = Callable[[int], "bytearray | None"]
ReAllocFn = Callable[["bytearray", int], "bytearray | None"]
FreeFn = Callable[["bytearray"], None]
CacheAddFn = Callable[[Any, str, int, bytes], int]
CacheLookupFn = Callable[[Any, str, int, "Out[bytes]"], int]
CacheDeleteFn = Callable[[Any, str, int], int]


def default_alloc(size: int) -> bytearray:
    return bytearray(size)


def default_realloc(buf: bytearray, size: int) -> bytearray:
    new = bytearray(size)
    new[: min(size, len(buf))] = buf[:size]
    return new


def default_free(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))  # wipe: buffers may hold a card's data


@dataclass
class CardData:
    """CARD_DATA (minidriver-spec.md §1.1), field for field where it makes sense in Python.

    The caller fills the first group before CardAcquireContext; CardAcquireContext sets
    ``dwVersion`` to the negotiated version, ``pvVendorSpecific`` and the ``pfnCard*`` table
    (only the functions of the negotiated version; the others stay ``None``).

    ``connection`` is not in Cardmod.h: it is the transport bound to ``hScard``. Leave it
    ``None`` and the minidriver talks PC/SC through ``hScard``; tests put an in-process
    card here instead of a reader.
    """

    dwVersion: int = CARD_DATA_CURRENT_VERSION
    pbAtr: bytes | None = None
    cbAtr: int = 0
    pwszCardName: str | None = None
    pfnCspAlloc: AllocFn | None = default_alloc
    pfnCspReAlloc: ReAllocFn | None = default_realloc
    pfnCspFree: FreeFn | None = default_free
    pfnCspCacheAddFile: CacheAddFn | None = None
    pfnCspCacheLookupFile: CacheLookupFn | None = None
    pfnCspCacheDeleteFile: CacheDeleteFn | None = None
    pvCacheContext: Any = None
    pfnCspPadData: Callable[..., int] | None = None
    hSCardCtx: int = 0
    hScard: int = 0
    pvVendorSpecific: Any = None
    # caller callbacks a KSP/CSP sets; CardAcquireContext never writes them
    pfnCspGetDHAgreement: Callable[..., int] | None = None
    pfnCspUnpadData: Callable[..., int] | None = None
    connection: Any = None
    # the function table, written by CardAcquireContext (names as in Cardmod.h)
    pfnCardDeleteContext: Callable[..., int] | None = None
    pfnCardQueryCapabilities: Callable[..., int] | None = None
    pfnCardDeleteContainer: Callable[..., int] | None = None
    pfnCardCreateContainer: Callable[..., int] | None = None
    pfnCardGetContainerInfo: Callable[..., int] | None = None
    pfnCardAuthenticatePin: Callable[..., int] | None = None
    pfnCardGetChallenge: Callable[..., int] | None = None
    pfnCardAuthenticateChallenge: Callable[..., int] | None = None
    pfnCardUnblockPin: Callable[..., int] | None = None
    pfnCardChangeAuthenticator: Callable[..., int] | None = None
    pfnCardDeauthenticate: Callable[..., int] | None = None
    pfnCardCreateDirectory: Callable[..., int] | None = None
    pfnCardDeleteDirectory: Callable[..., int] | None = None
    pvUnused3: None = None
    pvUnused4: None = None
    pfnCardCreateFile: Callable[..., int] | None = None
    pfnCardReadFile: Callable[..., int] | None = None
    pfnCardWriteFile: Callable[..., int] | None = None
    pfnCardDeleteFile: Callable[..., int] | None = None
    pfnCardEnumFiles: Callable[..., int] | None = None
    pfnCardGetFileInfo: Callable[..., int] | None = None
    pfnCardQueryFreeSpace: Callable[..., int] | None = None
    pfnCardQueryKeySizes: Callable[..., int] | None = None
    pfnCardSignData: Callable[..., int] | None = None
    pfnCardRSADecrypt: Callable[..., int] | None = None
    pfnCardConstructDHAgreement: Callable[..., int] | None = None
    # v5
    pfnCardDeriveKey: Callable[..., int] | None = None
    pfnCardDestroyDHAgreement: Callable[..., int] | None = None
    # v6
    pfnCardGetChallengeEx: Callable[..., int] | None = None
    pfnCardAuthenticateEx: Callable[..., int] | None = None
    pfnCardChangeAuthenticatorEx: Callable[..., int] | None = None
    pfnCardDeauthenticateEx: Callable[..., int] | None = None
    pfnCardGetContainerProperty: Callable[..., int] | None = None
    pfnCardSetContainerProperty: Callable[..., int] | None = None
    pfnCardGetProperty: Callable[..., int] | None = None
    pfnCardSetProperty: Callable[..., int] | None = None
    # v7
    pfnMDImportSessionKey: Callable[..., int] | None = None
    pfnMDEncryptData: Callable[..., int] | None = None
    pfnCardImportSessionKey: Callable[..., int] | None = None
    pfnCardGetSharedKeyHandle: Callable[..., int] | None = None
    pfnCardGetAlgorithmProperty: Callable[..., int] | None = None
    pfnCardGetKeyProperty: Callable[..., int] | None = None
    pfnCardSetKeyProperty: Callable[..., int] | None = None
    pfnCardDestroyKey: Callable[..., int] | None = None
    pfnCardProcessEncryptedData: Callable[..., int] | None = None
    pfnCardCreateContainerEx: Callable[..., int] | None = None
