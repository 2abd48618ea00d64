"""SKI key and algorithm properties, and session-key import (minidriver-spec.md §5.2), plus the
parameter helpers the SKI entry points share.

CardGetKeyProperty answers CKP_BLOCK_LENGTH (16) and CKP_CHAINING_MODE (L"ChainingModeCBC");
CardSetKeyProperty takes CKP_CHAINING_MODE (CBC only) and CKP_INITIALIZATION_VECTOR (16 bytes,
kept but unused: SCP03 derives its ICV from the command counter). CardGetAlgorithmProperty knows
CP_CARD_KEYSIZES of L"AES" (SCP03 keys: 128-256 bits). Session-key import by a wrapped key is not
offered (CP_KEY_IMPORT_SUPPORT = CARD_KEY_IMPORT_SHARED_SYMMETRIC only): MDImportSessionKey and
CardImportSessionKey check their parameters, then answer SCARD_E_UNSUPPORTED_FEATURE.
"""

from __future__ import annotations

import struct

from .codes import MinidriverError, ScardCode
from .context import context_of, entry
from .ski_state import ClientKey, ServerKey, SkiState, ski_state
from .ski_wire import bad
from .structs import CardKeySizes
from .types import CardData, CardDataVersion, Out

__all__ = [
    "CardGetAlgorithmProperty",
    "CardGetKeyProperty",
    "CardImportSessionKey",
    "CardSetKeyProperty",
    "MDImportSessionKey",
    "answer",
    "need_out",
    "no_flags",
    "read_input",
    "server_only",
]

V7 = CardDataVersion.SEVEN
BLOCK_LENGTH = 16  #: AES (CKP_BLOCK_LENGTH)
CARD_BLOCK_PADDING = 0x1
AES, TDES, TDES_112 = "AES", "3DES", "3DES_112"
CP_CARD_KEYSIZES = "Key Sizes"
CKP_BLOCK_LENGTH, CKP_CHAINING_MODE, CKP_INITIALIZATION_VECTOR = "BlockLength", "ChainingMode", "IV"
CHAIN_MODE_CBC = "ChainingModeCBC"
BCRYPT_KEY_DATA_BLOB = "KeyDataBlob"
KEY_DATA_BLOB_MAGIC = 0x4D42444B
#: SCP03 keys: AES-128/192/256 (gp-scp.md §2)
AES_KEY_SIZES = CardKeySizes(1, 128, 128, 256, 64)

# SKI discovery through CardGetProperty (properties.py, §5.4): CP_KEY_IMPORT_SUPPORT =
# CARD_KEY_IMPORT_SHARED_SYMMETRIC, CP_ENUM_ALGORITHMS = L"AES", CP_PADDING_SCHEMES = 0,
# CP_CHAINING_MODES = L"ChainingModeCBC" (CARD_CIPHER_OPERATION) -- what this module does.


# -- helpers ----------------------------------------------------------------------------------------
def read_input(data: bytes | bytearray | None, size: object, what: str, *, optional: bool = False) -> bytes:
    if data is None:
        if optional and size == 0:
            return b""
        raise bad(f"{what} is NULL")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(data):
        raise bad(f"{what}: count {size!r} does not fit the buffer")
    return bytes(data[:size])


def need_out(*boxes: object) -> None:
    for box in boxes:
        if not isinstance(box, Out):
            raise bad("a required out-parameter is NULL")


def no_flags(flags: object) -> None:
    if flags != 0:
        raise bad(f"dwFlags {flags!r} must be 0")


def answer(data: bytes, pb: bytearray | None, cb: object, length: Out[int]) -> None:
    """Property-style output: size in ``*pdwDataLen``; NULL buffer -> size only; small -> 122."""
    length.value = len(data)
    if pb is None:
        return
    if not isinstance(cb, int) or cb < len(data) or len(pb) < len(data):
        raise MinidriverError(ScardCode.ERROR_INSUFFICIENT_BUFFER, f"{len(data)} bytes needed")
    pb[: len(data)] = data


def server_only(card_data: CardData, name: str) -> SkiState:
    if not context_of(card_data).no_card:
        raise bad(f"{name} runs on the server, in a NO_CARD_MODE context")
    return ski_state(card_data)


@entry(since=V7, no_card=True)
def CardGetAlgorithmProperty(
    pCardData: CardData,
    pwszAlgId: str | None,
    pwszProperty: str | None,
    pbData: bytearray | None,
    cbData: int,
    pdwDataLen: Out[int] | None,
    dwFlags: int,
) -> None:
    """Only CP_CARD_KEYSIZES (L"Key Sizes") of L"AES" (SCP03: 128-256 bits, step 64)."""
    need_out(pdwDataLen)
    assert pdwDataLen is not None
    no_flags(dwFlags)
    if pwszAlgId in (TDES, TDES_112):
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"{pwszAlgId}: SCP03 is AES only")
    if pwszAlgId != AES:
        raise bad(f"algorithm {pwszAlgId!r} is not a Cardmod.h algorithm id")
    if pwszProperty != CP_CARD_KEYSIZES:
        raise bad(f"algorithm property {pwszProperty!r}")
    answer(bytes(AES_KEY_SIZES), pbData, cbData, pdwDataLen)


@entry(since=V7, no_card=True)
def CardGetKeyProperty(
    pCardData: CardData,
    hKey: int,
    pwszProperty: str | None,
    pbData: bytearray | None,
    cbData: int,
    pdwDataLen: Out[int] | None,
    dwFlags: int,
) -> None:
    """CKP_BLOCK_LENGTH (DWORD 16) and CKP_CHAINING_MODE (L"ChainingModeCBC")."""
    need_out(pdwDataLen)
    assert pdwDataLen is not None
    no_flags(dwFlags)
    key = ski_state(pCardData).get(hKey)
    if pwszProperty == CKP_BLOCK_LENGTH:
        value = struct.pack("<I", BLOCK_LENGTH)
    elif pwszProperty == CKP_CHAINING_MODE:
        value = (key.props.chaining_mode + "\0").encode("utf-16-le")
    else:
        raise bad(f"key property {pwszProperty!r} cannot be read")
    answer(value, pbData, cbData, pdwDataLen)


@entry(since=V7, no_card=True)
def CardSetKeyProperty(
    pCardData: CardData, hKey: int, pwszProperty: str | None, pbInput: bytes | None, cbInput: int, dwFlags: int
) -> None:
    """CKP_CHAINING_MODE (only CBC) and CKP_INITIALIZATION_VECTOR (16 bytes, kept, unused by SCP03)."""
    no_flags(dwFlags)
    data = read_input(pbInput, cbInput, "pbInput")
    key: ServerKey | ClientKey = ski_state(pCardData).get(hKey)
    if pwszProperty == CKP_CHAINING_MODE:
        try:
            mode = data.decode("utf-16-le").rstrip("\0")
        except UnicodeDecodeError:
            raise bad("ChainingMode is a UTF-16 string") from None
        if mode != CHAIN_MODE_CBC:
            raise bad(f"chaining mode {mode!r}: only ChainingModeCBC")
        key.props.chaining_mode = mode
    elif pwszProperty == CKP_INITIALIZATION_VECTOR:
        if len(data) != BLOCK_LENGTH:
            raise bad(f"IV of {len(data)} bytes; the block is {BLOCK_LENGTH}")
        key.props.iv = data
    else:
        raise bad(f"key property {pwszProperty!r} cannot be set")


# -- session-key import (not offered; CP_KEY_IMPORT_SUPPORT says so) -----------------------------------
def _key_data_blob(blob_type: object, alg_id: object, data: bytes) -> None:
    if blob_type != BCRYPT_KEY_DATA_BLOB:
        raise bad(f"blob type {blob_type!r}: only KeyDataBlob")
    if alg_id in (TDES, TDES_112):
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"{alg_id}: AES only")
    if alg_id != AES:
        raise bad(f"algorithm {alg_id!r}")
    if len(data) < 12:
        raise bad("KeyDataBlob shorter than its header")
    magic, version, size = struct.unpack_from("<III", data)
    if magic != KEY_DATA_BLOB_MAGIC or version != 1 or len(data) != 12 + size:
        raise bad("KeyDataBlob header (magic KDBM, version 1, cbKeyData) does not match")
    if size not in (16, 24, 32):
        raise bad(f"AES key of {size} bytes")


@entry(since=V7, no_card=True)
def MDImportSessionKey(
    pCardData: CardData,
    pwszBlobType: str | None,
    pwszAlgId: str | None,
    phKey: Out[int] | None,
    pbInput: bytes | None,
    cbInput: int,
) -> None:
    """Checked, then SCARD_E_UNSUPPORTED_FEATURE: no card method can receive such a key."""
    server_only(pCardData, "MDImportSessionKey")
    need_out(phKey)
    _key_data_blob(pwszBlobType, pwszAlgId, read_input(pbInput, cbInput, "pbInput"))
    raise MinidriverError(
        ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "session keys travel by SCP03 (CardGetSharedKeyHandle)"
    )


CARD_PADDING_NONE, CARD_PADDING_PKCS1, CARD_PADDING_OAEP = 0x1, 0x2, 0x8


@entry(since=V7)
def CardImportSessionKey(
    pCardData: CardData,
    bContainerIndex: int,
    pPaddingInfo: object,
    pwszBlobType: str | None,
    pwszAlgId: str | None,
    phKey: Out[int] | None,
    pbInput: bytes | None,
    cbInput: int,
    dwFlags: int,
) -> None:
    """Checked (before any card I/O), then SCARD_E_UNSUPPORTED_FEATURE (CP_KEY_IMPORT_SUPPORT)."""
    need_out(phKey)
    if dwFlags not in (CARD_PADDING_NONE, CARD_PADDING_PKCS1, CARD_PADDING_OAEP):
        raise bad(f"dwFlags {dwFlags!r}: exactly one of CARD_PADDING_NONE, _PKCS1, _OAEP")
    if not isinstance(bContainerIndex, int) or not 0 <= bContainerIndex <= 0xFF:
        raise bad(f"bContainerIndex {bContainerIndex!r}")
    if dwFlags == CARD_PADDING_OAEP and pPaddingInfo is None:
        raise bad("OAEP needs pPaddingInfo")
    if pwszBlobType != BCRYPT_KEY_DATA_BLOB:
        raise bad(f"blob type {pwszBlobType!r}: only KeyDataBlob")
    if pwszAlgId not in (AES, TDES, TDES_112):
        raise bad(f"algorithm {pwszAlgId!r}")
    read_input(pbInput, cbInput, "pbInput")
    raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "no wrapped session-key import on this card")
