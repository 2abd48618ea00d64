"""Public and private key blobs at the minidriver interface (minidriver-spec.md §3.5).

Pure codecs between bytes and ``cryptography`` key objects:

* RSA public keys leave the minidriver as a CAPI ``PUBLICKEYBLOB``: ``BLOBHEADER`` (bType 0x06,
  bVersion 2, reserved 0, aiKeyAlg CALG_RSA_KEYX or CALG_RSA_SIGN) + ``RSAPUBKEY`` (magic "RSA1",
  bitlen, pubexp) + the modulus **little-endian** (wincrypt.h, "Base Provider Key BLOBs").
* RSA keys to import arrive as a CAPI ``PRIVATEKEYBLOB``: bType 0x07, magic "RSA2", then modulus,
  prime1, prime2, exponent1, exponent2, coefficient (each half length) and privateExponent, all
  little-endian.
* EC keys travel as ``BCRYPT_ECCKEY_BLOB{dwMagic, cbKey}`` + X + Y (+ d for a private blob), all
  **big-endian**, ``cbKey`` bytes each (bcrypt.h). The magic says ECDSA or ECDH and the curve.

Every parser checks every length and field and raises :class:`BlobError` naming what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "BlobError",
    "BlobType",
    "CapiAlg",
    "EccBlob",
    "EccMagic",
    "ecc_private_blob",
    "ecc_public_blob",
    "parse_ecc_private_blob",
    "parse_ecc_public_blob",
    "parse_rsa_private_blob",
    "parse_rsa_public_blob",
    "rsa_private_blob",
    "rsa_public_blob",
]


class BlobError(ValueError):
    """A key blob that is malformed or of a kind this minidriver does not take."""


class BlobType(IntEnum):
    """BLOBHEADER.bType (wincrypt.h)."""

    PUBLICKEYBLOB = 0x06
    PRIVATEKEYBLOB = 0x07


class CapiAlg(IntEnum):
    """BLOBHEADER.aiKeyAlg for RSA (wincrypt.h ALG_ID)."""

    CALG_RSA_SIGN = 0x2400
    CALG_RSA_KEYX = 0xA400


CUR_BLOB_VERSION = 2
RSA1_MAGIC = 0x31415352  #: "RSA1": RSAPUBKEY of a public blob
RSA2_MAGIC = 0x32415352  #: "RSA2": RSAPUBKEY of a private blob
_HEADER = struct.Struct("<BBHI")  # BLOBHEADER
_RSAPUBKEY = struct.Struct("<III")  # magic, bitlen, pubexp
_ECCKEY = struct.Struct("<II")  # BCRYPT_ECCKEY_BLOB: dwMagic, cbKey


class EccMagic(IntEnum):
    """BCRYPT_ECCKEY_BLOB.dwMagic (bcrypt.h): "ECK"/"ECS" + 1..6."""

    ECDH_PUBLIC_P256 = 0x314B4345
    ECDH_PRIVATE_P256 = 0x324B4345
    ECDH_PUBLIC_P384 = 0x334B4345
    ECDH_PRIVATE_P384 = 0x344B4345
    ECDH_PUBLIC_P521 = 0x354B4345
    ECDH_PRIVATE_P521 = 0x364B4345
    ECDSA_PUBLIC_P256 = 0x31534345
    ECDSA_PRIVATE_P256 = 0x32534345
    ECDSA_PUBLIC_P384 = 0x33534345
    ECDSA_PRIVATE_P384 = 0x34534345
    ECDSA_PUBLIC_P521 = 0x35534345
    ECDSA_PRIVATE_P521 = 0x36534345


#: curve name -> (field size in bytes, magic index 1/3/5 for the public blob)
_CURVES: dict[str, tuple[int, int]] = {"secp256r1": (32, 1), "secp384r1": (48, 3), "secp521r1": (66, 5)}
_CURVE_OF_INDEX: dict[int, ec.EllipticCurve] = {1: ec.SECP256R1(), 3: ec.SECP384R1(), 5: ec.SECP521R1()}


@dataclass(frozen=True)
class EccBlob:
    """What an ECC magic says: ECDH or ECDSA, public or private, and the curve."""

    ecdh: bool
    private: bool
    curve: ec.EllipticCurve
    size: int  #: cbKey, bytes per coordinate

    @classmethod
    def from_magic(cls, magic: int) -> EccBlob:
        try:
            EccMagic(magic)
        except ValueError:
            raise BlobError(f"unknown BCRYPT_ECCKEY_BLOB magic 0x{magic:08X}") from None
        kind, digit = magic & 0x00FFFFFF, (magic >> 24) - 0x30
        index = digit if digit % 2 else digit - 1
        curve = _CURVE_OF_INDEX[index]
        return cls(kind == 0x4B4345, digit % 2 == 0, curve, _CURVES[curve.name][0])

    @property
    def magic(self) -> EccMagic:
        index = _CURVES[self.curve.name][1] + (1 if self.private else 0)
        return EccMagic(((0x30 + index) << 24) | (0x4B4345 if self.ecdh else 0x534345))


def _le(value: int, length: int) -> bytes:
    return value.to_bytes(length, "little")


def _from_le(data: bytes) -> int:
    return int.from_bytes(data, "little")


# -- RSA ---------------------------------------------------------------------------------------
def rsa_public_blob(key: rsa.RSAPublicKey, alg: CapiAlg) -> bytes:
    """PUBLICKEYBLOB for ``key``; ``alg`` CALG_RSA_KEYX (key exchange) or CALG_RSA_SIGN."""
    numbers = key.public_numbers()
    if numbers.e >= 1 << 32:
        raise BlobError("RSAPUBKEY.pubexp is a DWORD: the public exponent does not fit")
    bits = key.key_size
    header = _HEADER.pack(BlobType.PUBLICKEYBLOB, CUR_BLOB_VERSION, 0, CapiAlg(alg))
    return header + _RSAPUBKEY.pack(RSA1_MAGIC, bits, numbers.e) + _le(numbers.n, (bits + 7) // 8)


def _rsa_header(blob: bytes, btype: BlobType, magic: int) -> tuple[CapiAlg, int, int]:
    if len(blob) < _HEADER.size + _RSAPUBKEY.size:
        raise BlobError(f"{btype.name} shorter than its headers ({len(blob)} bytes)")
    bt, version, reserved, alg = _HEADER.unpack_from(blob)
    if bt != btype:
        raise BlobError(f"bType 0x{bt:02X} is not {btype.name} (0x{btype:02X})")
    if version != CUR_BLOB_VERSION:
        raise BlobError(f"bVersion {version} is not {CUR_BLOB_VERSION}")
    if reserved:
        raise BlobError("BLOBHEADER.reserved is not 0")
    try:
        capi_alg = CapiAlg(alg)
    except ValueError:
        raise BlobError(f"aiKeyAlg 0x{alg:04X} is neither CALG_RSA_KEYX nor CALG_RSA_SIGN") from None
    got_magic, bits, exponent = _RSAPUBKEY.unpack_from(blob, _HEADER.size)
    if got_magic != magic:
        raise BlobError(f"RSAPUBKEY.magic 0x{got_magic:08X} is not 0x{magic:08X}")
    if bits < 512 or bits % 16:
        raise BlobError(f"RSAPUBKEY.bitlen {bits} is not a usable RSA size")
    return capi_alg, bits, exponent


def parse_rsa_public_blob(blob: bytes) -> tuple[rsa.RSAPublicKey, CapiAlg]:
    """The key and aiKeyAlg of a PUBLICKEYBLOB."""
    alg, bits, exponent = _rsa_header(blob, BlobType.PUBLICKEYBLOB, RSA1_MAGIC)
    body = blob[_HEADER.size + _RSAPUBKEY.size :]
    if len(body) != bits // 8:
        raise BlobError(f"modulus is {len(body)} bytes, bitlen says {bits // 8}")
    try:
        return rsa.RSAPublicNumbers(exponent, _from_le(body)).public_key(), alg
    except ValueError as exc:
        raise BlobError(f"not an RSA public key: {exc}") from None


def rsa_private_blob(key: rsa.RSAPrivateKey, alg: CapiAlg) -> bytes:
    """PRIVATEKEYBLOB for ``key`` (what CardCreateContainer(KEY_IMPORT) takes)."""
    priv = key.private_numbers()
    pub = priv.public_numbers
    bits = key.key_size
    n8, n16 = bits // 8, bits // 16
    header = _HEADER.pack(BlobType.PRIVATEKEYBLOB, CUR_BLOB_VERSION, 0, CapiAlg(alg))
    return b"".join(
        (
            header,
            _RSAPUBKEY.pack(RSA2_MAGIC, bits, pub.e),
            _le(pub.n, n8),
            _le(priv.p, n16),
            _le(priv.q, n16),
            _le(priv.dmp1, n16),
            _le(priv.dmq1, n16),
            _le(priv.iqmp, n16),
            _le(priv.d, n8),
        )
    )


def parse_rsa_private_blob(blob: bytes) -> tuple[rsa.RSAPrivateKey, CapiAlg]:
    """The key and aiKeyAlg of a PRIVATEKEYBLOB; the parts must make one consistent key."""
    alg, bits, exponent = _rsa_header(blob, BlobType.PRIVATEKEYBLOB, RSA2_MAGIC)
    n8, n16 = bits // 8, bits // 16
    body = blob[_HEADER.size + _RSAPUBKEY.size :]
    if len(body) != 2 * n8 + 5 * n16:
        raise BlobError(f"PRIVATEKEYBLOB body is {len(body)} bytes, a {bits}-bit key needs {2 * n8 + 5 * n16}")
    sizes = (n8, n16, n16, n16, n16, n16, n8)
    parts, offset = [], 0
    for size in sizes:
        parts.append(_from_le(body[offset : offset + size]))
        offset += size
    n, p, q, dmp1, dmq1, iqmp, d = parts
    if p * q != n:
        raise BlobError("prime1 * prime2 is not the modulus")
    try:
        numbers = rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(exponent, n))
        return numbers.private_key(), alg
    except ValueError as exc:
        raise BlobError(f"inconsistent RSA private key: {exc}") from None


# -- ECC ---------------------------------------------------------------------------------------
def _ecc_kind(curve: ec.EllipticCurve) -> int:
    if curve.name not in _CURVES:
        raise BlobError(f"curve {curve.name} has no BCRYPT_ECCKEY_BLOB magic")
    return _CURVES[curve.name][0]


def ecc_public_blob(key: ec.EllipticCurvePublicKey, *, ecdh: bool) -> bytes:
    """BCRYPT_ECCKEY_BLOB public: ECDH_PUBLIC_* magic if ``ecdh`` else ECDSA_PUBLIC_*."""
    size = _ecc_kind(key.curve)
    numbers = key.public_numbers()
    magic = EccBlob(ecdh, False, key.curve, size).magic
    return _ECCKEY.pack(magic, size) + numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")


def ecc_private_blob(key: ec.EllipticCurvePrivateKey, *, ecdh: bool) -> bytes:
    """BCRYPT_ECCKEY_BLOB private (X, Y, d) with ECDH_PRIVATE_* / ECDSA_PRIVATE_* magic."""
    size = _ecc_kind(key.curve)
    public = ecc_public_blob(key.public_key(), ecdh=ecdh)
    magic = EccBlob(ecdh, True, key.curve, size).magic
    return (
        _ECCKEY.pack(magic, size) + public[_ECCKEY.size :] + key.private_numbers().private_value.to_bytes(size, "big")
    )


def _ecc_parse(blob: bytes, private: bool) -> tuple[EccBlob, int, int, bytes]:
    if len(blob) < _ECCKEY.size:
        raise BlobError(f"BCRYPT_ECCKEY_BLOB shorter than its header ({len(blob)} bytes)")
    magic, size = _ECCKEY.unpack_from(blob)
    kind = EccBlob.from_magic(magic)
    if kind.private != private:
        raise BlobError(f"{EccMagic(magic).name} is not a {'private' if private else 'public'} blob")
    if size != kind.size:
        raise BlobError(f"cbKey {size} does not match {EccMagic(magic).name} ({kind.size})")
    want = _ECCKEY.size + size * (3 if private else 2)
    if len(blob) != want:
        raise BlobError(f"{EccMagic(magic).name} blob is {len(blob)} bytes, expected {want}")
    x = int.from_bytes(blob[8 : 8 + size], "big")
    y = int.from_bytes(blob[8 + size : 8 + 2 * size], "big")
    return kind, x, y, blob[8 + 2 * size :]


def parse_ecc_public_blob(blob: bytes) -> tuple[ec.EllipticCurvePublicKey, EccBlob]:
    """The key of a public BCRYPT_ECCKEY_BLOB (the point must be on the curve)."""
    kind, x, y, _ = _ecc_parse(blob, False)
    try:
        return ec.EllipticCurvePublicNumbers(x, y, kind.curve).public_key(), kind
    except ValueError as exc:
        raise BlobError(f"point not on {kind.curve.name}: {exc}") from None


def parse_ecc_private_blob(blob: bytes) -> tuple[ec.EllipticCurvePrivateKey, EccBlob]:
    """The key of a private BCRYPT_ECCKEY_BLOB; d must give the blob's X, Y."""
    kind, x, y, d_bytes = _ecc_parse(blob, True)
    d = int.from_bytes(d_bytes, "big")
    try:
        key = ec.derive_private_key(d, kind.curve)
    except ValueError as exc:
        raise BlobError(f"private value out of range: {exc}") from None
    pub = key.public_key().public_numbers()
    if (pub.x, pub.y) != (x, y):
        raise BlobError("the blob's public point does not belong to its private value")
    return key, kind
