"""RSA padding done on the host for a raw-RSA card (PIV): PKCS#1 v1.5, PSS, OAEP (RFC 8017).

A PIV card computes ``m^d mod n`` on a full block (SP 800-73-4 part 2 §3.2.4), so the minidriver
pads what it signs and removes the padding of what it decrypts. Removal runs without branches on
secret bytes and answers every malformed block with the same :class:`PaddingError`, so a caller
cannot tell a bad type byte from a bad separator (Bleichenbacher/Manger).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "HASHES",
    "AlgId",
    "HashSpec",
    "PaddingError",
    "digest_info",
    "emsa_pss_encode",
    "hash_for_alg_id",
    "hash_for_calg",
    "pkcs1_type1",
    "unpad_oaep",
    "unpad_pkcs1_type2",
]


class PaddingError(ValueError):
    """The block does not decode; deliberately says nothing more."""


class AlgId(IntEnum):
    """CAPI ALG_ID of hashes (wincrypt.h) accepted as CARD_SIGNING_INFO.aiHashAlg."""

    CALG_MD5 = 0x8003
    CALG_SHA1 = 0x8004
    CALG_SSL3_SHAMD5 = 0x8008
    CALG_SHA_256 = 0x800C
    CALG_SHA_384 = 0x800D
    CALG_SHA_512 = 0x800E


@dataclass(frozen=True)
class HashSpec:
    """A hash as the padding schemes need it: hashlib name, length and DigestInfo prefix."""

    name: str  #: hashlib name
    bcrypt: str  #: BCrypt algorithm id (BCRYPT_SHA256_ALGORITHM ...)
    size: int
    prefix: bytes  #: DER DigestInfo up to the digest (RFC 8017 §9.2 note 1)


HASHES: dict[str, HashSpec] = {
    h.bcrypt: h
    for h in (
        HashSpec("md5", "MD5", 16, bytes.fromhex("3020300c06082a864886f70d020505000410")),
        HashSpec("sha1", "SHA1", 20, bytes.fromhex("3021300906052b0e03021a05000414")),
        HashSpec("sha256", "SHA256", 32, bytes.fromhex("3031300d060960864801650304020105000420")),
        HashSpec("sha384", "SHA384", 48, bytes.fromhex("3041300d060960864801650304020205000430")),
        HashSpec("sha512", "SHA512", 64, bytes.fromhex("3051300d060960864801650304020305000440")),
    )
}
_CALG = {
    AlgId.CALG_MD5: "MD5",
    AlgId.CALG_SHA1: "SHA1",
    AlgId.CALG_SHA_256: "SHA256",
    AlgId.CALG_SHA_384: "SHA384",
    AlgId.CALG_SHA_512: "SHA512",
}
SSL3_SHAMD5_LEN = 36  #: MD5 || SHA-1, no DigestInfo (CALG_SSL3_SHAMD5)


def hash_for_calg(alg: int) -> HashSpec | None:
    """The hash of a CAPI ALG_ID; None for CALG_SSL3_SHAMD5; KeyError if unknown."""
    if alg == AlgId.CALG_SSL3_SHAMD5:
        return None
    if alg not in _CALG:
        raise KeyError(f"ALG_ID 0x{alg:04X} is not a hash this minidriver pads")
    return HASHES[_CALG[AlgId(alg)]]


def hash_for_alg_id(alg_id: str) -> HashSpec:
    """The hash of a BCrypt algorithm id (L"SHA256" ...); KeyError if unknown."""
    return HASHES[alg_id.upper()]


def digest_info(spec: HashSpec, digest: bytes) -> bytes:
    if len(digest) != spec.size:
        raise ValueError(f"a {spec.bcrypt} hash is {spec.size} bytes, got {len(digest)}")
    return spec.prefix + digest


def pkcs1_type1(payload: bytes, k: int) -> bytes:
    """EMSA-PKCS1-v1_5 block ``00 01 FF.. 00 payload`` of ``k`` bytes (RFC 8017 §9.2 step 2-5)."""
    if len(payload) > k - 11:
        raise ValueError(f"{len(payload)} bytes do not fit a {k}-byte PKCS#1 block")
    return b"\x00\x01" + b"\xff" * (k - 3 - len(payload)) + b"\x00" + payload


def _mgf1(spec: HashSpec, seed: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.new(spec.name, seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:length])


def emsa_pss_encode(m_hash: bytes, spec: HashSpec, salt_len: int, mod_bits: int, salt: bytes | None = None) -> bytes:
    """EMSA-PSS-ENCODE of an already computed hash (RFC 8017 §9.1.1), as a ``k``-byte block."""
    if len(m_hash) != spec.size:
        raise ValueError(f"a {spec.bcrypt} hash is {spec.size} bytes, got {len(m_hash)}")
    em_bits = mod_bits - 1
    em_len = (em_bits + 7) // 8
    if em_len < spec.size + salt_len + 2:
        raise ValueError("the modulus is too short for this hash and salt")
    salt = os.urandom(salt_len) if salt is None else salt
    h = hashlib.new(spec.name, b"\0" * 8 + m_hash + salt).digest()
    db = b"\0" * (em_len - salt_len - spec.size - 2) + b"\x01" + salt
    masked = bytearray(a ^ b for a, b in zip(db, _mgf1(spec, h, len(db)), strict=True))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    em = bytes(masked) + h + b"\xbc"
    k = (mod_bits + 7) // 8
    return em.rjust(k, b"\0")


# -- constant-time helpers: results are 0 or 0xFF masks, no branch on secret bytes ---------------
def _eq(a: int, b: int) -> int:
    """0xFF if a == b (bytes), else 0."""
    return ((((a ^ b) - 1) >> 8) & 0xFF) & 0xFF


def _select(mask: int, a: int, b: int) -> int:
    """a if mask (a byte mask, 0 or 0xFF) is set, else b; for 32-bit a, b."""
    wide = mask * 0x01010101
    return (a & wide) | (b & ~wide & 0xFFFFFFFF)


def unpad_pkcs1_type2(block: bytes, k: int) -> bytes:
    """RSAES-PKCS1-v1_5 decoding (RFC 8017 §7.2.2 step 3), one pass over every byte."""
    if len(block) != k or k < 11:
        raise PaddingError("decryption failed")
    good = _eq(block[0], 0x00) & _eq(block[1], 0x02)
    found = 0  # 0xFF once the separator is seen
    index = 0
    for i in range(2, k):
        zero = _eq(block[i], 0x00)
        first = zero & ~found & 0xFF
        index = _select(first, i, index)
        found |= zero
    good &= found
    short_ps = ((index - 10) >> 31) & 1  # 1 if fewer than 8 bytes of PS, without a branch
    good &= (short_ps - 1) & 0xFF
    if not good:
        raise PaddingError("decryption failed")
    return bytes(block[index + 1 :])


def unpad_oaep(block: bytes, k: int, spec: HashSpec, label: bytes = b"") -> bytes:
    """RSAES-OAEP decoding (RFC 8017 §7.1.2 step 3), errors indistinguishable."""
    h_len = spec.size
    if len(block) != k or k < 2 * h_len + 2:
        raise PaddingError("decryption failed")
    l_hash = hashlib.new(spec.name, label).digest()
    masked_seed, masked_db = block[1 : 1 + h_len], block[1 + h_len :]
    seed = bytes(a ^ b for a, b in zip(masked_seed, _mgf1(spec, masked_db, h_len), strict=True))
    db = bytes(a ^ b for a, b in zip(masked_db, _mgf1(spec, seed, k - h_len - 1), strict=True))
    good = _eq(block[0], 0x00) & (0xFF if hmac.compare_digest(db[:h_len], l_hash) else 0)
    found = 0
    index = 0
    bad_ps = 0
    for i in range(h_len, len(db)):
        one = _eq(db[i], 0x01)
        zero = _eq(db[i], 0x00)
        first = one & ~found & 0xFF
        index = _select(first, i, index)
        bad_ps |= ~found & ~zero & ~one & 0xFF  # a byte before the 01 that is not 00
        found |= one
    good &= found & ~bad_ps & 0xFF
    if not good:
        raise PaddingError("decryption failed")
    return db[index + 1 :]
