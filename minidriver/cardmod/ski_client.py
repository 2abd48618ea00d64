"""The client half of secure key injection: holds the card, never a key.

Round 1 opens a logical channel (MANAGE CHANNEL), SELECTs PIV on it and sends INITIALIZE UPDATE
with the server's host challenge; the card's answer goes back to the server. CardDestroyKey ends
the session by SELECTing PIV again on the channel and keeps the channel for the next handshake of
the context (two APDUs fewer); card loss forgets it, CardDeleteContext closes it. PIV's security
status on that channel (a PIN verified by CSF_AUTHENTICATE) survives the SELECT, as SP 800-73-4
part 2 §3.1.1 wants for a re-select, and ends with the channel. Round 2 sends the
server's EXTERNAL AUTHENTICATE on that channel; on 9000 the handle names the channel. The
session lives on its own channel so that the minidriver's plain traffic on the basic channel
(which would end a C-MAC session, gp-scp.md §2.7) cannot disturb it, and several handles can
coexist (one per free channel). Every blob is transmitted as it came; the client reads only
status words and, below R-ENC, the tries left of a GET METADATA answer.

Status words -> codes (ours where the spec is silent): 6300 after EXTERNAL AUTHENTICATE ->
SCARD_W_WRONG_CHV (host cryptogram wrong: the server does not hold the card's keys, or a replay);
63Cx -> SCARD_W_WRONG_CHV with x tries left (x = 0: SCARD_W_CHV_BLOCKED); 6983 ->
SCARD_W_CHV_BLOCKED; 6982 -> SCARD_W_SECURITY_VIOLATION (MAC check failed: tampered blob, or no
rights; the card ends the session, and so does the handle); 6881 (our channel is gone: the card
was reset) and 6985 after EXTERNAL AUTHENTICATE (the card forgot our INITIALIZE UPDATE) ->
SCARD_W_RESET_CARD; 6A80/6A86/6A88 -> SCARD_E_INVALID_PARAMETER; 6A84 ->
SCARD_E_WRITE_TOO_MANY; 6D00 on INITIALIZE UPDATE -> SCARD_E_UNSUPPORTED_FEATURE; anything else
-> SCARD_E_UNEXPECTED.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..piv import PIV_AID
from . import ski_csf
from .codes import MinidriverError, ScardCode
from .ski_state import ISSUER_LEVELS, ClientKey, PendingClient, SkiState
from .ski_wire import Challenge, Command, Function, Hello, Role, bad, parse_auth

__all__ = ["Outcome", "close_channel", "process", "release_channel", "round1", "round2"]

log = logging.getLogger("minidriver.ski")

OK = 0x9000
MAC_LEN = 8
R_MAC, R_ENC = 0x10, 0x20
_SW_CODES = {
    0x6983: ScardCode.SCARD_W_CHV_BLOCKED,
    0x6982: ScardCode.SCARD_W_SECURITY_VIOLATION,
    0x6881: ScardCode.SCARD_W_RESET_CARD,
    0x6A80: ScardCode.SCARD_E_INVALID_PARAMETER,
    0x6A86: ScardCode.SCARD_E_INVALID_PARAMETER,
    0x6A88: ScardCode.SCARD_E_INVALID_PARAMETER,
    0x6A84: ScardCode.SCARD_E_WRITE_TOO_MANY,
}
#: PC/SC codes of a card that went away (winerror.h values) -> the class code we answer
_GONE = {
    0x80100069: ScardCode.SCARD_W_REMOVED_CARD,
    0x8010000C: ScardCode.SCARD_W_REMOVED_CARD,
    0x80100068: ScardCode.SCARD_W_RESET_CARD,
    0x80100067: ScardCode.SCARD_W_RESET_CARD,
}
#: status words after which the card has no session on the channel any more
_SESSION_ENDED = (0x6982, 0x6881)


def _code(sw: int) -> ScardCode:
    if sw & 0xFFF0 == 0x63C0:
        return ScardCode.SCARD_W_WRONG_CHV if sw & 0x0F else ScardCode.SCARD_W_CHV_BLOCKED
    return _SW_CODES.get(sw, ScardCode.SCARD_E_UNEXPECTED)


def _send(connection: Any, apdu: bytes) -> tuple[bytes, int]:
    resp = bytes(connection.transmit(apdu))
    if len(resp) < 2:
        raise MinidriverError(ScardCode.SCARD_E_COMM_DATA_LOST, f"card answered {len(resp)} bytes")
    return resp[:-2], int.from_bytes(resp[-2:], "big")


def close_channel(connection: Any, channel: int) -> None:
    """MANAGE CHANNEL close; best effort (the card may be gone or reset already)."""
    try:
        _send(connection, bytes((0x00, 0x70, 0x80, channel)))
    except Exception as exc:
        log.debug("closing channel %d: %s", channel, exc)


def _select_piv(connection: Any, channel: int) -> int:
    return _send(connection, bytes((channel, 0xA4, 0x04, 0x00, len(PIV_AID))) + PIV_AID)[1]


def _new_channel(connection: Any) -> int:
    """MANAGE CHANNEL open + SELECT PIV on it."""
    data, sw = _send(connection, bytes.fromhex("0070000001"))
    if sw != OK or len(data) != 1 or not 1 <= data[0] <= 3:
        code = ScardCode.SCARD_E_NO_MEMORY if sw in (0x6881, 0x6A81, OK) else _code(sw)
        raise MinidriverError(code, f"MANAGE CHANNEL answered {sw:04X}: no free logical channel")
    channel = data[0]
    sw = _select_piv(connection, channel)
    if sw != OK:
        close_channel(connection, channel)
        raise MinidriverError(ScardCode.SCARD_E_UNKNOWN_CARD, f"SELECT PIV on channel {channel}: {sw:04X}")
    return channel


def release_channel(state: SkiState, connection: Any, channel: int) -> None:
    """A handle ended: SELECT PIV again on its channel, which ends the SCP03 session there
    (GPCS §10.2.3), and keep the channel for the context's next handshake."""
    try:
        sw = _select_piv(connection, channel)
    except Exception as exc:
        log.debug("releasing channel %d: %s", channel, exc)
        return
    if sw == OK:
        state.idle_channels.append((connection, channel))
    else:
        close_channel(connection, channel)


def round1(state: SkiState, connection: Any, message: bytes) -> bytes:
    """HELLO -> INITIALIZE UPDATE on the context's SKI channel -> CHALLENGE.

    The channel is a free one of this context (PIV selected, no session) or a new one
    (MANAGE CHANNEL + SELECT). A pending round 1 is dropped: its channel is used again, and the
    new INITIALIZE UPDATE ends what it started.
    """
    hello = Hello.parse(message)
    if state.pending_client is not None:
        old, state.pending_client = state.pending_client, None
        state.idle_channels.append((old.connection, old.channel))
    state.pending_lost = None
    idle = [item for item in state.idle_channels if item[0] is connection]
    state.idle_channels = [item for item in state.idle_channels if item[0] is connection]
    if idle:
        channel = idle[0][1]
        state.idle_channels.remove(idle[0])
    else:
        channel = _new_channel(connection)
    try:
        iu = bytes((0x80 | channel, 0x50, hello.kvn, 0x00, len(hello.host_challenge))) + hello.host_challenge + b"\x00"
        data, sw = _send(connection, iu)
        if sw != OK:
            code = ScardCode.SCARD_E_UNSUPPORTED_FEATURE if sw in (0x6D00, 0x6E00) else _code(sw)
            if sw == 0x6A88:
                code = ScardCode.SCARD_E_INVALID_VALUE  # no such key set on the card
            raise MinidriverError(code, f"INITIALIZE UPDATE answered {sw:04X}")
        answer = bytes(Challenge(channel, hello.host_challenge, data))
        Challenge.parse(answer)  # a malformed card answer is refused here, not by the server
    except MinidriverError:
        close_channel(connection, channel)
        raise
    state.pending_client = PendingClient(channel, connection)
    return answer


def round2(state: SkiState, connection: Any, message: bytes) -> int:
    """AUTH -> EXTERNAL AUTHENTICATE; 9000 -> a handle bound to the channel's session."""
    pending = state.pending_client
    if pending is None:
        if state.pending_lost is not None:
            raise MinidriverError(state.pending_lost, "the card went away between the two rounds")
        raise bad("no round 1 is waiting for EXTERNAL AUTHENTICATE")
    apdu = parse_auth(message, pending.channel)
    if apdu[2] not in ISSUER_LEVELS:
        raise bad(f"security level {apdu[2]:02X}: the client takes 03, 13 or 33 (C-MAC + C-DECRYPTION)")
    state.pending_client = None  # one try: any failure below leaves nothing half-open
    if pending.connection is not connection:
        close_channel(pending.connection, pending.channel)
        raise MinidriverError(ScardCode.SCARD_W_RESET_CARD, "the card was reconnected between the two rounds")
    try:
        _, sw = _send(connection, apdu)
    except Exception as exc:
        state.pending_lost = _GONE.get(getattr(exc, "code", None) or 0)  # for the caller's retry
        close_channel(connection, pending.channel)
        raise
    if sw != OK:
        close_channel(connection, pending.channel)
        code = ScardCode.SCARD_W_WRONG_CHV if sw == 0x6300 else _code(sw)
        if sw == 0x6985:
            code = ScardCode.SCARD_W_RESET_CARD  # the card forgot our INITIALIZE UPDATE
        raise MinidriverError(code, f"EXTERNAL AUTHENTICATE answered {sw:04X}")
    return state.add(ClientKey(pending.channel, apdu[2], connection))


@dataclass
class Outcome:
    code: ScardCode
    attempts: int | None  #: tries left of the authenticating PIN, when the card said
    slot: int | None  #: the slot a key went into (P2 of IMPORT), for the container cache
    session_ended: bool


def parse_blobs(blobs: list[bytes], key: ClientKey, function: Function) -> list[Command]:
    """Every blob checked before any is sent: one call's set, complete and in order."""
    commands = [Command.parse(blob, key.channel) for blob in blobs]
    for i, cmd in enumerate(commands):
        if cmd.function != function:
            raise bad(f"blob {i} belongs to {cmd.function.name}, not {function.name}")
        if cmd.index != i or cmd.count != len(commands):
            raise bad(f"blob {i} says {cmd.index} of {cmd.count}: the set is incomplete or out of order")
    if not commands:
        raise bad("no blobs")
    return commands


def _strip_rmac(data: bytes, sw: int, level: int) -> bytes | None:
    """The response data without its R-MAC; None when R-ENC hides it from us."""
    if not level & R_MAC or not (sw == OK or sw >> 8 in (0x62, 0x63)):
        return data
    if level & R_ENC:
        return None
    return data[:-MAC_LEN] if len(data) >= MAC_LEN else b""


def process(key: ClientKey, commands: list[Command]) -> Outcome:
    """Transmit the blobs in order; stop at the first failed action (a later action must not run
    after a refused one). Queries after the failed action still go, so the MAC chain stays in
    step; a skipped action breaks the chain and the handle must end."""
    outcome = Outcome(ScardCode.SCARD_S_SUCCESS, None, None, False)
    failed = False
    for cmd in commands:
        if failed and cmd.role is Role.ACTION:
            outcome.session_ended = True  # the chain no longer matches the server's
            break
        data, sw = _send(key.connection, cmd.apdu)
        if cmd.role is Role.ACTION:
            if cmd.function is Function.IMPORT_KEYPAIR:
                outcome.slot = cmd.apdu[3]
            if sw != OK:
                failed = True
                outcome.code = _code(sw)
                if sw & 0xFFF0 == 0x63C0:
                    outcome.attempts = sw & 0x0F
                elif sw == 0x6983:
                    outcome.attempts = 0
        elif sw == OK and not failed:
            plain = _strip_rmac(data, sw, key.level)
            outcome.attempts = None if plain is None else ski_csf.attempts_from_metadata(plain)
        if sw in _SESSION_ENDED:
            outcome.session_ended = True
            break
    return outcome
