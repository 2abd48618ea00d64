"""Block-cipher primitives of the card side of SCP02/SCP03.

Pure functions over ``bytes``: no state, no I/O and no logging, because every
one of them sees key material. Wrong caller input raises ``ValueError``; the
secure channel classes turn failures caused by the host into ``CardError``.

References: GPCS 2.3.1 Appendix E (SCP02), Amendment D v1.1.2 §4 (SCP03),
ISO/IEC 9797-1 (padding method 2, MAC algorithm 3), NIST SP 800-38B (CMAC),
NIST SP 800-108 (KDF in counter mode).
"""

from __future__ import annotations

import hmac
from enum import IntEnum

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "AES_BLOCK_LEN",
    "AES_KEY_LENS",
    "DES_BLOCK_LEN",
    "DES_KEY_LEN",
    "KCV_LEN",
    "SCP02Derivation",
    "SCP03Derivation",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "aes_cmac",
    "aes_ecb_encrypt",
    "aes_kcv",
    "constant_time_equal",
    "des_ecb_encrypt",
    "des_kcv",
    "full_3des_mac",
    "pad80",
    "retail_mac",
    "scp02_session_key",
    "scp03_kdf",
    "tdes_cbc_decrypt",
    "tdes_cbc_encrypt",
    "tdes_ecb_decrypt",
    "tdes_ecb_encrypt",
    "unpad80",
]

AES_BLOCK_LEN = 16
AES_KEY_LENS = (16, 24, 32)
DES_BLOCK_LEN = 8
DES_KEY_LEN = 16  #: two-key 3DES K1 || K2, used as K1 || K2 || K1
KCV_LEN = 3


class SCP03Derivation(IntEnum):
    """Derivation constants of the SCP03 KDF (AmdD §4.1.5 table 4-1)."""

    CARD_CRYPTOGRAM = 0x00
    HOST_CRYPTOGRAM = 0x01
    CARD_CHALLENGE = 0x02
    S_ENC = 0x04
    S_MAC = 0x06
    S_RMAC = 0x07


class SCP02Derivation(IntEnum):
    """Derivation constants of SCP02 session keys (GPCS §E.4.1)."""

    C_MAC = 0x0101
    R_MAC = 0x0102
    DEK = 0x0181
    S_ENC = 0x0182


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare MACs and cryptograms without leaking where they differ."""
    return hmac.compare_digest(a, b)


# -- padding -----------------------------------------------------------------
def pad80(data: bytes, block_len: int) -> bytes:
    """ISO/IEC 9797-1 method 2: ``80`` then zeros to a block multiple (always adds)."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block_len)


def unpad80(data: bytes, block_len: int) -> bytes:
    """Undo :func:`pad80`; ``ValueError`` when the padding is not well formed."""
    if not data or len(data) % block_len:
        raise ValueError("padded data must be a non-empty block multiple")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= block_len:
        raise ValueError("bad 80-padding")
    return stripped[:-1]


# -- AES ---------------------------------------------------------------------
def _check_aes_key(key: bytes) -> None:
    if len(key) not in AES_KEY_LENS:
        raise ValueError(f"AES key must be 16, 24 or 32 bytes, got {len(key)}")


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B), the full 16 bytes."""
    _check_aes_key(key)
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_aes_key(key)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    _check_aes_key(key)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    _check_aes_key(key)
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def scp03_kdf(key: bytes, constant: int, context: bytes, length_bits: int) -> bytes:
    """SCP03 KDF (AmdD §4.1.5): SP 800-108 counter mode with AES-CMAC as PRF.

    PRF input for block n: ``00×11 || constant || 00 || L (2 bytes) || n || context``;
    the blocks are concatenated and cut to ``length_bits``.
    """
    if length_bits <= 0 or length_bits % 8:
        raise ValueError(f"length_bits must be a positive multiple of 8, got {length_bits}")
    label = bytes(11) + bytes((constant,)) + b"\x00" + length_bits.to_bytes(2, "big")
    out = b""
    counter = 1
    while len(out) * 8 < length_bits:
        out += aes_cmac(key, label + bytes((counter,)) + context)
        counter += 1
    return out[: length_bits // 8]


def aes_kcv(key: bytes) -> bytes:
    """AES key check value: AES-ECB(key, sixteen 01 bytes)[:3] (GPCS §11.8.2.3)."""
    return aes_ecb_encrypt(key, b"\x01" * AES_BLOCK_LEN)[:KCV_LEN]


# -- DES / 3DES ----------------------------------------------------------------
def _tdes(key: bytes) -> TripleDES:
    if len(key) == DES_KEY_LEN:
        return TripleDES(key + key[:8])
    if len(key) in (8, 24):
        return TripleDES(key * 3 if len(key) == 8 else key)
    raise ValueError(f"DES key must be 8, 16 or 24 bytes, got {len(key)}")


def _check_blocks(data: bytes) -> None:
    if len(data) % DES_BLOCK_LEN:
        raise ValueError(f"DES input must be a multiple of 8 bytes, got {len(data)}")


def tdes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data)
    enc = Cipher(_tdes(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def tdes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data)
    dec = Cipher(_tdes(key), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def tdes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    _check_blocks(data)
    enc = Cipher(_tdes(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def tdes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    _check_blocks(data)
    dec = Cipher(_tdes(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def des_ecb_encrypt(key8: bytes, data: bytes) -> bytes:
    """Single DES (used by the retail MAC and SCP02 ICV encryption)."""
    if len(key8) != 8:
        raise ValueError(f"single DES key must be 8 bytes, got {len(key8)}")
    return tdes_ecb_encrypt(key8, data)


def full_3des_mac(key: bytes, data: bytes) -> bytes:
    """Last block of 3DES-CBC (IV 0) over M2-padded data: SCP02 cryptograms (GPCS §E.4.2)."""
    return tdes_cbc_encrypt(key, bytes(DES_BLOCK_LEN), pad80(data, DES_BLOCK_LEN))[-DES_BLOCK_LEN:]


def retail_mac(key: bytes, data: bytes, icv: bytes) -> bytes:
    """ISO 9797-1 MAC algorithm 3 with M2 padding (GPCS §E.4.4).

    Single DES (K1) CBC over all blocks but the last, then 3DES (K1, K2)
    on the last block.
    """
    if len(key) != DES_KEY_LEN:
        raise ValueError(f"retail MAC key must be 16 bytes, got {len(key)}")
    padded = pad80(data, DES_BLOCK_LEN)
    chain = icv
    head, last = padded[:-DES_BLOCK_LEN], padded[-DES_BLOCK_LEN:]
    if head:
        chain = tdes_cbc_encrypt(key[:8], chain, head)[-DES_BLOCK_LEN:]
    return tdes_ecb_encrypt(key, bytes(a ^ b for a, b in zip(chain, last, strict=True)))


def scp02_session_key(static: bytes, constant: SCP02Derivation, sequence_counter: bytes) -> bytes:
    """3DES-CBC(static, IV 0, constant || counter || 00×12) (GPCS §E.4.1)."""
    block = int(constant).to_bytes(2, "big") + sequence_counter + bytes(12)
    return tdes_cbc_encrypt(static, bytes(DES_BLOCK_LEN), block)


def des_kcv(key: bytes) -> bytes:
    """DES/3DES key check value: 3DES-ECB(key, eight 00 bytes)[:3]."""
    return tdes_ecb_encrypt(key, bytes(DES_BLOCK_LEN))[:KCV_LEN]
