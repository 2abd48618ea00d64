"""Card side of SCP03 (GPCS 2.3.1 Amendment D v1.2), S8 and S16 modes. Sans-I/O.

Bytes in, bytes out: no socket, no clock, no store. The card challenge comes
from the injected ``random`` or, with i-parameter b5 (``10``), from the
3-byte sequence counter the caller allocated (and persisted) beforehand.

Handshake (AmdD §6.2): INITIALIZE UPDATE derives S-ENC/S-MAC/S-RMAC from the
host and card challenges and answers the card cryptogram; EXTERNAL
AUTHENTICATE checks the host cryptogram and its C-MAC and opens the channel at
the level in P1. Then every command is C-MACed (chained over a 16-byte value,
§6.2.4), C-DEC encrypted with an ICV from the encryption counter (§6.2.6),
and responses carry R-MAC / R-ENC (§6.2.5, §6.2.7) as the level asks.

S16 mode (i-parameter b1, ``01``; AmdD v1.2 §5.1, §6.2.2): host and card
challenges, both cryptograms, the C-MAC and the R-MAC are 16 bytes instead of
8 (the KDF is asked for 128 bits where S8 asks for 64); everything else (session
keys, the 16-byte MAC chain, C-DEC/R-ENC) is the same. No public vector covers
S16 (gp-scp.md §2.1): the tests check it against an independent computation and
against the host side in ``minidriver``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import IntFlag
from typing import Self

from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU
from .crypto import (
    AES_BLOCK_LEN,
    SCP03Derivation,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    aes_cmac,
    aes_ecb_encrypt,
    constant_time_equal,
    pad80,
    scp03_kdf,
    unpad80,
)
from .keys import SCPVersion, StaticKeys
from .levels import SecurityLevel
from .state import ChannelState, SessionBase, lc_bytes, mac_cla, plain_cla, protects_response

__all__ = ["ALLOWED_LEVELS", "CHALLENGE_LEN", "SEQUENCE_COUNTER_MAX", "SCP03Card", "SCP03Option"]

CHALLENGE_LEN = 8  #: S8 mode host/card challenge and cryptogram length
MAC_LEN = 8  #: S8 mode C-MAC / R-MAC length
S16_LEN = 16  #: S16 mode challenge, cryptogram and MAC length (AmdD v1.2 §6.2.2)
SEQUENCE_COUNTER_LEN = 3
SEQUENCE_COUNTER_MAX = 0xFFFFFF
KDD_LEN = 10

#: P1 values of EXTERNAL AUTHENTICATE we accept (gp-scp.md §1.3)
ALLOWED_LEVELS = frozenset({0x00, 0x01, 0x03, 0x11, 0x13, 0x33})


class SCP03Option(IntFlag):
    """The i-parameter (AmdD §5.1 table 5-1)."""

    S16 = 0x01  #: 16-byte challenges, cryptograms and MACs (AmdD v1.2)
    PSEUDO_RANDOM_CHALLENGE = 0x10
    R_MAC = 0x20
    R_ENC = 0x40


class SCP03Card(SessionBase):
    """One SCP03 session on one logical channel; implements ``SecureSession``."""

    protocol = "SCP03"

    def __init__(
        self,
        keys: StaticKeys,
        *,
        i: int = 0x70,
        kdd: bytes = bytes(KDD_LEN),
        sd_aid: bytes,
        sequence_counter: int | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if keys.scp != SCPVersion.SCP03:
            raise ValueError(f"key set {keys.kvn:#04x} is not an SCP03 (AES) key set")
        if i & ~0x71 or (i & SCP03Option.R_ENC and not i & SCP03Option.R_MAC):
            raise ValueError(
                f"unsupported SCP03 i-parameter {i:#04x} (supported: 00, 10, 20, 30, 60, 70, each +01 for S16)"
            )
        if len(kdd) != KDD_LEN:
            raise ValueError(f"kdd must be {KDD_LEN} bytes, got {len(kdd)}")
        pseudo = bool(i & SCP03Option.PSEUDO_RANDOM_CHALLENGE)
        if pseudo and (sequence_counter is None or not 0 <= sequence_counter <= SEQUENCE_COUNTER_MAX):
            raise ValueError("i-parameter 10 needs a sequence counter 0x000000-0xFFFFFF")
        super().__init__()
        self._keys = keys
        self.kvn = keys.kvn
        self.i = SCP03Option(i)
        #: challenge / cryptogram / MAC length: 8 (S8) or 16 (S16)
        self.mac_len = S16_LEN if i & SCP03Option.S16 else MAC_LEN
        self._kdd = bytes(kdd)
        self._sd_aid = bytes(sd_aid)
        self._counter = sequence_counter if pseudo else None
        self._random = random
        self._s_enc = self._s_mac = self._s_rmac = b""
        self._host_challenge = self._card_challenge_value = b""
        self._chain = bytes(AES_BLOCK_LEN)  # C-MAC chaining value (AmdD §6.2.4)
        self._enc_counter = 0  # counter of the next protected command (AmdD §6.2.6)
        self._last_counter = 0  # counter value of the command being answered
        self._answer_due = False  # the last command was unwrapped and awaits its (R-MACed) answer

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kvn={self.kvn:#04x}, i={int(self.i):#04x}, state={self.state.name})"

    @classmethod
    def with_session_keys(
        cls,
        *,
        kvn: int,
        s_enc: bytes,
        s_mac: bytes,
        s_rmac: bytes,
        s_dek: bytes,
        chain: bytes,
        level: SecurityLevel,
        sd_aid: bytes,
    ) -> Self:
        """An OPEN session on session keys agreed by another protocol.

        SCP11 (GPCS Amendment F §6.2.4-§6.2.7) runs SCP03 secure messaging on
        the keys of its ECKA key agreement: the MAC chain starts at the
        receipt and the encryption counter at 1. PUT KEY under such a session
        decrypts with S-DEK (``decrypt_key`` uses the key set's DEK).
        """
        session = cls(StaticKeys(kvn, s_enc, s_mac, s_dek), i=int(SCP03Option.R_MAC | SCP03Option.R_ENC), sd_aid=sd_aid)
        session._s_enc, session._s_mac, session._s_rmac = s_enc, s_mac, s_rmac
        session._chain = bytes(chain)
        session._enc_counter = 1
        session._level = level
        session.state = ChannelState.OPEN
        return session

    def _wipe(self) -> None:
        self._s_enc = self._s_mac = self._s_rmac = b""
        self._host_challenge = self._card_challenge_value = b""
        self._chain = bytes(AES_BLOCK_LEN)

    # -- handshake -----------------------------------------------------------
    def _card_challenge(self) -> bytes:
        """Random, or KDF(static ENC, 02, counter || SD AID) with i b5 (AmdD §6.2.2.1)."""
        if self._counter is None:
            return self._random(self.mac_len)
        context = self._counter.to_bytes(SEQUENCE_COUNTER_LEN, "big") + self._sd_aid
        return scp03_kdf(self._keys.enc, SCP03Derivation.CARD_CHALLENGE, context, self.mac_len * 8)

    def initialize_update(self, cmd: CommandAPDU) -> ResponseAPDU:
        """Derive the session keys and answer ``KDD || KVN || 03 || i || card challenge || cryptogram [|| counter]``."""
        self._expect(ChannelState.IDLE, "INITIALIZE UPDATE")
        if cmd.p2 != 0x00:
            raise self._fail(SW.INCORRECT_P1P2, f"INITIALIZE UPDATE P2 {cmd.p2:02X}")
        if len(cmd.data) != self.mac_len:
            mode = "S16" if self.mac_len == S16_LEN else "S8"
            raise self._fail(SW.WRONG_LENGTH, f"host challenge must be {self.mac_len} bytes ({mode} mode)")
        host, card = bytes(cmd.data), self._card_challenge()
        context = host + card
        keys = self._keys
        self._s_enc = scp03_kdf(keys.enc, SCP03Derivation.S_ENC, context, len(keys.enc) * 8)
        self._s_mac = scp03_kdf(keys.mac, SCP03Derivation.S_MAC, context, len(keys.mac) * 8)
        self._s_rmac = scp03_kdf(keys.mac, SCP03Derivation.S_RMAC, context, len(keys.mac) * 8)
        self._host_challenge, self._card_challenge_value = host, card
        cryptogram = scp03_kdf(self._s_mac, SCP03Derivation.CARD_CRYPTOGRAM, context, self.mac_len * 8)
        data = self._kdd + bytes((self.kvn, SCPVersion.SCP03, int(self.i))) + card + cryptogram
        if self._counter is not None:
            data += self._counter.to_bytes(SEQUENCE_COUNTER_LEN, "big")
        self.state = ChannelState.CHALLENGED
        return ResponseAPDU(data)

    def external_authenticate(self, cmd: CommandAPDU) -> ResponseAPDU:
        """Check the host cryptogram; open the channel at the level in P1 (AmdD §7.2).

        A wrong cryptogram or MAC answers 6300 (not 6982) so host tools can tell
        wrong keys from a wrong command sequence; either way the session is wiped.
        """
        self._expect(ChannelState.CHALLENGED, "EXTERNAL AUTHENTICATE")
        if not cmd.secure_messaging:
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "EXTERNAL AUTHENTICATE without C-MAC")
        if cmd.p2 != 0x00 or cmd.p1 not in ALLOWED_LEVELS:
            raise self._fail(SW.INCORRECT_P1P2, f"security level {cmd.p1:02X}")
        level = SecurityLevel(cmd.p1)
        if level & SecurityLevel.R_MAC and not self.i & SCP03Option.R_MAC:
            raise self._fail(SW.INCORRECT_P1P2, "R-MAC not allowed by the i-parameter")
        if level & SecurityLevel.R_ENCRYPTION and not self.i & SCP03Option.R_ENC:
            raise self._fail(SW.INCORRECT_P1P2, "R-ENC not allowed by the i-parameter")
        n = self.mac_len
        if len(cmd.data) != 2 * n:
            raise self._fail(SW.WRONG_LENGTH, f"EXTERNAL AUTHENTICATE data must be {2 * n} bytes")
        host_cryptogram, mac = cmd.data[:n], cmd.data[n:]
        context = self._host_challenge + self._card_challenge_value
        expected = scp03_kdf(self._s_mac, SCP03Derivation.HOST_CRYPTOGRAM, context, n * 8)
        full_mac = self._c_mac(cmd, host_cryptogram, bytes(AES_BLOCK_LEN))
        ok_mac = constant_time_equal(full_mac[:n], mac)
        ok_crypto = constant_time_equal(expected, host_cryptogram)
        if not (ok_mac and ok_crypto):
            raise self._fail(SW.VERIFY_FAILED, "host cryptogram or its C-MAC is wrong")
        self._chain = full_mac
        self._enc_counter = 1
        self._level = level
        self.state = ChannelState.OPEN
        return ResponseAPDU()

    # -- command protection --------------------------------------------------
    def _c_mac(self, cmd: CommandAPDU, body: bytes, chain: bytes) -> bytes:
        lc = len(body) + self.mac_len
        header = bytes((mac_cla(cmd.cla), cmd.ins, cmd.p1, cmd.p2)) + lc_bytes(lc, cmd.extended)
        return aes_cmac(self._s_mac, chain + header + body)

    def unwrap(self, cmd: CommandAPDU) -> CommandAPDU:
        """Verify the C-MAC, then decrypt with this command's counter (AmdD §6.2.4, §6.2.6).

        The encryption counter advances for every protected command, with or
        without data (gp-scp.md §2.5). Any failure closes the session: 6982.
        """
        self._check_open_for_unwrap(cmd, self.mac_len)
        level = self._level
        n = self.mac_len
        body, mac = cmd.data[:-n], cmd.data[-n:]
        full_mac = self._c_mac(cmd, body, self._chain)
        if not constant_time_equal(full_mac[:n], mac):
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "C-MAC verification failed")
        self._chain = full_mac
        self._answer_due = True
        counter = self._enc_counter
        self._last_counter = counter
        self._enc_counter += 1
        if body and level & SecurityLevel.C_DECRYPTION:
            if len(body) % AES_BLOCK_LEN:
                raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "C-DEC data is not a block multiple")
            icv = aes_ecb_encrypt(self._s_enc, counter.to_bytes(AES_BLOCK_LEN, "big"))
            try:
                body = unpad80(aes_cbc_decrypt(self._s_enc, icv, body), AES_BLOCK_LEN)
            except ValueError:
                raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "C-DEC padding is wrong") from None
        return CommandAPDU(plain_cla(cmd.cla), cmd.ins, cmd.p1, cmd.p2, body, cmd.ne, cmd.extended)

    # -- response protection -------------------------------------------------
    def wrap(self, resp: ResponseAPDU) -> ResponseAPDU:
        """R-ENC then R-MAC (AmdD §6.2.5, §6.2.7); error SWs go back bare.

        Only the answer to a command that came through :meth:`unwrap` is
        protected; commands outside secure messaging (MANAGE CHANNEL) are not.
        """
        level = self._level
        due, self._answer_due = self._answer_due, False
        if self.state is not ChannelState.OPEN or not level & SecurityLevel.R_MAC or not due:
            return resp
        if not protects_response(resp.sw):
            return ResponseAPDU(sw=resp.sw)
        data = resp.data
        if data and level & SecurityLevel.R_ENCRYPTION:
            icv_block = b"\x80" + self._last_counter.to_bytes(AES_BLOCK_LEN - 1, "big")
            icv = aes_ecb_encrypt(self._s_enc, icv_block)
            data = aes_cbc_encrypt(self._s_enc, icv, pad80(data, AES_BLOCK_LEN))
        rmac = aes_cmac(self._s_rmac, self._chain + data + resp.sw.to_bytes(2, "big"))[: self.mac_len]
        return ResponseAPDU(data + rmac, resp.sw)

    # -- sensitive data ------------------------------------------------------
    def decrypt_key(self, block: bytes) -> bytes:
        """Decrypt a PUT KEY key component: AES-CBC, IV 0, static DEK (gp-scp.md §1.6)."""
        if self.state is not ChannelState.OPEN:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "SCP03: no open session for key decryption")
        if not block or len(block) % AES_BLOCK_LEN:
            raise CardError(SW.WRONG_DATA, "encrypted key is not a block multiple")
        return aes_cbc_decrypt(self._keys.dek, bytes(AES_BLOCK_LEN), block)
