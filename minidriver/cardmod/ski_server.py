"""The server half of secure key injection (NO_CARD_MODE): SCP03 host, no card.

CardGetSharedKeyHandle without input starts a handshake (HELLO: a fresh host challenge and the
KVN); with the client's CHALLENGE it checks the card cryptogram with the static keys, derives
the session keys and answers the protected EXTERNAL AUTHENTICATE (AUTH) plus a handle.
MDEncryptData then protects secure-function commands with that session (ski_csf.py).
Message formats: ski_wire.py. The SCP03 arithmetic is minidriver/scp03.py's.
"""

from __future__ import annotations

import logging

from ..scp03 import SCP03Host, SCP03InitResponse
from ..scpbase import AuthenticationError, SCPError
from . import ski_csf
from .codes import MinidriverError, ScardCode
from .ski_state import ServerKey, SkiState
from .ski_wire import CHALLENGE_LEN, Challenge, Command, Function, Hello, auth_message, bad

__all__ = ["encrypt", "hello", "respond"]

log = logging.getLogger("minidriver.ski")


def hello(state: SkiState) -> bytes:
    """Start a handshake: HELLO with a fresh host challenge for the client's round 1."""
    config = state.server
    if config is None:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "no SCP03 key set configured (configure_server)")
    challenge = config.random(CHALLENGE_LEN)
    state.remember_challenge(challenge, config.kvn)
    return bytes(Hello(config.kvn, challenge))


def respond(state: SkiState, message: bytes) -> tuple[bytes, int]:
    """The card's answer (CHALLENGE) -> (AUTH message, server handle).

    A handshake is answered once: a replayed or unknown challenge -> SCARD_E_INVALID_PARAMETER;
    a wrong card cryptogram (the card does not share our keys) -> SCARD_W_WRONG_CHV. Either way
    nothing stays half-open.
    """
    msg = Challenge.parse(message)
    config = state.server
    if config is None:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "no SCP03 key set configured (configure_server)")
    kvn = state.pending_server.pop(msg.host_challenge, None)
    if kvn is None:
        raise bad("no handshake is waiting for this host challenge (answered already, or never started)")
    try:
        info = SCP03InitResponse.parse(msg.card_response)
    except SCPError as exc:
        raise bad(f"card response: {exc}") from None
    keys = config.keys.get(info.kvn) or config.keys.get(0)
    if keys is None:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_VALUE, f"no static keys for key set {info.kvn:02X}")
    scp = SCP03Host(keys, host_challenge=msg.host_challenge, sd_aid=config.sd_aid, channel=msg.channel)
    scp.initialize_update_apdu(kvn)
    try:
        scp.process_initialize_update_response(msg.card_response)
    except AuthenticationError:
        raise MinidriverError(ScardCode.SCARD_W_WRONG_CHV, "card cryptogram wrong: not our keys, or a replay") from None
    except SCPError as exc:
        raise bad(f"card response: {exc}") from None
    try:
        apdu = scp.external_authenticate_apdu(config.level)
    except (SCPError, ValueError) as exc:
        scp.close()
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"security level: {exc}") from None
    handle = state.add(ServerKey(scp, msg.channel, config.level))
    log.debug("SKI server: session keys derived for channel %d, handle %d", msg.channel, handle)
    return auth_message(apdu), handle


def encrypt(key: ServerKey, function: Function, data: bytes) -> list[bytes]:
    """MDEncryptData: the COMMAND blobs of ``function`` (checked, then C-MAC + C-DECRYPTION)."""
    plain = ski_csf.build(function, data, key.channel)  # raises before the chain moves
    wrapped = [(role, key.scp.wrap(apdu)) for role, apdu in plain]
    count = len(wrapped)
    return [bytes(Command(function, i, count, role, apdu)) for i, (role, apdu) in enumerate(wrapped)]
