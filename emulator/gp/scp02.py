"""Card side of SCP02 (GPCS 2.3.1 Appendix E), explicit initiation. Sans-I/O.

Supported i-parameters: ``15`` (three keys, explicit initiation, ICV
encryption), ``55`` (the same plus a pseudo-random card challenge), ``05``
(no ICV encryption), ``45``, and each of them with b6 (``20``, R-MAC support:
``25 35 65 75``). C-MAC is computed on the modified APDU (i without ``02``).

R-MAC (GPCS §E.3.5, §E.4.5), for security levels ``10``, ``11`` and ``13`` when i has
b6: a retail MAC under the R-MAC session key (derivation constant ``0102``)
over the command as the host built it before protection (CLA with the SM
and channel bits cleared, INS, P1, P2, Lc of the plain data, the plain data),
then the response data length (1 byte), the response data and SW1 SW2. The ICV
is zero for the first R-MAC of the session, then the previous R-MAC (no ICV
encryption). As for SCP03 (AmdD §6.2.5), only 9000 and 62xx/63xx carry it;
errors go back bare and leave the R-MAC chain where it was. No public vector
covers SCP02 R-MAC (gp-scp.md §3.6); GlobalPlatformPro's SCP02 wrapper builds
the same input. At level ``10`` commands come plain (no C-MAC): the card
runtime shows each one to :meth:`SCP02Card.observe_plain`.

The 2-byte sequence counter is allocated (and persisted) by the caller before
INITIALIZE UPDATE, so it is monotonic and no two sessions of one key set share
session keys.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import IntFlag

from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU
from .crypto import (
    DES_BLOCK_LEN,
    SCP02Derivation,
    constant_time_equal,
    des_ecb_encrypt,
    full_3des_mac,
    retail_mac,
    scp02_session_key,
    tdes_cbc_decrypt,
    tdes_ecb_decrypt,
    unpad80,
)
from .keys import SCPVersion, StaticKeys
from .levels import SecurityLevel
from .state import ChannelState, SessionBase, lc_bytes, mac_cla, plain_cla, protects_response

__all__ = ["ALLOWED_LEVELS", "SEQUENCE_COUNTER_MAX", "SUPPORTED_I", "SCP02Card", "SCP02Option"]

HOST_CHALLENGE_LEN = 8
CARD_CHALLENGE_LEN = 6
CRYPTOGRAM_LEN = 8
MAC_LEN = 8
SEQUENCE_COUNTER_LEN = 2
SEQUENCE_COUNTER_MAX = 0xFFFF
KDD_LEN = 10
_BASE_I = (0x05, 0x15, 0x45, 0x55)
#: the i-parameters above, each also with b6 (20: R-MAC support); profile schema imports this
SUPPORTED_I = frozenset({*_BASE_I, *(i | 0x20 for i in _BASE_I)})
ALLOWED_LEVELS = frozenset({0x00, 0x01, 0x03, 0x10, 0x11, 0x13})


class SCP02Option(IntFlag):
    """The i-parameter (GPCS §E.1.1)."""

    THREE_KEYS = 0x01
    UNMODIFIED_APDU = 0x02
    EXPLICIT = 0x04
    ICV_MAC_OVER_AID = 0x08
    ICV_ENCRYPTION = 0x10
    R_MAC = 0x20
    PSEUDO_RANDOM_CHALLENGE = 0x40


class SCP02Card(SessionBase):
    """One SCP02 session on one logical channel; implements ``SecureSession``."""

    protocol = "SCP02"

    def __init__(
        self,
        keys: StaticKeys,
        *,
        i: int = 0x15,
        kdd: bytes = bytes(KDD_LEN),
        sd_aid: bytes,
        sequence_counter: int,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if keys.scp != SCPVersion.SCP02:
            raise ValueError(f"key set {keys.kvn:#04x} is not an SCP02 (3DES) key set")
        if i not in SUPPORTED_I:
            raise ValueError(f"unsupported SCP02 i-parameter {i:#04x} (supported: 05, 15, 45, 55, each +20)")
        if len(kdd) != KDD_LEN:
            raise ValueError(f"kdd must be {KDD_LEN} bytes, got {len(kdd)}")
        if not 0 <= sequence_counter <= SEQUENCE_COUNTER_MAX:
            raise ValueError(f"sequence counter must be 0x0000-0xFFFF, got {sequence_counter:#x}")
        super().__init__()
        self._keys = keys
        self.kvn = keys.kvn
        self.i = SCP02Option(i)
        self._kdd = bytes(kdd)
        self._sd_aid = bytes(sd_aid)
        self._seq = sequence_counter.to_bytes(SEQUENCE_COUNTER_LEN, "big")
        self._random = random
        self._s_enc = scp02_session_key(keys.enc, SCP02Derivation.S_ENC, self._seq)
        self._c_mac_key = scp02_session_key(keys.mac, SCP02Derivation.C_MAC, self._seq)
        self._s_dek = scp02_session_key(keys.dek, SCP02Derivation.DEK, self._seq)
        self._r_mac_key = scp02_session_key(keys.mac, SCP02Derivation.R_MAC, self._seq)
        self._host_challenge = self._card_challenge_value = b""
        self._icv = bytes(DES_BLOCK_LEN)  # the previous C-MAC (GPCS §E.4.4)
        self._ricv = bytes(DES_BLOCK_LEN)  # the previous R-MAC (GPCS §E.4.5)
        self._rmac_command = b""  # the last unwrapped command, as it enters the R-MAC
        self._answer_due = False

    def __repr__(self) -> str:
        return f"SCP02Card(kvn={self.kvn:#04x}, i={int(self.i):#04x}, state={self.state.name})"

    def _wipe(self) -> None:
        self._s_enc = self._c_mac_key = self._s_dek = self._r_mac_key = b""
        self._host_challenge = self._card_challenge_value = self._rmac_command = b""
        self._icv = self._ricv = bytes(DES_BLOCK_LEN)

    # -- handshake -----------------------------------------------------------
    def _card_challenge(self) -> bytes:
        """Random, or the C-MAC over the SD AID with i b7 (GPCS §E.4.2.1)."""
        if self.i & SCP02Option.PSEUDO_RANDOM_CHALLENGE:
            return retail_mac(self._c_mac_key, self._sd_aid, bytes(DES_BLOCK_LEN))[:CARD_CHALLENGE_LEN]
        return self._random(CARD_CHALLENGE_LEN)

    def initialize_update(self, cmd: CommandAPDU) -> ResponseAPDU:
        """Answer ``KDD || KVN || 02 || counter || card challenge || card cryptogram`` (GPCS §E.5.1)."""
        self._expect(ChannelState.IDLE, "INITIALIZE UPDATE")
        if cmd.p2 != 0x00:
            raise self._fail(SW.INCORRECT_P1P2, f"INITIALIZE UPDATE P2 {cmd.p2:02X}")
        if len(cmd.data) != HOST_CHALLENGE_LEN:
            raise self._fail(SW.WRONG_LENGTH, "host challenge must be 8 bytes")
        host, card = bytes(cmd.data), self._card_challenge()
        self._host_challenge, self._card_challenge_value = host, card
        cryptogram = full_3des_mac(self._s_enc, host + self._seq + card)
        data = self._kdd + bytes((self.kvn, SCPVersion.SCP02)) + self._seq + card + cryptogram
        self.state = ChannelState.CHALLENGED
        return ResponseAPDU(data)

    def external_authenticate(self, cmd: CommandAPDU) -> ResponseAPDU:
        """Check host cryptogram and C-MAC (ICV zero); open at the level in P1 (GPCS §E.5.2).

        Wrong cryptogram or MAC: 6300 and the session is wiped.
        """
        self._expect(ChannelState.CHALLENGED, "EXTERNAL AUTHENTICATE")
        if not cmd.secure_messaging:
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "EXTERNAL AUTHENTICATE without C-MAC")
        if cmd.p2 != 0x00 or cmd.p1 not in ALLOWED_LEVELS:
            raise self._fail(SW.INCORRECT_P1P2, f"security level {cmd.p1:02X}")
        if cmd.p1 & SecurityLevel.R_MAC and not self.i & SCP02Option.R_MAC:
            raise self._fail(SW.INCORRECT_P1P2, "R-MAC not allowed by the i-parameter")
        if len(cmd.data) != CRYPTOGRAM_LEN + MAC_LEN:
            raise self._fail(SW.WRONG_LENGTH, "EXTERNAL AUTHENTICATE data must be 16 bytes")
        host_cryptogram, mac = cmd.data[:CRYPTOGRAM_LEN], cmd.data[CRYPTOGRAM_LEN:]
        expected = full_3des_mac(self._s_enc, self._seq + self._card_challenge_value + self._host_challenge)
        computed = self._c_mac(cmd, host_cryptogram, bytes(DES_BLOCK_LEN))
        ok_mac = constant_time_equal(computed, mac)
        ok_crypto = constant_time_equal(expected, host_cryptogram)
        if not (ok_mac and ok_crypto):
            raise self._fail(SW.VERIFY_FAILED, "host cryptogram or its C-MAC is wrong")
        self._icv = computed
        self._level = SecurityLevel(cmd.p1)
        self.state = ChannelState.OPEN
        return ResponseAPDU()

    # -- command protection --------------------------------------------------
    def _c_mac(self, cmd: CommandAPDU, plain: bytes, icv: bytes) -> bytes:
        """Retail MAC over the modified header and the plaintext data (GPCS §E.4.4)."""
        header = bytes((mac_cla(cmd.cla), cmd.ins, cmd.p1, cmd.p2)) + lc_bytes(len(plain) + MAC_LEN, cmd.extended)
        return retail_mac(self._c_mac_key, header + plain, icv)

    def _next_icv(self) -> bytes:
        if self.i & SCP02Option.ICV_ENCRYPTION:
            return des_ecb_encrypt(self._c_mac_key[:8], self._icv)
        return self._icv

    def unwrap(self, cmd: CommandAPDU) -> CommandAPDU:
        """Decrypt (C-DEC, §E.4.6), then verify the C-MAC over the plaintext; failures: 6982 and closed."""
        self._check_open_for_unwrap(cmd)
        body, mac = cmd.data[:-MAC_LEN], cmd.data[-MAC_LEN:]
        if body and self._level & SecurityLevel.C_DECRYPTION:
            if len(body) % DES_BLOCK_LEN:
                raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "C-DEC data is not a block multiple")
            try:
                body = unpad80(tdes_cbc_decrypt(self._s_enc, bytes(DES_BLOCK_LEN), body), DES_BLOCK_LEN)
            except ValueError:
                raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "C-DEC padding is wrong") from None
        computed = self._c_mac(cmd, body, self._next_icv())
        if not constant_time_equal(computed, mac):
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "C-MAC verification failed")
        self._icv = computed
        plain = CommandAPDU(plain_cla(cmd.cla), cmd.ins, cmd.p1, cmd.p2, body, cmd.ne, cmd.extended)
        self.observe_plain(plain)
        return plain

    def observe_plain(self, cmd: CommandAPDU) -> None:
        """Remember ``cmd`` (without SM) as it enters the R-MAC of its answer (GPCS §E.4.5)."""
        if self.state is ChannelState.OPEN and self._level & SecurityLevel.R_MAC:
            cla = cmd.cla & ~0x2F if cmd.cla & 0x40 else cmd.cla & ~0x07
            self._rmac_command = (
                bytes((cla, cmd.ins, cmd.p1, cmd.p2)) + lc_bytes(len(cmd.data), cmd.extended) + cmd.data
            )
            self._answer_due = True

    def wrap(self, resp: ResponseAPDU) -> ResponseAPDU:
        """R-MAC (GPCS §E.4.5) at levels 10/11/13 on 9000 and 62xx/63xx; other answers pass unchanged."""
        due, self._answer_due = self._answer_due, False
        if self.state is not ChannelState.OPEN or not self._level & SecurityLevel.R_MAC or not due:
            return resp
        if not protects_response(resp.sw):
            return ResponseAPDU(sw=resp.sw)
        data = resp.data
        mac_input = self._rmac_command + bytes((len(data) & 0xFF,)) + data + resp.sw.to_bytes(2, "big")
        self._ricv = retail_mac(self._r_mac_key, mac_input, self._ricv)
        return ResponseAPDU(data + self._ricv, resp.sw)

    # -- sensitive data ------------------------------------------------------
    def decrypt_key(self, block: bytes) -> bytes:
        """Decrypt a PUT KEY key component: 3DES-ECB with the session DEK (gp-scp.md §1.6)."""
        if self.state is not ChannelState.OPEN:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "SCP02: no open session for key decryption")
        if not block or len(block) % DES_BLOCK_LEN:
            raise CardError(SW.WRONG_DATA, "encrypted key is not a block multiple")
        return tdes_ecb_decrypt(self._s_dek, block)

    @property
    def sequence_counter(self) -> int:
        return int.from_bytes(self._seq, "big")
