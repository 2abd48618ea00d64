"""Host side of SCP02 (GPC Card Specification v2.3, Appendix E), sans-I/O.

Same shape as :class:`minidriver.scp03.SCP03Host`; the states are described in
:mod:`minidriver.scpbase`. Differences that matter to a caller:

* the i-parameter is not in the INITIALIZE UPDATE response, so it is given to
  the constructor (from card data tag ``66``/``64`` or configuration);
  15 (default), 55 and 05 are supported: explicit initiation, three keys,
  C-MAC over the modified APDU, with (15, 55) or without (05) ICV encryption;
* keys are two-key 3DES (16 bytes); PUT KEY encrypts under the **session** DEK;
* R-MAC is not implemented, so levels are 00, 01 and 03.

Not checked: the pseudo-random card challenge of i=55 (no published vector).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from minidriver import gpcrypto
from minidriver.scpbase import (
    CHALLENGE_LEN,
    CLA_SM,
    CRYPTOGRAM_LEN,
    INS,
    KDD_LEN,
    MAC_LEN,
    MAX_SHORT_LC,
    SW,
    AuthenticationError,
    ChannelState,
    CommandAPDU,
    SCPError,
    SCPStateError,
    SecurityLevel,
    StaticKeys,
    check_channel,
    check_cla_for_sm,
    initialize_update_apdu,
    split_response,
)
from minidriver.scpkeys import PutKeyCommand, put_key_data_des

__all__ = ["SCP02_LEVELS", "SCP02Host", "SCP02InitResponse"]

log = logging.getLogger(__name__)

SCP_ID = 0x02
SEQUENCE_COUNTER_LEN = 2
CARD_CHALLENGE_LEN = 6
INIT_RESPONSE_LEN = KDD_LEN + 2 + SEQUENCE_COUNTER_LEN + CARD_CHALLENGE_LEN + CRYPTOGRAM_LEN  # 28
BLOCK = gpcrypto.DES_BLOCK_LEN

#: EXTERNAL AUTHENTICATE P1 values this host offers for SCP02 (no R-MAC).
SCP02_LEVELS = frozenset({0x00, 0x01, 0x03})
#: i-parameter values this host implements (GPCS E.1.1).
SUPPORTED_I = frozenset({0x05, 0x15, 0x55})
I_ICV_ENCRYPTION = 0x10  #: ICV encrypted with K1 before each C-MAC after the first


@dataclass(frozen=True, slots=True)
class SCP02InitResponse:
    """INITIALIZE UPDATE response data (GPCS E.5.1.6; gp-scp.md §3.3).

    ``KDD (10) || KVN || 02 || sequence counter (2) || card challenge (6) ||
    card cryptogram (8)``.
    """

    kdd: bytes
    kvn: int
    sequence_counter: bytes
    card_challenge: bytes
    card_cryptogram: bytes = field(repr=False)

    @classmethod
    def parse(cls, data: bytes) -> SCP02InitResponse:
        """Parse the response data (without SW); ``SCPError`` on a malformed one."""
        if len(data) != INIT_RESPONSE_LEN:
            raise SCPError(f"SCP02 INITIALIZE UPDATE response must be 28 bytes, got {len(data)}")
        kvn, scp_id = data[KDD_LEN : KDD_LEN + 2]
        if scp_id != SCP_ID:
            raise SCPError(f"card answered with SCP{scp_id:02X}, not SCP02")
        pos = KDD_LEN + 2
        return cls(
            kdd=data[:KDD_LEN],
            kvn=kvn,
            sequence_counter=data[pos : pos + SEQUENCE_COUNTER_LEN],
            card_challenge=data[pos + SEQUENCE_COUNTER_LEN : pos + SEQUENCE_COUNTER_LEN + CARD_CHALLENGE_LEN],
            card_cryptogram=data[-CRYPTOGRAM_LEN:],
        )


@dataclass(slots=True)
class _Session:
    """Live session material; exists from a verified card cryptogram until close."""

    s_enc: bytes = field(repr=False)
    c_mac: bytes = field(repr=False)
    s_dek: bytes = field(repr=False)
    host_cryptogram: bytes = field(repr=False)
    level: SecurityLevel = SecurityLevel.NONE
    icv: bytes = field(default=bytes(BLOCK), repr=False)  #: last C-MAC (GPCS E.4.4)
    commands: int = 0
    response_pending: bool = False


class SCP02Host:
    """Host side of one SCP02 secure channel (GPCS Appendix E).

    ``i`` is the card's i-parameter (15, 55 or 05). ``host_challenge`` pins
    the first host challenge; ``channel`` is the logical channel (0-3) of
    INITIALIZE UPDATE and EXTERNAL AUTHENTICATE.
    """

    def __init__(
        self,
        keys: StaticKeys,
        *,
        i: int = 0x15,
        host_challenge: bytes | None = None,
        random: Callable[[int], bytes] = os.urandom,
        channel: int = 0,
    ) -> None:
        if i not in SUPPORTED_I:
            raise ValueError(f"SCP02 i-parameter must be 05, 15 or 55, got {i:02X}")
        for name, key in (("enc", keys.enc), ("mac", keys.mac), ("dek", keys.dek)):
            if len(key) != gpcrypto.DES_KEY_LEN:
                raise ValueError(f"SCP02 {name} key must be 16 bytes (two-key 3DES), got {len(key)}")
        if host_challenge is not None and len(host_challenge) != CHALLENGE_LEN:
            raise ValueError(f"host_challenge must be {CHALLENGE_LEN} bytes, got {len(host_challenge)}")
        check_channel(channel)
        self._keys = keys
        self._i = i
        self._random = random
        self._channel = channel
        self._pinned_challenge = host_challenge
        self._host_challenge = b""
        self._session: _Session | None = None
        self._state = ChannelState.IDLE

    @property
    def state(self) -> ChannelState:
        return self._state

    @property
    def level(self) -> SecurityLevel:
        """The security level in force (NONE unless OPEN)."""
        if self._state is ChannelState.OPEN and self._session is not None:
            return self._session.level
        return SecurityLevel.NONE

    # --- state helpers -------------------------------------------------------

    def _require(self, call: str, *allowed: ChannelState) -> None:
        if self._state not in allowed:
            raise SCPStateError(f"{call} cannot be used in state {self._state.name}")

    def _live(self, call: str) -> _Session:
        if self._session is None:
            raise SCPStateError(f"{call}: no session in state {self._state.name}")
        return self._session

    def _move(self, new: ChannelState) -> None:
        log.debug("SCP02 %s -> %s", self._state.name, new.name)
        self._state = new

    def close(self) -> None:
        """End the session and drop its keys."""
        self._session = None
        self._host_challenge = b""
        self._move(ChannelState.CLOSED)

    def _fail(self, error: SCPError) -> SCPError:
        self.close()
        return error

    # --- handshake -----------------------------------------------------------

    def initialize_update_apdu(self, kvn: int = 0) -> bytes:
        """``80 50 KVN 00 08 <host challenge> 00`` (GPCS E.5.1). Allowed in any state."""
        challenge = self._pinned_challenge or self._random(CHALLENGE_LEN)
        self._pinned_challenge = None
        if len(challenge) != CHALLENGE_LEN:
            raise ValueError(f"random() returned {len(challenge)} bytes, wanted {CHALLENGE_LEN}")
        apdu = initialize_update_apdu(kvn, challenge, self._channel)
        self._session = None
        self._host_challenge = challenge
        self._move(ChannelState.CHALLENGED)
        return apdu

    def process_initialize_update_response(self, resp_data: bytes) -> SCP02InitResponse:
        """Check the card's INITIALIZE UPDATE response data (no SW); derive session keys.

        GPCS E.4.1 (session keys) and E.4.2.1 (card cryptogram: full 3DES MAC
        under S-ENC over host challenge || counter || card challenge).
        """
        self._require("process_initialize_update_response", ChannelState.CHALLENGED)
        try:
            info = SCP02InitResponse.parse(resp_data)
        except SCPError as exc:
            raise self._fail(exc) from None
        seq = info.sequence_counter
        s_enc = gpcrypto.scp02_session_key(self._keys.enc, gpcrypto.SCP02Constant.S_ENC, seq)
        card_part = seq + info.card_challenge
        expected = gpcrypto.tdes_cbc_mac(s_enc, self._host_challenge + card_part)
        if not gpcrypto.ct_equal(expected, info.card_cryptogram):
            raise self._fail(AuthenticationError("card cryptogram mismatch: wrong keys or not this card"))
        self._session = _Session(
            s_enc=s_enc,
            c_mac=gpcrypto.scp02_session_key(self._keys.mac, gpcrypto.SCP02Constant.C_MAC, seq),
            s_dek=gpcrypto.scp02_session_key(self._keys.dek, gpcrypto.SCP02Constant.DEK, seq),
            host_cryptogram=gpcrypto.tdes_cbc_mac(s_enc, card_part + self._host_challenge),
        )
        log.debug("SCP02 card authenticated: KVN %02X, i=%02X", info.kvn, self._i)
        self._move(ChannelState.CARD_VERIFIED)
        return info

    def external_authenticate_apdu(self, level: int) -> bytes:
        """``84 82 SL 00 10 <host cryptogram> <C-MAC>`` and open the channel (GPCS E.5.2).

        The C-MAC is a retail MAC with a zero ICV; it seeds the ICV chain.
        """
        self._require("external_authenticate_apdu", ChannelState.CARD_VERIFIED)
        session = self._live("external_authenticate_apdu")
        if level not in SCP02_LEVELS:
            raise ValueError(f"SCP02 security level must be 00, 01 or 03 (no R-MAC here), got {level:02X}")
        sl = SecurityLevel(level)
        header = bytes([0x80 | CLA_SM | self._channel, INS.EXTERNAL_AUTHENTICATE, sl, 0x00, CRYPTOGRAM_LEN + MAC_LEN])
        mac = gpcrypto.retail_mac(session.c_mac, header + session.host_cryptogram, bytes(BLOCK))
        session.icv = mac
        session.level = sl
        self._move(ChannelState.OPEN)
        return header + session.host_cryptogram + mac

    def process_external_authenticate_response(self, response: bytes) -> None:
        """Optional: check the card accepted EXTERNAL AUTHENTICATE (data + SW); else close and raise."""
        self._require("process_external_authenticate_response", ChannelState.OPEN)
        if self._live("process_external_authenticate_response").commands:
            raise SCPStateError("process_external_authenticate_response after commands were wrapped")
        _, sw = split_response(response)
        if sw != SW.OK:
            raise self._fail(AuthenticationError(f"EXTERNAL AUTHENTICATE refused with SW {sw:04X}", sw=sw))

    # --- command and response protection -------------------------------------

    def wrap(self, apdu: bytes) -> bytes:
        """C-MAC over the modified APDU, then C-DECRYPTION of the data (GPCS E.4.4, E.4.6).

        MAC input: ``CLA|04 INS P1 P2 Lc+8 || plaintext data``; ICV = previous
        C-MAC, DES-encrypted with K1 when i has bit 10. Encryption is 3DES-CBC,
        IV 0, of the padded data; commands without data are not encrypted.
        """
        self._require("wrap", ChannelState.OPEN)
        session = self._live("wrap")
        cmd = CommandAPDU.parse(apdu)
        if not session.level & SecurityLevel.C_MAC:
            session.commands += 1
            session.response_pending = True
            return apdu
        check_cla_for_sm(cmd.cla)
        data = cmd.data
        if session.level & SecurityLevel.C_DECRYPTION and data:
            data = gpcrypto.tdes_cbc_encrypt(session.s_enc, bytes(BLOCK), gpcrypto.pad80(data, BLOCK))
        lc = len(data) + MAC_LEN
        if lc > MAX_SHORT_LC:
            raise SCPError(f"command data too long for secure messaging: Lc would be {lc}")
        cla = cmd.cla | CLA_SM
        icv = session.icv
        if self._i & I_ICV_ENCRYPTION:
            icv = gpcrypto.des_ecb_encrypt(session.c_mac[:8], icv)
        mac_input = bytes([cla, cmd.ins, cmd.p1, cmd.p2, len(cmd.data) + MAC_LEN]) + cmd.data
        mac = gpcrypto.retail_mac(session.c_mac, mac_input, icv)
        session.icv = mac
        session.commands += 1
        session.response_pending = True
        wrapped = CommandAPDU(cla=cla, ins=cmd.ins, p1=cmd.p1, p2=cmd.p2, data=data + mac, has_le=cmd.has_le)
        return bytes(wrapped)

    def unwrap(self, response: bytes) -> bytes:
        """Return the response to the last wrapped command (data + SW).

        SCP02 R-MAC is not implemented, so nothing is checked; the call keeps
        the same order rules as SCP03 so callers can treat both alike.
        """
        self._require("unwrap", ChannelState.OPEN)
        session = self._live("unwrap")
        if not session.response_pending:
            raise SCPStateError("unwrap without a wrapped command awaiting its response")
        split_response(response)
        session.response_pending = False
        return response

    # --- key management -------------------------------------------------------

    def dek_encrypt(self, data: bytes) -> bytes:
        """3DES-ECB under the session DEK (GPCS E.4.7); ``data`` is whole 8-byte blocks."""
        self._require("dek_encrypt", ChannelState.CARD_VERIFIED, ChannelState.OPEN)
        if len(data) % BLOCK:
            raise ValueError(f"data must be a multiple of {BLOCK} bytes, got {len(data)}")
        return gpcrypto.tdes_ecb_encrypt(self._live("dek_encrypt").s_dek, data)

    def put_key(self, new_keys: StaticKeys) -> PutKeyCommand:
        """PUT KEY data for a new 3DES key set under the session DEK; send ``.apdu()`` through :meth:`wrap`."""
        self._require("put_key", ChannelState.OPEN)
        return put_key_data_des(self._live("put_key").s_dek, new_keys)
