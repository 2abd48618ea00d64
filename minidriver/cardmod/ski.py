"""Secure key injection (Cardmod.h v7): the nine SKI entry points over GlobalPlatform SCP03.

minidriver-spec.md §5; design.md "Secure key injection ... mapped onto GlobalPlatform". The
relay flow (message formats in ski_wire.py)::

    server (NO_CARD_MODE, static keys)            client (holds the card, no keys)
    CardGetSharedKeyHandle(NULL) -> HELLO, *phKey=0
                                  ---- HELLO ---->  CardGetSharedKeyHandle(HELLO)
                                                    MANAGE CHANNEL, SELECT PIV, INITIALIZE UPDATE
                                  <-- CHALLENGE --  -> CHALLENGE, *phKey=0
    CardGetSharedKeyHandle(CHALLENGE): card cryptogram checked, session keys derived
        -> AUTH (EXTERNAL AUTHENTICATE), *phKey=server handle
                                  ----- AUTH ---->  CardGetSharedKeyHandle(AUTH): 9000 -> *phKey
    MDEncryptData(hKey, CSF_*, struct) -> blobs
                                  ---- blobs ---->  CardProcessEncryptedData(hKey, CSF_*, blobs)
                                                    -> response structure (tries left)

Choices where the spec is silent (minidriver-spec.md §5.4 and below): MDEncryptData and
MDImportSessionKey are server functions: in a card context they answer
SCARD_E_INVALID_PARAMETER, as card functions do in NO_CARD_MODE. ``dwFlags`` of MDEncryptData /
CardProcessEncryptedData is 0 (GP M2 padding inside the blobs); CARD_BLOCK_PADDING ->
SCARD_E_INVALID_PARAMETER. Key import by a wrapped session key (CardImportSessionKey /
MDImportSessionKey) is not offered: CP_KEY_IMPORT_SUPPORT says CARD_KEY_IMPORT_SHARED_SYMMETRIC
only; both check their parameters and answer SCARD_E_UNSUPPORTED_FEATURE. In NO_CARD_MODE
CardProcessEncryptedData has nothing to decrypt (no session PINs are produced) and answers
SCARD_E_UNSUPPORTED_FEATURE after its parameter checks. A failed secure function whose
remaining blobs cannot be sent (their MACs chain on the skipped one) or that the card refused
with 6982 ends the client handle; the server's handle of that session is then useless too.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from ..scpbase import SCPError
from . import ski_client, ski_server
from ._core import alloc_copy
from .codes import MinidriverError, ScardCode
from .context import context_of, entry
from .ski_state import ClientKey, ServerKey, SkiState, ski_state
from .ski_wire import (
    HEADER_LEN,
    MAGIC,
    VERSION,
    CardEncryptedData,
    Function,
    MessageType,
    authenticate_response,
    bad,
    change_authenticator_response,
)
from .structs import CardKeySizes
from .types import CardData, CardDataVersion, Out

__all__ = [
    "BLOCK_LENGTH",
    "CardDestroyKey",
    "CardGetAlgorithmProperty",
    "CardGetKeyProperty",
    "CardGetSharedKeyHandle",
    "CardImportSessionKey",
    "CardProcessEncryptedData",
    "CardSetKeyProperty",
    "MDEncryptData",
    "MDImportSessionKey",
]

log = logging.getLogger("minidriver.ski")

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
def _input(data: bytes | bytearray | None, size: object, what: str, *, optional: bool = False) -> bytes:
    if data is None:
        if optional and size == 0:
            return b""
        raise bad(f"{what} is NULL")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(data):
        raise bad(f"{what}: count {size!r} does not fit the buffer")
    return bytes(data[:size])


def _need_out(*boxes: object) -> None:
    for box in boxes:
        if not isinstance(box, Out):
            raise bad("a required out-parameter is NULL")


def _no_flags(flags: object) -> None:
    if flags != 0:
        raise bad(f"dwFlags {flags!r} must be 0")


def _answer(data: bytes, pb: bytearray | None, cb: object, length: Out[int]) -> None:
    """Property-style output: size in ``*pdwDataLen``; NULL buffer -> size only; small -> 122."""
    length.value = len(data)
    if pb is None:
        return
    if not isinstance(cb, int) or cb < len(data) or len(pb) < len(data):
        raise MinidriverError(ScardCode.ERROR_INSUFFICIENT_BUFFER, f"{len(data)} bytes needed")
    pb[: len(data)] = data


def _server_only(card_data: CardData, name: str) -> SkiState:
    if not context_of(card_data).no_card:
        raise bad(f"{name} runs on the server, in a NO_CARD_MODE context")
    return ski_state(card_data)


def _message_type(data: bytes) -> int:
    if len(data) < HEADER_LEN or data[0] != MAGIC or data[1] != VERSION:
        raise bad("pbInput is not a version-1 SKI message")
    return data[2]


def _connection(card_data: CardData) -> Any:
    from .binding import session  # the card side of the context; binds again after a reconnect

    session(card_data)
    return context_of(card_data).connection


# -- CardGetSharedKeyHandle --------------------------------------------------------------------------
@entry(since=V7, no_card=True)
def CardGetSharedKeyHandle(
    pCardData: CardData,
    pbInput: bytes | None,
    cbInput: int,
    ppbOutput: Out[bytearray] | None,
    pcbOutput: Out[int] | None,
    phKey: Out[int] | None,
) -> None:
    """One round of the SCP03 handshake (module docstring). ``*phKey`` = 0 until it completes."""
    _need_out(phKey)
    assert phKey is not None
    data = _input(pbInput, cbInput, "pbInput", optional=True)
    if ppbOutput is not None and not isinstance(ppbOutput, Out):
        raise bad("ppbOutput is not a pointer")
    if pcbOutput is not None and not isinstance(pcbOutput, Out):
        raise bad("pcbOutput is not a pointer")
    state = ski_state(pCardData)
    ctx = context_of(pCardData)
    if ctx.no_card:
        kind = _message_type(data) if data else None
        if kind in (None, MessageType.CHALLENGE):
            _need_out(ppbOutput)  # checked before a handshake is started or used up
        if kind is None:
            output, handle = ski_server.hello(state), 0
        elif kind == MessageType.CHALLENGE:
            output, handle = ski_server.respond(state, data)
        else:
            raise bad("the server takes no input (start) or the client's CHALLENGE")
    else:
        kind = _message_type(data) if data else None
        if kind == MessageType.HELLO:
            _need_out(ppbOutput)
            output, handle = ski_client.round1(state, _connection(pCardData), data), 0
        elif kind == MessageType.AUTH:
            output, handle = b"", ski_client.round2(state, _connection(pCardData), data)
        else:
            raise bad("the client takes the server's HELLO or AUTH")
    if output:
        _need_out(ppbOutput)
        assert ppbOutput is not None
        ppbOutput.value = alloc_copy(pCardData, output)
    elif isinstance(ppbOutput, Out):
        ppbOutput.value = None
    if isinstance(pcbOutput, Out):
        pcbOutput.value = len(output)
    phKey.value = handle


# -- MDEncryptData / CardProcessEncryptedData ----------------------------------------------------------
@entry(since=V7, no_card=True)
def MDEncryptData(
    pCardData: CardData,
    hKey: int,
    pwszSecureFunction: str | None,
    pbInput: bytes | None,
    cbInput: int,
    dwFlags: int,
    ppEncryptedData: Out[list[CardEncryptedData]] | None,
    pcEncryptedData: Out[int] | None,
) -> None:
    """Server: the protected command blobs of a secure function (one CARD_ENCRYPTED_DATA each)."""
    state = _server_only(pCardData, "MDEncryptData")
    _need_out(ppEncryptedData, pcEncryptedData)
    assert ppEncryptedData is not None and pcEncryptedData is not None
    if dwFlags == CARD_BLOCK_PADDING:
        raise bad("CARD_BLOCK_PADDING: SCP03 blobs carry GP M2 padding; pass dwFlags 0")
    _no_flags(dwFlags)
    function = Function.from_name(pwszSecureFunction)
    data = _input(pbInput, cbInput, "pbInput")
    key = state.get(hKey)
    if not isinstance(key, ServerKey):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_HANDLE, "not a server key handle")
    try:
        blobs = ski_server.encrypt(key, function, data)
    except SCPError as exc:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_HANDLE, f"session unusable: {exc}") from None
    try:
        out = [CardEncryptedData(alloc_copy(pCardData, blob), len(blob)) for blob in blobs]
    except MinidriverError:
        state.end(hKey)  # the MAC chain moved past blobs the caller will never get
        raise
    ppEncryptedData.value = out
    pcEncryptedData.value = len(out)


def _blob_list(items: object, count: object) -> list[bytes]:
    if not isinstance(items, (list, tuple)) or not isinstance(count, int) or not 1 <= count <= len(items):
        raise bad("pEncryptedData/cEncryptedData do not describe an array")
    out = []
    for item in items[:count]:
        if not isinstance(item, CardEncryptedData):
            raise bad("pEncryptedData holds something other than CARD_ENCRYPTED_DATA")
        out.append(_input(item.pbEncryptedData, item.cbEncryptedData, "pbEncryptedData"))
    return out


_RESPONSE_LEN = {Function.IMPORT_KEYPAIR: 0, Function.CHANGE_AUTHENTICATOR: 8, Function.AUTHENTICATE: 12}


@entry(since=V7, no_card=True)
def CardProcessEncryptedData(
    pCardData: CardData,
    hKey: int,
    pwszSecureFunction: str | None,
    pEncryptedData: list[CardEncryptedData] | None,
    cEncryptedData: int,
    pbOutput: bytearray | None,
    cbOutput: int,
    pdwOutputLen: Out[int] | None,
    dwFlags: int,
) -> int | None:
    """Client: send the blobs in the session of ``hKey``; write the response structure.

    Wrong PIN: SCARD_W_WRONG_CHV with the structure written (tries left in it).
    """
    if dwFlags == CARD_BLOCK_PADDING:
        raise bad("CARD_BLOCK_PADDING: SCP03 blobs carry GP M2 padding; pass dwFlags 0")
    _no_flags(dwFlags)
    function = Function.from_name(pwszSecureFunction)
    blobs = _blob_list(pEncryptedData, cEncryptedData)
    if pdwOutputLen is not None and not isinstance(pdwOutputLen, Out):
        raise bad("pdwOutputLen is not a pointer")
    size = _RESPONSE_LEN[function]
    if pbOutput is not None and (not isinstance(cbOutput, int) or cbOutput < size or len(pbOutput) < size):
        if isinstance(pdwOutputLen, Out):
            pdwOutputLen.value = size
        raise MinidriverError(ScardCode.ERROR_INSUFFICIENT_BUFFER, f"{size} bytes needed")
    state = ski_state(pCardData)
    key = state.get(hKey)
    if context_of(pCardData).no_card:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "no card-encrypted data to decrypt on the server")
    if not isinstance(key, ClientKey):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_HANDLE, "not a client key handle")
    commands = ski_client.parse_blobs(blobs, key, function)
    if _connection(pCardData) is not key.connection:
        state.end(hKey, ScardCode.SCARD_W_RESET_CARD)
        raise MinidriverError(ScardCode.SCARD_W_RESET_CARD, "the card was reconnected; the session is gone")
    outcome = ski_client.process(key, commands)
    if outcome.session_ended:
        ski_client.close_channel(key.connection, key.channel)
        state.end(hKey)
    if outcome.slot is not None and outcome.code == ScardCode.SCARD_S_SUCCESS:
        from .piv_map import key_changed

        key_changed(pCardData, outcome.slot)  # the container map entry is read again
    attempts = 0xFFFFFFFF if outcome.attempts is None else outcome.attempts
    response = {
        Function.IMPORT_KEYPAIR: b"",
        Function.CHANGE_AUTHENTICATOR: change_authenticator_response(attempts),
        Function.AUTHENTICATE: authenticate_response(attempts),
    }[function]
    if isinstance(pdwOutputLen, Out):
        pdwOutputLen.value = len(response)
    if pbOutput is not None and response:
        pbOutput[: len(response)] = response
    log.debug("SKI %s on handle %d: %s", function.name, hKey, outcome.code.name)
    return outcome.code


# -- handles and properties ----------------------------------------------------------------------------
@entry(since=V7, no_card=True)
def CardDestroyKey(pCardData: CardData, hKey: int) -> None:
    """End a handle: host keys dropped; on the client, a SELECT ends the card's session and the
    channel waits for the context's next handshake (ski_client.py)."""
    state = ski_state(pCardData)
    key = state.get(hKey)
    connection = key.connection if isinstance(key, ClientKey) else None
    state.end(hKey)
    if isinstance(key, ClientKey) and connection is not None and connection is context_of(pCardData).connection:
        ski_client.release_channel(state, connection, key.channel)


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
    _need_out(pdwDataLen)
    assert pdwDataLen is not None
    _no_flags(dwFlags)
    if pwszAlgId in (TDES, TDES_112):
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"{pwszAlgId}: SCP03 is AES only")
    if pwszAlgId != AES:
        raise bad(f"algorithm {pwszAlgId!r} is not a Cardmod.h algorithm id")
    if pwszProperty != CP_CARD_KEYSIZES:
        raise bad(f"algorithm property {pwszProperty!r}")
    _answer(bytes(AES_KEY_SIZES), pbData, cbData, pdwDataLen)


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
    _need_out(pdwDataLen)
    assert pdwDataLen is not None
    _no_flags(dwFlags)
    key = ski_state(pCardData).get(hKey)
    if pwszProperty == CKP_BLOCK_LENGTH:
        value = struct.pack("<I", BLOCK_LENGTH)
    elif pwszProperty == CKP_CHAINING_MODE:
        value = (key.props.chaining_mode + "\0").encode("utf-16-le")
    else:
        raise bad(f"key property {pwszProperty!r} cannot be read")
    _answer(value, pbData, cbData, pdwDataLen)


@entry(since=V7, no_card=True)
def CardSetKeyProperty(
    pCardData: CardData, hKey: int, pwszProperty: str | None, pbInput: bytes | None, cbInput: int, dwFlags: int
) -> None:
    """CKP_CHAINING_MODE (only CBC) and CKP_INITIALIZATION_VECTOR (16 bytes, kept, unused by SCP03)."""
    _no_flags(dwFlags)
    data = _input(pbInput, cbInput, "pbInput")
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
    _server_only(pCardData, "MDImportSessionKey")
    _need_out(phKey)
    _key_data_blob(pwszBlobType, pwszAlgId, _input(pbInput, cbInput, "pbInput"))
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
    _need_out(phKey)
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
    _input(pbInput, cbInput, "pbInput")
    raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "no wrapped session-key import on this card")
