"""Block-cipher primitives for the host side of GlobalPlatform SCP02/SCP03.

Pure functions over ``bytes``: no state, no I/O, no logging (these functions see
keys, and keys are never logged). Bad caller input raises ``ValueError``; the
secure-channel classes in :mod:`minidriver.scp03` / :mod:`minidriver.scp02`
turn failures that come from the card into :class:`minidriver.scpbase.SCPError`.

Written for ``minidriver`` independently of the card side (``emulator/gp/``):
design.md, "Host side and card side are written apart".
"""

from __future__ import annotations

import hashlib
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
    "SCP02Constant",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "aes_cmac",
    "aes_ecb_encrypt",
    "aes_kcv",
    "ct_equal",
    "des_ecb_encrypt",
    "des_kcv",
    "kdf3_diversify",
    "pad80",
    "psk_kcv",
    "retail_mac",
    "scp02_session_key",
    "scp03_kdf",
    "tdes_cbc_decrypt",
    "tdes_cbc_encrypt",
    "tdes_cbc_mac",
    "tdes_ecb_encrypt",
    "unpad80",
]

AES_BLOCK_LEN = 16
AES_KEY_LENS = (16, 24, 32)
DES_BLOCK_LEN = 8
DES_KEY_LEN = 16  # two-key 3DES, K1 || K2, used as K1 || K2 || K1
KCV_LEN = 3


def ct_equal(a: bytes, b: bytes) -> bool:
    """Compare MACs and cryptograms in constant time (style.md §2.6)."""
    return hmac.compare_digest(a, b)


# --- padding -------------------------------------------------------------------


def pad80(data: bytes, block_len: int) -> bytes:
    """ISO/IEC 9797-1 method 2 ("80-padding"), always applied (gp-scp.md §0).

    Block-aligned input gains a whole block, so padding can always be removed.
    """
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block_len)


def unpad80(data: bytes, block_len: int) -> bytes:
    """Strip method-2 padding; ``ValueError`` if it is malformed."""
    if not data or len(data) % block_len:
        raise ValueError(f"padded data must be a non-empty multiple of {block_len} bytes")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= block_len:
        raise ValueError("bad 80-padding")
    return stripped[:-1]


# --- AES (SCP03) ---------------------------------------------------------------


def _check_aes_key(key: bytes) -> None:
    if len(key) not in AES_KEY_LENS:
        raise ValueError(f"AES key must be 16, 24 or 32 bytes, got {len(key)}")


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B, RFC 4493): the full 16-byte tag."""
    _check_aes_key(key)
    ctx = cmac.CMAC(algorithms.AES(key))
    ctx.update(data)
    return ctx.finalize()


def aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """AES-ECB over whole blocks (ICV derivation, KCVs)."""
    _check_aes_key(key)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC over whole blocks; the caller pads."""
    _check_aes_key(key)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC decryption over whole blocks; the caller unpads."""
    _check_aes_key(key)
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def scp03_kdf(key: bytes, constant: int, context: bytes, length_bits: int) -> bytes:
    """SCP03 KDF: NIST SP 800-108 counter mode with AES-CMAC (GPC Amd D §4.1.5).

    PRF input for block n (from 1) is ``00×11 || constant || 00 || L (2 bytes,
    bits) || n (1 byte) || context`` (gp-scp.md §2.3); blocks are concatenated
    and truncated to ``length_bits``.
    """
    if length_bits <= 0 or length_bits % 8 or length_bits > 0xFFFF:
        raise ValueError(f"length_bits must be a positive multiple of 8, got {length_bits}")
    label = bytes(11) + bytes([constant, 0x00]) + length_bits.to_bytes(2, "big")
    out = b""
    counter = 1
    while len(out) * 8 < length_bits:
        out += aes_cmac(key, label + bytes([counter]) + context)
        counter += 1
    return out[: length_bits // 8]


def kdf3_diversify(master: bytes, kid: int, kdd: bytes) -> bytes:
    """Per-card AES key from a master key, "KDF3" of GlobalPlatformPro (gp-scp.md §4.4).

    PRF input per block n: ``n (1) || 00 00 00 kid 00 || KDD``; output as long
    as the master key. ``kid`` is 1 (ENC), 2 (MAC) or 3 (DEK).
    """
    if kid not in (1, 2, 3):
        raise ValueError(f"kid must be 1 (ENC), 2 (MAC) or 3 (DEK), got {kid}")
    _check_aes_key(master)
    fixed = bytes([0, 0, 0, kid, 0]) + kdd
    out = b""
    counter = 1
    while len(out) < len(master):
        out += aes_cmac(master, bytes([counter]) + fixed)
        counter += 1
    return out[: len(master)]


def aes_kcv(key: bytes) -> bytes:
    """AES key check value: AES-ECB(key, 16×01)[:3] (GPCS §11.8.2.3, gp-scp.md §1.6)."""
    return aes_ecb_encrypt(key, b"\x01" * AES_BLOCK_LEN)[:KCV_LEN]


# --- DES (SCP02) ---------------------------------------------------------------


def _tdes_key(key: bytes) -> bytes:
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise ValueError(f"DES key must be 8, 16 or 24 bytes, got {len(key)}")


def tdes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """3DES-ECB (key wrapping under the SCP02 session DEK, KCVs)."""
    enc = Cipher(TripleDES(_tdes_key(key)), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def des_ecb_encrypt(key8: bytes, data: bytes) -> bytes:
    """Single DES-ECB with an 8-byte key (SCP02 ICV encryption uses K1)."""
    if len(key8) != 8:
        raise ValueError(f"single-DES key must be 8 bytes, got {len(key8)}")
    return tdes_ecb_encrypt(key8, data)


def tdes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """3DES-CBC over whole blocks; the caller pads."""
    enc = Cipher(TripleDES(_tdes_key(key)), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def tdes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """3DES-CBC decryption over whole blocks; the caller unpads."""
    dec = Cipher(TripleDES(_tdes_key(key)), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def tdes_cbc_mac(key: bytes, data: bytes) -> bytes:
    """Full 3DES CBC-MAC, IV 0, over pad80(data): SCP02 cryptograms (GPCS E.4.2)."""
    return tdes_cbc_encrypt(key, bytes(DES_BLOCK_LEN), pad80(data, DES_BLOCK_LEN))[-DES_BLOCK_LEN:]


def retail_mac(key: bytes, data: bytes, icv: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with method-2 padding (GPCS E.4.4).

    Single DES with K1 over every block but the last, 3DES (K1, K2, K1) on the
    last one: the SCP02 C-MAC.
    """
    if len(key) != DES_KEY_LEN:
        raise ValueError(f"retail MAC key must be 16 bytes, got {len(key)}")
    if len(icv) != DES_BLOCK_LEN:
        raise ValueError(f"ICV must be 8 bytes, got {len(icv)}")
    padded = pad80(data, DES_BLOCK_LEN)
    head, last = padded[:-DES_BLOCK_LEN], padded[-DES_BLOCK_LEN:]
    chain = icv
    if head:
        chain = tdes_cbc_encrypt(key[:8], icv, head)[-DES_BLOCK_LEN:]
    return tdes_ecb_encrypt(key, bytes(x ^ y for x, y in zip(chain, last, strict=True)))


class SCP02Constant(IntEnum):
    """SCP02 session key derivation constants (GPCS E.4.1; gp-scp.md §3.2)."""

    C_MAC = 0x0101  #: from the static MAC key
    R_MAC = 0x0102  #: from the static MAC key
    DEK = 0x0181  #: from the static DEK: key and sensitive-data encryption
    S_ENC = 0x0182  #: from the static ENC key: cryptograms and C-DECRYPTION


def scp02_session_key(static: bytes, constant: SCP02Constant, sequence_counter: bytes) -> bytes:
    """3DES-CBC(static, IV 0, constant || sequence counter || 00×12) (GPCS E.4.1)."""
    if len(sequence_counter) != 2:
        raise ValueError(f"SCP02 sequence counter must be 2 bytes, got {len(sequence_counter)}")
    derivation = constant.to_bytes(2, "big") + sequence_counter + bytes(12)
    return tdes_cbc_encrypt(static, bytes(DES_BLOCK_LEN), derivation)


def des_kcv(key: bytes) -> bytes:
    """3DES key check value: 3DES-ECB(key, 8×00)[:3] (gp-scp.md §1.6)."""
    return tdes_ecb_encrypt(key, bytes(DES_BLOCK_LEN))[:KCV_LEN]


def psk_kcv(key: bytes) -> bytes:
    """TLS-PSK key check value: SHA-1(key)[:3] (GPC Amd B, gp-scp.md §1.6)."""
    return hashlib.sha1(key).digest()[:KCV_LEN]
