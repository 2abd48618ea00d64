"""Host side of SCP02 (GPC Card Specification v2.3, Appendix E), sans-I/O.

Same shape as :class:`minidriver.scp03.SCP03Host`; the states are described in
:mod:`minidriver.scpbase`. Differences that matter to a caller:

* the i-parameter is not in the INITIALIZE UPDATE response, so it is given to
  the constructor (from card data tag ``66``/``64`` or configuration);
  15 (default), 55 and 05 are supported: explicit initiation, three keys,
  C-MAC over the modified APDU, with (15, 55) or without (05) ICV encryption;
* keys are two-key 3DES (16 bytes); PUT KEY encrypts under the **session** DEK;
* levels 00, 01, 03, and 10 / 11 / 13 (R-MAC, GPCS E.4.5) when i has bit 20
  (25, 35, 75). The R-MAC is a retail MAC under the R-MAC session key (derivation
  constant 0102) over the plain command (CLA without SM and channel bits, INS, P1,
  P2, Lc of the plain data, the data), the response data length (1 byte), the
  response data and SW1 SW2; its ICV is zero, then the previous R-MAC. Only
  9000/62xx/63xx carry one (as SCP03, Amd D §6.2.5). No published vector exists.

Not checked: the pseudo-random card challenge of i=55 (no published vector).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import minidriver.gpcrypto as gpcrypto  # a submodule import: never reaches the package's lazy __getattr__
from minidriver.scpbase import (
    CLA_SM,
    CRYPTOGRAM_LEN,
    KDD_LEN,
    MAC_LEN,
    AuthenticationError,
    ChannelState,
    CommandAPDU,
    HostSession,
    IntegrityError,
    SCPError,
    SCPHost,
    SecurityLevel,
    StaticKeys,
    is_success_or_warning,
)
from minidriver.scpkeys import PutKeyCommand, put_key_data_des

__all__ = ["SCP02_LEVELS", "SCP02Host", "SCP02InitResponse"]

log = logging.getLogger(__name__)

SCP_ID = 0x02
SEQUENCE_COUNTER_LEN = 2
CARD_CHALLENGE_LEN = 6
INIT_RESPONSE_LEN = KDD_LEN + 2 + SEQUENCE_COUNTER_LEN + CARD_CHALLENGE_LEN + CRYPTOGRAM_LEN  # 28
BLOCK = gpcrypto.DES_BLOCK_LEN

#: EXTERNAL AUTHENTICATE P1 values this host offers for SCP02 (11/13: R-MAC, when i allows it).
SCP02_LEVELS = frozenset({0x00, 0x01, 0x03, 0x10, 0x11, 0x13})
#: i-parameter values this host implements (GPCS E.1.1): 05, 15, 55 and each with bit 20 (R-MAC).
SUPPORTED_I = frozenset({0x05, 0x15, 0x55, 0x25, 0x35, 0x75})
I_ICV_ENCRYPTION = 0x10  #: ICV encrypted with K1 before each C-MAC after the first
I_R_MAC = 0x20  #: the card supports R-MAC (GPCS E.1.1)


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


@dataclass(slots=True, kw_only=True)
class _Session(HostSession):
    """SCP02 session keys and the C-MAC chain."""

    s_enc: bytes = field(repr=False)
    c_mac: bytes = field(repr=False)
    s_dek: bytes = field(repr=False)
    r_mac: bytes = field(repr=False)
    icv: bytes = field(default=bytes(BLOCK), repr=False)  #: last C-MAC (GPCS E.4.4)
    ricv: bytes = field(default=bytes(BLOCK), repr=False)  #: last R-MAC (GPCS E.4.5)
    rmac_command: bytes = field(default=b"", repr=False)  #: the plain command as it enters the R-MAC


class SCP02Host(SCPHost[_Session, SCP02InitResponse]):
    """Host side of one SCP02 secure channel (GPCS Appendix E).

    ``i`` is the card's i-parameter (05, 15, 55, or with bit 20 for R-MAC).
    ``host_challenge`` pins the first host challenge; ``channel`` is the
    logical channel (0-3) of INITIALIZE UPDATE and EXTERNAL AUTHENTICATE.
    Below level 11 :meth:`unwrap` checks nothing but keeps the same order
    rules as SCP03, and callers can treat both alike.
    """

    PROTOCOL = "SCP02"
    _log = log

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
            raise ValueError(f"SCP02 i-parameter must be 05, 15, 55, 25, 35 or 75, got {i:02X}")
        for name, key in (("enc", keys.enc), ("mac", keys.mac), ("dek", keys.dek)):
            if len(key) != gpcrypto.DES_KEY_LEN:
                raise ValueError(f"SCP02 {name} key must be 16 bytes (two-key 3DES), got {len(key)}")
        super().__init__(keys, host_challenge=host_challenge, random=random, channel=channel)
        self._i = i

    # --- handshake -----------------------------------------------------------

    def _parse_initialize_update_response(self, data: bytes) -> SCP02InitResponse:
        return SCP02InitResponse.parse(data)

    def _authenticate_card(self, info: SCP02InitResponse) -> _Session:
        """GPCS E.4.1 (session keys) and E.4.2.1 (card cryptogram: full 3DES MAC
        under S-ENC over host challenge || counter || card challenge).
        """
        seq = info.sequence_counter
        s_enc = gpcrypto.scp02_session_key(self._keys.enc, gpcrypto.SCP02Constant.S_ENC, seq)
        card_part = seq + info.card_challenge
        expected = gpcrypto.tdes_cbc_mac(s_enc, self._host_challenge + card_part)
        if not gpcrypto.ct_equal(expected, info.card_cryptogram):
            raise AuthenticationError("card cryptogram mismatch: wrong keys or not this card")
        log.debug("SCP02 card authenticated: KVN %02X, i=%02X", info.kvn, self._i)
        return _Session(
            s_enc=s_enc,
            c_mac=gpcrypto.scp02_session_key(self._keys.mac, gpcrypto.SCP02Constant.C_MAC, seq),
            s_dek=gpcrypto.scp02_session_key(self._keys.dek, gpcrypto.SCP02Constant.DEK, seq),
            r_mac=gpcrypto.scp02_session_key(self._keys.mac, gpcrypto.SCP02Constant.R_MAC, seq),
            host_cryptogram=gpcrypto.tdes_cbc_mac(s_enc, card_part + self._host_challenge),
        )

    def _security_level(self, session: _Session, level: int) -> SecurityLevel:
        if level not in SCP02_LEVELS:
            raise ValueError(f"SCP02 security level must be 00, 01, 03, 10, 11 or 13, got {level:02X}")
        if level & SecurityLevel.R_MAC and not self._i & I_R_MAC:
            raise SCPError(f"card i=0x{self._i:02X} does not support R-MAC (level {level:02X})")
        return SecurityLevel(level)

    def _external_authenticate_mac(self, session: _Session, header: bytes) -> bytes:
        """Retail MAC with a zero ICV (GPCS E.5.2); it seeds the ICV chain."""
        session.icv = gpcrypto.retail_mac(session.c_mac, header + session.host_cryptogram, bytes(BLOCK))
        return session.icv

    # --- command protection ----------------------------------------------------

    def _encrypt_command_data(self, session: _Session, data: bytes) -> bytes:
        """3DES-CBC, IV 0, of the padded data (GPCS E.4.6)."""
        return gpcrypto.tdes_cbc_encrypt(session.s_enc, bytes(BLOCK), gpcrypto.pad80(data, BLOCK))

    def _command_mac(self, session: _Session, cmd: CommandAPDU, data: bytes) -> bytes:
        """C-MAC over the modified APDU (GPCS E.4.4): ``CLA|04 INS P1 P2 Lc+8 || plaintext data``.

        ICV = previous C-MAC, DES-encrypted with K1 when i has bit 10.
        """
        icv = session.icv
        if self._i & I_ICV_ENCRYPTION:
            icv = gpcrypto.des_ecb_encrypt(session.c_mac[:8], icv)
        mac_input = bytes([cmd.cla | CLA_SM, cmd.ins, cmd.p1, cmd.p2, len(cmd.data) + MAC_LEN]) + cmd.data
        session.icv = gpcrypto.retail_mac(session.c_mac, mac_input, icv)
        self._plain_command(session, cmd)
        return session.icv

    def _plain_command(self, session: _Session, cmd: CommandAPDU) -> None:
        """Remember the command as it enters the next R-MAC (level 10: sent plain; 11/13: before the C-MAC)."""
        if session.level & SecurityLevel.R_MAC:
            header = bytes([cmd.cla & ~0x07, cmd.ins, cmd.p1, cmd.p2, len(cmd.data)])
            session.rmac_command = header + cmd.data

    def _unprotect_response(self, session: _Session, response: bytes, data: bytes, sw: int) -> bytes:
        """Check and strip the R-MAC (GPCS E.4.5) at levels 11/13; errors come back bare."""
        if not session.level & SecurityLevel.R_MAC or not is_success_or_warning(sw):
            return response
        if len(data) < MAC_LEN:
            raise IntegrityError(f"response with SW {sw:04X} lacks its R-MAC", sw=sw)
        body, rmac = data[:-MAC_LEN], data[-MAC_LEN:]
        sw_bytes = response[-2:]
        mac_input = session.rmac_command + bytes([len(body) & 0xFF]) + body + sw_bytes
        expected = gpcrypto.retail_mac(session.r_mac, mac_input, session.ricv)
        if not gpcrypto.ct_equal(expected, rmac):
            raise IntegrityError("R-MAC mismatch: response altered or not from this session", sw=sw)
        session.ricv = expected
        return body + sw_bytes

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
