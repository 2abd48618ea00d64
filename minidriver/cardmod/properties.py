"""Capabilities and properties (minidriver-spec.md §3.2, values for a PIV card).

Values this card answers (decisions where the spec leaves a choice):

* CP_CARD_READ_ONLY FALSE (containers can be generated and certificates written under the
  management key); CP_SUPPORTS_WIN_X509_ENROLLMENT FALSE (Windows enrolls with the user PIN
  only, and a PIV card writes nothing without the management key).
* CP_CARD_CACHE_MODE CP_CACHE_MODE_SESSION_ONLY: ``cardcf`` counts every change made through
  this minidriver, but other PIV tools change the card without touching it.
* fCertificateCompression TRUE (certificates are gunzipped here), fKeyGen TRUE (GENERATE).
* CP_KEY_IMPORT_SUPPORT CARD_KEY_IMPORT_SHARED_SYMMETRIC; CP_ENUM_ALGORITHMS / CP_PADDING_SCHEMES
  / CP_CHAINING_MODES for CARD_CIPHER_OPERATION: L"AES", 0, L"ChainingModeCBC" (§5.4).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ..piv import RSA_BITS
from ._core import out_required
from .codes import MinidriverError, ScardCode
from .context import context_of, entry
from .pins import LIST_PINS, pin_info
from .piv_map import MAX_CONTAINERS, card_id, container, containers, core_state, read_identity
from .structs import CardCapabilities, CardFreeSpaceInfo, CardKeySizes, ContainerInfo
from .types import CARD_DATA_VALUE_UNKNOWN, CardData, CardDataVersion, KeySpec, Out, PinId

__all__ = [
    "CardGetContainerProperty",
    "CardGetProperty",
    "CardQueryCapabilities",
    "CardQueryFreeSpace",
    "CardQueryKeySizes",
    "CardSetContainerProperty",
    "CardSetProperty",
    "key_sizes",
]

CP_CARD_FREE_SPACE = "Free Space"
CP_CARD_CAPABILITIES = "Capabilities"
CP_CARD_KEYSIZES = "Key Sizes"
CP_CARD_READ_ONLY = "Read Only Mode"
CP_CARD_CACHE_MODE = "Cache Mode"
CP_SUPPORTS_WIN_X509_ENROLLMENT = "Supports Windows x.509 Enrollment"
CP_CARD_GUID = "Card Identifier"
CP_CARD_SERIAL_NO = "Card Serial Number"
CP_CARD_PIN_INFO = "PIN Information"
CP_CARD_LIST_PINS = "PIN List"
CP_CARD_AUTHENTICATED_STATE = "Authenticated State"
CP_CARD_PIN_STRENGTH_VERIFY = "PIN Strength Verify"
CP_CARD_PIN_STRENGTH_CHANGE = "PIN Strength Change"
CP_CARD_PIN_STRENGTH_UNBLOCK = "PIN Strength Unblock"
CP_PARENT_WINDOW = "Parent Window"
CP_PIN_CONTEXT_STRING = "PIN Context String"
CP_KEY_IMPORT_SUPPORT = "Key Import Support"
CP_ENUM_ALGORITHMS = "Algorithms"
CP_PADDING_SCHEMES = "Padding Schemes"
CP_CHAINING_MODES = "Chaining Modes"
CCP_CONTAINER_INFO = "Container Info"
CCP_PIN_IDENTIFIER = "PIN Identifier"
CCP_ASSOCIATED_ECDH_KEY = "Associated ECDH Key"

CP_CACHE_MODE_GLOBAL_CACHE, CP_CACHE_MODE_SESSION_ONLY, CP_CACHE_MODE_NO_CACHE = 1, 2, 3
CARD_PIN_STRENGTH_PLAINTEXT = 1
CARD_KEY_IMPORT_SHARED_SYMMETRIC = 0x8
CARD_CIPHER_OPERATION, CARD_ASYMMETRIC_OPERATION = 0x1, 0x2
CARD_PADDING_NONE, CARD_PADDING_PKCS1, CARD_PADDING_PSS, CARD_PADDING_OAEP = 0x1, 0x2, 0x4, 0x8
SIZEOF_HWND = 8  #: x64
SIZEOF_CONTAINER_INFO = 40  #: x64: 4 DWORDs, 2 pointers, natural alignment

_READ_ONLY = {
    CP_CARD_FREE_SPACE, CP_CARD_CAPABILITIES, CP_CARD_KEYSIZES, CP_CARD_LIST_PINS, CP_CARD_AUTHENTICATED_STATE,
    CP_KEY_IMPORT_SUPPORT, CP_ENUM_ALGORITHMS, CP_PADDING_SCHEMES, CP_CHAINING_MODES,
    CP_CARD_PIN_STRENGTH_VERIFY, CP_CARD_PIN_STRENGTH_CHANGE, CP_CARD_PIN_STRENGTH_UNBLOCK,
}  # fmt: skip
#: settable in principle (§3.2) but fixed by what a PIV card is
_FIXED = {
    CP_CARD_READ_ONLY,
    CP_CARD_CACHE_MODE,
    CP_SUPPORTS_WIN_X509_ENROLLMENT,
    CP_CARD_GUID,
    CP_CARD_SERIAL_NO,
    CP_CARD_PIN_INFO,
}
_V7 = {CP_KEY_IMPORT_SUPPORT, CP_ENUM_ALGORITHMS, CP_PADDING_SCHEMES, CP_CHAINING_MODES}
_WRITE_ONLY = {CP_PARENT_WINDOW, CP_PIN_CONTEXT_STRING}


def _invalid(why: str) -> MinidriverError:
    return MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, why)


def _dword(value: int) -> bytes:
    return struct.pack("<I", value)


def _multi_sz(*names: str) -> bytes:
    return "".join(n + "\0" for n in names).encode("utf-16-le") + b"\0\0"


def _flags_zero(dwFlags: int) -> None:
    if dwFlags != 0:
        raise _invalid("dwFlags must be 0")


def _check_version(version: int, what: str) -> None:
    """Versioned structures: 0 counts as 1; anything else than 1 -> ERROR_REVISION_MISMATCH (§1)."""
    if version not in (0, 1):
        raise MinidriverError(ScardCode.ERROR_REVISION_MISMATCH, f"{what} version {version}")


# -- sizes and capabilities --------------------------------------------------------------------
#: AT_* of ECC keys -> (PIV algorithm, bits); P-521 (AT_*_P521) does not exist on PIV
_EC_SPECS = {
    KeySpec.AT_ECDSA_P256: (0x11, 256),
    KeySpec.AT_ECDHE_P256: (0x11, 256),
    KeySpec.AT_ECDSA_P384: (0x14, 384),
    KeySpec.AT_ECDHE_P384: (0x14, 384),
}
#: SP 800-78-4's asymmetric algorithms, for a card whose SELECT answer lists none
_PIV_DEFAULT_ALGORITHMS = frozenset({0x06, 0x07, 0x11, 0x14})


def _card_algorithms(card_data: CardData) -> frozenset[int]:
    """What the card's SELECT answer advertised (part 2 §3.1.1), else the SP 800-78-4 set."""
    piv, _ = core_state(card_data)
    return frozenset(piv.algorithms) if piv.algorithms else _PIV_DEFAULT_ALGORITHMS


def key_sizes(card_data: CardData, key_spec: int) -> CardKeySizes:
    """CARD_KEY_SIZES for ``key_spec`` (§3.2 CardQueryKeySizes): undefined -> INVALID_PARAMETER,
    defined but not on this card (P-521, or an algorithm it does not advertise) -> UNSUPPORTED."""
    if key_spec not in {int(k) for k in KeySpec}:
        raise _invalid(f"dwKeySpec {key_spec!r}")
    algorithms = _card_algorithms(card_data)
    if key_spec in (KeySpec.AT_KEYEXCHANGE, KeySpec.AT_SIGNATURE):
        sizes = sorted(bits for alg, bits in RSA_BITS.items() if alg in algorithms)
        if not sizes:
            raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "the card advertises no RSA")
        return CardKeySizes(1, sizes[0], 2048 if 2048 in sizes else sizes[-1], sizes[-1], 1024)
    if key_spec not in _EC_SPECS or _EC_SPECS[KeySpec(key_spec)][0] not in algorithms:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"no {KeySpec(key_spec).name} keys on this card")
    bits = _EC_SPECS[KeySpec(key_spec)][1]
    return CardKeySizes(1, bits, bits, bits, 1)


def _free_space(card_data: CardData) -> CardFreeSpaceInfo:
    free = sum(1 for c in containers(card_data) if c is None)
    return CardFreeSpaceInfo(1, CARD_DATA_VALUE_UNKNOWN, free, MAX_CONTAINERS)


@entry(since=CardDataVersion.FOUR)
def CardQueryCapabilities(pCardData: CardData, pCardCapabilities: CardCapabilities | None) -> None:
    if pCardCapabilities is None:
        raise _invalid("pCardCapabilities is NULL")
    _check_version(pCardCapabilities.dwVersion, "CARD_CAPABILITIES")
    pCardCapabilities.dwVersion = 1
    pCardCapabilities.fCertificateCompression = True
    pCardCapabilities.fKeyGen = True


@entry(since=CardDataVersion.FOUR)
def CardQueryFreeSpace(pCardData: CardData, dwFlags: int, pCardFreeSpaceInfo: CardFreeSpaceInfo | None) -> None:
    """Bytes unknown (PIV objects have no common pool); containers = empty key slots."""
    _flags_zero(dwFlags)
    if pCardFreeSpaceInfo is None:
        raise _invalid("pCardFreeSpaceInfo is NULL")
    _check_version(pCardFreeSpaceInfo.dwVersion, "CARD_FREE_SPACE_INFO")
    info = _free_space(pCardData)
    pCardFreeSpaceInfo.dwVersion = 1
    pCardFreeSpaceInfo.dwBytesAvailable = info.dwBytesAvailable
    pCardFreeSpaceInfo.dwKeyContainersAvailable = info.dwKeyContainersAvailable
    pCardFreeSpaceInfo.dwMaxKeyContainers = info.dwMaxKeyContainers


@entry(since=CardDataVersion.FOUR)
def CardQueryKeySizes(pCardData: CardData, dwKeySpec: int, dwFlags: int, pKeySizes: CardKeySizes | None) -> None:
    _flags_zero(dwFlags)
    if pKeySizes is None:
        raise _invalid("pKeySizes is NULL")
    _check_version(pKeySizes.dwVersion, "CARD_KEY_SIZES")
    sizes = key_sizes(pCardData, dwKeySpec)
    pKeySizes.dwVersion = 1
    pKeySizes.dwMinimumBitlen = sizes.dwMinimumBitlen
    pKeySizes.dwDefaultBitlen = sizes.dwDefaultBitlen
    pKeySizes.dwMaximumBitlen = sizes.dwMaximumBitlen
    pKeySizes.dwIncrementalBitlen = sizes.dwIncrementalBitlen


# -- card properties ---------------------------------------------------------------------------
def _pin_strength(card_data: CardData, flags: int) -> bytes:
    if flags == PinId.ROLE_EVERYONE or pin_info(flags) is None:
        raise _invalid(f"PIN id {flags!r}")
    return _dword(CARD_PIN_STRENGTH_PLAINTEXT)


def _pin_info(card_data: CardData, flags: int, pb: bytearray | None) -> bytes:
    info = pin_info(flags)
    if info is None:
        raise _invalid(f"PIN id {flags!r}")
    if pb is not None and len(pb) >= 4 and struct.unpack_from("<I", pb)[0] != info.dwVersion:
        raise MinidriverError(ScardCode.ERROR_REVISION_MISMATCH, "PIN_INFO.dwVersion must be 6")
    return bytes(info)


def _algorithms(card_data: CardData, flags: int) -> bytes:
    if flags == CARD_CIPHER_OPERATION:
        return _multi_sz("AES")
    if flags == CARD_ASYMMETRIC_OPERATION:
        return _multi_sz("RSA", "ECDSA_P256", "ECDSA_P384", "ECDH_P256", "ECDH_P384")
    raise _invalid("dwFlags must be CARD_CIPHER_OPERATION or CARD_ASYMMETRIC_OPERATION")


def _padding(card_data: CardData, flags: int) -> bytes:
    if flags == CARD_CIPHER_OPERATION:
        return _dword(0)  # SCP03 blobs carry ISO 9797-1 M2 padding inside (§5.4)
    if flags == CARD_ASYMMETRIC_OPERATION:
        return _dword(CARD_PADDING_NONE | CARD_PADDING_PKCS1 | CARD_PADDING_PSS | CARD_PADDING_OAEP)
    raise _invalid("dwFlags must be CARD_CIPHER_OPERATION or CARD_ASYMMETRIC_OPERATION")


def _chaining(card_data: CardData, flags: int) -> bytes:
    if flags == CARD_CIPHER_OPERATION:
        return _multi_sz("ChainingModeCBC")
    raise _invalid("chaining modes exist for CARD_CIPHER_OPERATION only")


def _serial(card_data: CardData) -> bytes:
    piv, state = core_state(card_data)
    return read_identity(piv, state.model).serial or bytes(16)


def _guid(card_data: CardData) -> bytes:
    piv, state = core_state(card_data)
    return card_id(read_identity(piv, state.model))


#: property -> value(card_data, dwFlags); properties whose dwFlags means something take it
_NO_FLAGS: dict[str, Callable[[CardData], bytes]] = {
    CP_CARD_FREE_SPACE: lambda cd: bytes(_free_space(cd)),
    CP_CARD_CAPABILITIES: lambda cd: bytes(CardCapabilities(1, True, True)),
    CP_CARD_READ_ONLY: lambda cd: _dword(0),
    CP_CARD_CACHE_MODE: lambda cd: _dword(CP_CACHE_MODE_SESSION_ONLY),
    CP_SUPPORTS_WIN_X509_ENROLLMENT: lambda cd: _dword(0),
    CP_CARD_GUID: _guid,
    CP_CARD_SERIAL_NO: _serial,
    CP_CARD_LIST_PINS: lambda cd: _dword(LIST_PINS),
    CP_CARD_AUTHENTICATED_STATE: lambda cd: _dword(int(context_of(cd).authenticated)),
    CP_KEY_IMPORT_SUPPORT: lambda cd: _dword(CARD_KEY_IMPORT_SHARED_SYMMETRIC),
}
_WITH_FLAGS: dict[str, Callable[[CardData, int], bytes]] = {
    CP_CARD_KEYSIZES: lambda cd, f: bytes(key_sizes(cd, f)),
    CP_CARD_PIN_STRENGTH_VERIFY: _pin_strength,
    CP_CARD_PIN_STRENGTH_CHANGE: _pin_strength,
    CP_CARD_PIN_STRENGTH_UNBLOCK: _pin_strength,
    CP_ENUM_ALGORITHMS: _algorithms,
    CP_PADDING_SCHEMES: _padding,
    CP_CHAINING_MODES: _chaining,
}


def _check_buffer(pbData: object, cbData: int) -> None:
    if isinstance(pbData, bytearray) and (not isinstance(cbData, int) or not 0 <= cbData <= len(pbData)):
        raise _invalid("cbData does not fit pbData")


def _answer(value: bytes, pbData: bytearray | None, cbData: int, pdwDataLen: Out[int]) -> None:
    """Size probe (pbData NULL) or copy; a small buffer -> ERROR_INSUFFICIENT_BUFFER, size set."""
    pdwDataLen.value = len(value)
    if pbData is None:
        return
    if cbData < len(value):
        raise MinidriverError(ScardCode.ERROR_INSUFFICIENT_BUFFER, f"needs {len(value)} bytes")
    pbData[: len(value)] = value


@entry(since=CardDataVersion.SIX)
def CardGetProperty(
    pCardData: CardData,
    wszProperty: str | None,
    pbData: bytearray | None,
    cbData: int,
    pdwDataLen: Out[int] | None,
    dwFlags: int,
) -> None:
    if wszProperty is None:
        raise _invalid("wszProperty is NULL")
    out_required(pdwDataLen)
    assert pdwDataLen is not None
    _check_buffer(pbData, cbData)
    if wszProperty in _V7 and context_of(pCardData).version < CardDataVersion.SEVEN:
        raise _invalid(f"{wszProperty!r} is a version 7 property")
    if wszProperty in _NO_FLAGS:
        _flags_zero(dwFlags)
        value = _NO_FLAGS[wszProperty](pCardData)
    elif wszProperty in _WITH_FLAGS:
        value = _WITH_FLAGS[wszProperty](pCardData, dwFlags)
    elif wszProperty == CP_CARD_PIN_INFO:
        value = _pin_info(pCardData, dwFlags, pbData)
    elif wszProperty in _WRITE_ONLY:
        raise _invalid(f"{wszProperty!r} is write-only")
    else:
        raise _invalid(f"unknown property {wszProperty!r}")
    _answer(value, pbData, cbData, pdwDataLen)


@entry(since=CardDataVersion.SIX)
def CardSetProperty(
    pCardData: CardData, wszProperty: str | None, pbData: bytes | None, cbDataLen: int, dwFlags: int
) -> None:
    """Only CP_PARENT_WINDOW and CP_PIN_CONTEXT_STRING are set (the PIV card has no PIN UI)."""
    if wszProperty is None or pbData is None:
        raise _invalid("wszProperty or pbData is NULL")
    if wszProperty in _READ_ONLY or wszProperty in _FIXED:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"{wszProperty!r} cannot be set on this card")
    if wszProperty not in _WRITE_ONLY:
        raise _invalid(f"unknown property {wszProperty!r}")
    _flags_zero(dwFlags)
    if not isinstance(cbDataLen, int) or not 0 <= cbDataLen <= len(pbData):
        raise _invalid("cbDataLen does not fit pbData")
    _, state = core_state(pCardData)
    if wszProperty == CP_PARENT_WINDOW:
        if cbDataLen != SIZEOF_HWND:
            raise _invalid("CP_PARENT_WINDOW takes an HWND")
        state.ui["parent_window"] = bytes(pbData[:cbDataLen])
    else:
        state.ui["pin_context"] = bytes(pbData[:cbDataLen])


# -- container properties ----------------------------------------------------------------------
def _associated_ecdh(card_data: CardData, index: int) -> bytes:
    """The EC key-exchange container on the same curve (the container itself if it is one)."""
    own = container(card_data, index)
    assert own is not None
    if own.key.is_rsa:
        raise MinidriverError(ScardCode.SCARD_E_NO_KEY_CONTAINER, "an RSA container has no ECDH key")
    pairs = [c for c in containers(card_data) if c and c.key.key_exchange and c.key.algorithm == own.key.algorithm]
    if own.key.key_exchange:
        return bytes((index,))
    if not pairs:
        raise MinidriverError(ScardCode.SCARD_E_NO_KEY_CONTAINER, "no ECDH key on this curve")
    return bytes((pairs[0].index,))


def _container_info(card_data: CardData, index: int, pbData: object) -> None:
    from . import containers as container_functions

    if pbData is None:
        return
    if not isinstance(pbData, ContainerInfo):
        raise _invalid("CCP_CONTAINER_INFO takes a ContainerInfo as pbData")
    code = container_functions.CardGetContainerInfo(card_data, index, 0, pbData)
    if code:
        raise MinidriverError(ScardCode(code), "CardGetContainerInfo")


@entry(since=CardDataVersion.SIX)
def CardGetContainerProperty(
    pCardData: CardData,
    bContainerIndex: int,
    wszProperty: str | None,
    pbData: bytearray | ContainerInfo | None,
    cbData: int,
    pdwDataLen: Out[int] | None,
    dwFlags: int,
) -> None:
    """CCP_CONTAINER_INFO fills a :class:`ContainerInfo` passed as ``pbData`` (Python has no
    pointer-holding byte buffers); the other two answer bytes."""
    if wszProperty is None:
        raise _invalid("wszProperty is NULL")
    out_required(pdwDataLen)
    assert pdwDataLen is not None
    _check_buffer(pbData, cbData)
    _flags_zero(dwFlags)
    if wszProperty not in (CCP_CONTAINER_INFO, CCP_PIN_IDENTIFIER, CCP_ASSOCIATED_ECDH_KEY):
        raise _invalid(f"unknown container property {wszProperty!r}")
    found = container(pCardData, bContainerIndex)
    if found is None:
        raise MinidriverError(ScardCode.SCARD_E_NO_KEY_CONTAINER, f"no container {bContainerIndex}")
    if wszProperty == CCP_CONTAINER_INFO:
        pdwDataLen.value = SIZEOF_CONTAINER_INFO
        if pbData is not None and cbData < SIZEOF_CONTAINER_INFO:
            raise MinidriverError(ScardCode.ERROR_INSUFFICIENT_BUFFER, f"needs {SIZEOF_CONTAINER_INFO} bytes")
        _container_info(pCardData, bContainerIndex, pbData)
        return
    if isinstance(pbData, ContainerInfo):
        raise _invalid("pbData must be a bytearray")
    value = (
        _dword(found.key.pin_id) if wszProperty == CCP_PIN_IDENTIFIER else _associated_ecdh(pCardData, bContainerIndex)
    )
    _answer(value, pbData, cbData, pdwDataLen)


@entry(since=CardDataVersion.SIX)
def CardSetContainerProperty(
    pCardData: CardData,
    bContainerIndex: int,
    wszProperty: str | None,
    pbData: bytes | None,
    cbDataLen: int,
    dwFlags: int,
) -> None:
    """The PIN of a PIV key is its PIN policy, fixed when the key is made: setting the PIN id it
    already has succeeds, another one -> SCARD_E_UNSUPPORTED_FEATURE."""
    if wszProperty is None or pbData is None:
        raise _invalid("wszProperty or pbData is NULL")
    _flags_zero(dwFlags)
    if wszProperty not in (CCP_CONTAINER_INFO, CCP_PIN_IDENTIFIER, CCP_ASSOCIATED_ECDH_KEY):
        raise _invalid(f"unknown container property {wszProperty!r}")
    if wszProperty == CCP_CONTAINER_INFO:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "CCP_CONTAINER_INFO is read-only")
    found = container(pCardData, bContainerIndex)
    if found is None:
        raise MinidriverError(ScardCode.SCARD_E_NO_KEY_CONTAINER, f"no container {bContainerIndex}")
    if wszProperty == CCP_ASSOCIATED_ECDH_KEY:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "the ECDH pairing follows the key slots")
    if cbDataLen != 4 or len(pbData) < 4:
        raise _invalid("CCP_PIN_IDENTIFIER is a DWORD")
    pin_id = struct.unpack_from("<I", pbData)[0]
    if pin_info(pin_id) is None:
        raise _invalid(f"PIN id {pin_id}")
    if pin_id != found.key.pin_id:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "a PIV key's PIN is fixed by its PIN policy")
