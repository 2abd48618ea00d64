"""Host side of SCP03 (GPC Card Specification v2.3 Amendment D v1.2), S8 and S16 modes, sans-I/O.

Bytes in, bytes out: the caller transmits what :class:`SCP03Host` builds and
feeds back what the card answered. The life cycle and its states are described
in :mod:`minidriver.scpbase`. In short::

    host = SCP03Host(keys, sd_aid=ISD_AID)
    iu = host.initialize_update_apdu()          # send; card answers data + 9000
    host.process_initialize_update_response(data)   # checks the card cryptogram
    ea = host.external_authenticate_apdu(SecurityLevel(0x33))   # send; expect 9000
    wire = host.wrap(plain_command)             # C-MAC (+ C-DECRYPTION)
    plain = host.unwrap(card_response)          # R-MAC (+ R-ENCRYPTION) checked

Covered: i = 00/10/20/30/60/70, levels 00/01/03/11/13/33, AES-128/192/256,
and S16 mode (i bit 01, Amd D v1.2 §5.1: 16-byte challenges, cryptograms,
C-MAC and R-MAC; ``SCP03Host(keys, s16=True)``). Keys, cryptograms and
decrypted data are never logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import minidriver.gpcrypto as gpcrypto  # a submodule import: never reaches the package's lazy __getattr__
from minidriver.scpbase import (
    CHALLENGE_LEN,
    CLA_SM,
    KDD_LEN,
    AuthenticationError,
    CommandAPDU,
    HostSession,
    IntegrityError,
    SCPError,
    SCPHost,
    SecurityLevel,
    StaticKeys,
    is_success_or_warning,
)
from minidriver.scpkeys import AESKeyEncoding, PutKeyCommand, put_key_data_aes

__all__ = ["SCP03_LEVELS", "SCP03Host", "SCP03InitResponse", "SCP03Param"]

log = logging.getLogger(__name__)

SCP_ID = 0x03
SEQUENCE_COUNTER_LEN = 3
BLOCK = gpcrypto.AES_BLOCK_LEN

#: EXTERNAL AUTHENTICATE P1 values defined for SCP03 (Amd D §7.1.2).
SCP03_LEVELS = frozenset({0x00, 0x01, 0x03, 0x11, 0x13, 0x33})
#: i-parameter values this host accepts (Amd D v1.2 §5.1): the S8 values and each with 01 (S16).
SUPPORTED_I = frozenset({0x00, 0x10, 0x20, 0x30, 0x60, 0x70, 0x01, 0x11, 0x21, 0x31, 0x61, 0x71})
S16_LEN = 16  #: S16 challenge, cryptogram and MAC length (Amd D v1.2 §6.2.2)


class SCP03Param(IntEnum):
    """Bits of the SCP03 i-parameter (Amd D §5.1)."""

    S16 = 0x01  #: 16-byte challenges, cryptograms and MACs
    PSEUDO_RANDOM = 0x10  #: card challenge derived from a sequence counter
    R_MAC = 0x20  #: R-MAC supported
    R_ENCRYPTION = 0x40  #: R-ENCRYPTION supported (with R-MAC)


class KDFConstant(IntEnum):
    """Derivation constants of the SCP03 KDF (Amd D §4.1.5, table 4-1; gp-scp.md §2.3)."""

    CARD_CRYPTOGRAM = 0x00
    HOST_CRYPTOGRAM = 0x01
    CARD_CHALLENGE = 0x02
    S_ENC = 0x04
    S_MAC = 0x06
    S_RMAC = 0x07


@dataclass(frozen=True, slots=True)
class SCP03InitResponse:
    """INITIALIZE UPDATE response data (Amd D §7.1.1; gp-scp.md §2.2).

    ``KDD (10) || KVN || 03 || i || card challenge (8) || card cryptogram (8)
    [|| sequence counter (3)]``; the counter is present when i has bit 10. In
    S16 mode the challenge and the cryptogram are 16 bytes each.
    """

    kdd: bytes
    kvn: int
    i: int
    card_challenge: bytes
    card_cryptogram: bytes = field(repr=False)
    sequence_counter: bytes | None = None

    @classmethod
    def parse(cls, data: bytes, *, s16: bool = False) -> SCP03InitResponse:
        """Parse the response data (without SW); ``SCPError`` on a malformed one."""
        n = S16_LEN if s16 else CHALLENGE_LEN
        head = KDD_LEN + 3 + 2 * n
        if len(data) not in (head, head + SEQUENCE_COUNTER_LEN):
            if len(data) > KDD_LEN + 2 and data[KDD_LEN + 2] & SCP03Param.S16 != s16:
                raise SCPError(f"the card uses S{'16' if not s16 else '8'} mode (i=0x{data[KDD_LEN + 2]:02X})")
            raise SCPError(f"SCP03 INITIALIZE UPDATE response must be {head} or {head + 3} bytes, got {len(data)}")
        kvn, scp_id, i = data[KDD_LEN : KDD_LEN + 3]
        if scp_id != SCP_ID:
            raise SCPError(f"card answered with SCP{scp_id:02X}, not SCP03")
        counter_expected = bool(i & SCP03Param.PSEUDO_RANDOM)
        if counter_expected != (len(data) == head + SEQUENCE_COUNTER_LEN):
            raise SCPError(f"i=0x{i:02X} and a {len(data)}-byte INITIALIZE UPDATE response disagree")
        pos = KDD_LEN + 3
        return cls(
            kdd=data[:KDD_LEN],
            kvn=kvn,
            i=i,
            card_challenge=data[pos : pos + n],
            card_cryptogram=data[pos + n : head],
            sequence_counter=data[head:] if counter_expected else None,
        )


@dataclass(slots=True, kw_only=True)
class _Session(HostSession):
    """SCP03 session keys, the MAC chain and the encryption counter."""

    i: int
    s_enc: bytes = field(repr=False)
    s_mac: bytes = field(repr=False)
    s_rmac: bytes = field(repr=False)
    chain: bytes = field(default=bytes(BLOCK), repr=False)  #: MAC chaining value (Amd D §6.2.3)
    counter: int = 1  #: encryption counter of the next protected command (Amd D §6.2.6)
    last_counter: int = 0  #: counter of the command whose response is awaited


class SCP03Host(SCPHost[_Session, SCP03InitResponse]):
    """Host side of one SCP03 secure channel (GPC Amd D), S8 mode.

    ``host_challenge`` pins the first host challenge (for known-answer tests);
    later sessions draw from ``random``. With ``sd_aid`` set and a card using
    pseudo-random challenges (i bit 10), the card challenge is checked against
    KDF(static ENC, 02, sequence counter || SD AID) (Amd D §6.2.2.1).
    ``channel`` is the logical channel (0-3) of INITIALIZE UPDATE and
    EXTERNAL AUTHENTICATE. ``s16`` selects S16 mode (the card's i has bit
    01): 16-byte host challenge, cryptograms and MACs.
    """

    PROTOCOL = "SCP03"
    _log = log

    def __init__(
        self,
        keys: StaticKeys,
        *,
        host_challenge: bytes | None = None,
        random: Callable[[int], bytes] = os.urandom,
        sd_aid: bytes | None = None,
        channel: int = 0,
        s16: bool = False,
    ) -> None:
        if sd_aid is not None and not 5 <= len(sd_aid) <= 16:
            raise ValueError(f"sd_aid must be 5-16 bytes, got {len(sd_aid)}")
        self._s16 = s16
        self._challenge_len = self._mac_len = S16_LEN if s16 else CHALLENGE_LEN
        super().__init__(keys, host_challenge=host_challenge, random=random, channel=channel)
        self._sd_aid = sd_aid

    # --- handshake -----------------------------------------------------------

    def _parse_initialize_update_response(self, data: bytes) -> SCP03InitResponse:
        info = SCP03InitResponse.parse(data, s16=self._s16)
        if bool(info.i & SCP03Param.S16) != self._s16:
            wanted = "S16 (SCP03Host(..., s16=True))" if info.i & SCP03Param.S16 else "S8 (s16=False)"
            raise SCPError(f"i=0x{info.i:02X}: the card runs SCP03 in {wanted}")
        if info.i not in SUPPORTED_I:
            raise SCPError(f"i=0x{info.i:02X} is not a supported SCP03 option")
        return info

    def _authenticate_card(self, info: SCP03InitResponse) -> _Session:
        """Amd D §6.2.2.1 (pseudo-random card challenge), §6.2.1 (session keys) and §6.2.2.2 (card cryptogram)."""
        keys = self._keys
        n = self._mac_len  # 8 (S8) or 16 (S16): challenges and cryptograms
        if info.sequence_counter is not None and self._sd_aid is not None:
            expected = gpcrypto.scp03_kdf(
                keys.enc, KDFConstant.CARD_CHALLENGE, info.sequence_counter + self._sd_aid, 8 * n
            )
            if not gpcrypto.ct_equal(expected, info.card_challenge):
                raise AuthenticationError("card challenge is not the pseudo-random one for this SD AID")
        context = self._host_challenge + info.card_challenge
        s_mac = gpcrypto.scp03_kdf(keys.mac, KDFConstant.S_MAC, context, 8 * len(keys.mac))
        card_cryptogram = gpcrypto.scp03_kdf(s_mac, KDFConstant.CARD_CRYPTOGRAM, context, 8 * n)
        if not gpcrypto.ct_equal(card_cryptogram, info.card_cryptogram):
            raise AuthenticationError("card cryptogram mismatch: wrong keys or not this card")
        log.debug("SCP03 card authenticated: KVN %02X, i=%02X", info.kvn, info.i)
        return _Session(
            i=info.i,
            s_enc=gpcrypto.scp03_kdf(keys.enc, KDFConstant.S_ENC, context, 8 * len(keys.enc)),
            s_mac=s_mac,
            s_rmac=gpcrypto.scp03_kdf(keys.mac, KDFConstant.S_RMAC, context, 8 * len(keys.mac)),
            host_cryptogram=gpcrypto.scp03_kdf(s_mac, KDFConstant.HOST_CRYPTOGRAM, context, 8 * n),
        )

    def _security_level(self, session: _Session, level: int) -> SecurityLevel:
        """A level of Amd D §7.1.2 whose response protection the card's i allows."""
        if level not in SCP03_LEVELS:
            raise ValueError(f"SCP03 security level must be one of 00 01 03 11 13 33, got {level:02X}")
        sl = SecurityLevel(level)
        if sl & SecurityLevel.R_MAC and not session.i & SCP03Param.R_MAC:
            raise SCPError(f"card i=0x{session.i:02X} does not support R-MAC (level {level:02X})")
        if sl & SecurityLevel.R_ENCRYPTION and not session.i & SCP03Param.R_ENCRYPTION:
            raise SCPError(f"card i=0x{session.i:02X} does not support R-ENCRYPTION (level {level:02X})")
        return sl

    def _external_authenticate_mac(self, session: _Session, header: bytes) -> bytes:
        """AES-CMAC chained from 16 zero bytes (Amd D §6.2.3), channel bits cleared."""
        return self._chain_mac(session, header, session.host_cryptogram)

    # --- command and response protection -------------------------------------

    def _chain_mac(self, session: _Session, header: bytes, data: bytes) -> bytes:
        """C-MAC of ``header || data`` with the channel bits of CLA cleared; advances the chain (Amd D §6.2.4)."""
        mac_header = bytes([(header[0] & 0xF0) | CLA_SM]) + header[1:]
        session.chain = gpcrypto.aes_cmac(session.s_mac, session.chain + mac_header + data)
        return session.chain[: self._mac_len]

    def _encrypt_command_data(self, session: _Session, data: bytes) -> bytes:
        """AES-CBC of the padded data, ICV = E(S-ENC, counter) (Amd D §6.2.6)."""
        icv = gpcrypto.aes_ecb_encrypt(session.s_enc, session.counter.to_bytes(BLOCK, "big"))
        return gpcrypto.aes_cbc_encrypt(session.s_enc, icv, gpcrypto.pad80(data, BLOCK))

    def _command_mac(self, session: _Session, cmd: CommandAPDU, data: bytes) -> bytes:
        """C-MAC over the header with the protected Lc and the (encrypted) data.

        The counter advances for every protected command, with data or not
        (gp-scp.md §2.5).
        """
        mac = self._chain_mac(session, bytes([cmd.cla, cmd.ins, cmd.p1, cmd.p2, len(data) + self._mac_len]), data)
        session.last_counter = session.counter
        session.counter += 1
        return mac

    def _unprotect_response(self, session: _Session, response: bytes, data: bytes, sw: int) -> bytes:
        """Check R-MAC and undo R-ENCRYPTION (Amd D §6.2.5, §6.2.7).

        Error status words come back bare and are returned unchanged;
        9000/62xx/63xx must carry the R-MAC when the level has it.
        """
        if not session.level & SecurityLevel.R_MAC or not is_success_or_warning(sw):
            return response
        n = self._mac_len
        if len(data) < n:
            raise IntegrityError(f"response with SW {sw:04X} lacks its R-MAC", sw=sw)
        body, rmac = data[:-n], data[-n:]
        sw_bytes = response[-2:]
        expected = gpcrypto.aes_cmac(session.s_rmac, session.chain + body + sw_bytes)[:n]
        if not gpcrypto.ct_equal(expected, rmac):
            raise IntegrityError("R-MAC mismatch: response altered or not from this session", sw=sw)
        if session.level & SecurityLevel.R_ENCRYPTION and body:
            icv = gpcrypto.aes_ecb_encrypt(session.s_enc, b"\x80" + session.last_counter.to_bytes(BLOCK - 1, "big"))
            try:
                body = gpcrypto.unpad80(gpcrypto.aes_cbc_decrypt(session.s_enc, icv, body), BLOCK)
            except ValueError:
                raise IntegrityError("R-ENCRYPTION: bad length or padding", sw=sw) from None
        return body + sw_bytes

    # --- key management -------------------------------------------------------

    def dek_encrypt(self, data: bytes) -> bytes:
        """AES-CBC, IV 0, under the static DEK (gp-scp.md §1.6); ``data`` is whole blocks."""
        if len(data) % BLOCK:
            raise ValueError(f"data must be a multiple of {BLOCK} bytes, got {len(data)}")
        return gpcrypto.aes_cbc_encrypt(self._keys.dek, bytes(BLOCK), data)

    def put_key(self, new_keys: StaticKeys, *, encoding: AESKeyEncoding = AESKeyEncoding.CIPHERTEXT) -> PutKeyCommand:
        """PUT KEY data for a new AES key set under our static DEK; send ``.apdu()`` through :meth:`wrap`."""
        return put_key_data_aes(self._keys.dek, new_keys, encoding=encoding)
