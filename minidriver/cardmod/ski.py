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
from typing import Any

from ..scpbase import SCPError
from . import ski_client, ski_server
from ._core import alloc_copy
from .codes import MinidriverError, ScardCode
from .context import context_of, entry
from .ski_props import (
    CardGetAlgorithmProperty,
    CardGetKeyProperty,
    CardImportSessionKey,
    CardSetKeyProperty,
    MDImportSessionKey,
    need_out,
    no_flags,
    read_input,
    server_only,
)
from .ski_state import ClientKey, ServerKey, ski_state
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
from .types import CardData, CardDataVersion, Out

__all__ = [
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
CARD_BLOCK_PADDING = 0x1


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
    need_out(phKey)
    assert phKey is not None
    data = read_input(pbInput, cbInput, "pbInput", optional=True)
    if ppbOutput is not None and not isinstance(ppbOutput, Out):
        raise bad("ppbOutput is not a pointer")
    if pcbOutput is not None and not isinstance(pcbOutput, Out):
        raise bad("pcbOutput is not a pointer")
    state = ski_state(pCardData)
    ctx = context_of(pCardData)
    if ctx.no_card:
        kind = _message_type(data) if data else None
        if kind in (None, MessageType.CHALLENGE):
            need_out(ppbOutput)  # checked before a handshake is started or used up
        if kind is None:
            output, handle = ski_server.hello(state), 0
        elif kind == MessageType.CHALLENGE:
            output, handle = ski_server.respond(state, data)
        else:
            raise bad("the server takes no input (start) or the client's CHALLENGE")
    else:
        kind = _message_type(data) if data else None
        if kind == MessageType.HELLO:
            need_out(ppbOutput)
            output, handle = ski_client.round1(state, _connection(pCardData), data), 0
        elif kind == MessageType.AUTH:
            output, handle = b"", ski_client.round2(state, _connection(pCardData), data)
        else:
            raise bad("the client takes the server's HELLO or AUTH")
    if output:
        need_out(ppbOutput)
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
    state = server_only(pCardData, "MDEncryptData")
    need_out(ppEncryptedData, pcEncryptedData)
    assert ppEncryptedData is not None and pcEncryptedData is not None
    if dwFlags == CARD_BLOCK_PADDING:
        raise bad("CARD_BLOCK_PADDING: SCP03 blobs carry GP M2 padding; pass dwFlags 0")
    no_flags(dwFlags)
    function = Function.from_name(pwszSecureFunction)
    data = read_input(pbInput, cbInput, "pbInput")
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
        out.append(read_input(item.pbEncryptedData, item.cbEncryptedData, "pbEncryptedData"))
    return out


_RESPONSE_LEN = {Function.IMPORT_KEYPAIR: 0, Function.CHANGE_AUTHENTICATOR: 8, Function.AUTHENTICATE: 12}


def _bookkeeping(card_data: CardData, function: Function, slot: int | None) -> None:
    """What the core functions do after the same change: the slot's container is read again and
    ``cardcf`` moves (containers for a key, PINs for a PIN), so caches see it. Never fails the
    secure function that already succeeded on the card."""
    from .piv_map import key_changed
    from .vfs_store import card_changed

    try:
        if function is Function.IMPORT_KEYPAIR and slot is not None:
            key_changed(card_data, slot)
        elif function is Function.CHANGE_AUTHENTICATOR:
            card_changed(card_data, pins=True)
    except MinidriverError as exc:
        log.debug("SKI bookkeeping after %s: %s", function.name, exc)


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
    no_flags(dwFlags)
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
    if outcome.code == ScardCode.SCARD_S_SUCCESS:
        _bookkeeping(pCardData, function, outcome.slot)
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
