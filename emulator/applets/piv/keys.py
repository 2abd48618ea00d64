"""Asymmetric keys of the PIV slots: storage record, generation, import, operations.

A slot's key and its metadata (algorithm, PIN and touch policy, origin)
are one record, so a write of that record can never leave a key with
another key's metadata. Private operations follow SP 800-73-4 part 2
§3.2.4 / SP 800-78-4: RSA is the raw private exponentiation of a block
the host padded, ECDSA signs the digest the host computed, ECDH returns
the x coordinate of the shared point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ...iso7816 import SW, CardError, encode_tlv, parse_tlvs
from .consts import (
    EC_CURVE_NAMES,
    RSA_BITS,
    Algorithm,
    Origin,
    PinPolicy,
    PIVTag,
    TouchPolicy,
)

__all__ = [
    "KeyRecord",
    "PrivateKey",
    "PublicKey",
    "algorithm_of",
    "ecdh",
    "ecdsa_sign",
    "generate_private_key",
    "import_private_key",
    "public_key_tlvs",
    "rsa_private_operation",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_EXPONENT = 65537  #: the only public exponent PIV cards generate or import
_CURVES: dict[Algorithm, ec.EllipticCurve] = {Algorithm.ECCP256: ec.SECP256R1(), Algorithm.ECCP384: ec.SECP384R1()}
_PREHASH = {32: hashes.SHA256(), 48: hashes.SHA384()}


class ImportTag(IntEnum):
    """Private key components of IMPORT ASYMMETRIC KEY (YubiKey extension)."""

    RSA_P = 0x01
    RSA_Q = 0x02
    RSA_DP = 0x03
    RSA_DQ = 0x04
    RSA_QINV = 0x05
    EC_PRIVATE = 0x06


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One slot's key as stored: PKCS#8 DER plus metadata."""

    algorithm: Algorithm
    der: bytes = field(repr=False)
    pin_policy: PinPolicy
    touch_policy: TouchPolicy
    origin: Origin

    def __post_init__(self) -> None:
        if self.pin_policy is PinPolicy.DEFAULT or self.touch_policy is TouchPolicy.DEFAULT:
            raise ValueError("pin_policy and touch_policy must be resolved, not DEFAULT")

    @classmethod
    def create(cls, key: PrivateKey, *, pin_policy: PinPolicy, touch_policy: TouchPolicy, origin: Origin) -> KeyRecord:
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(algorithm_of(key), der, pin_policy, touch_policy, origin)

    def __bytes__(self) -> bytes:
        value: dict[str, Any] = {
            "alg": int(self.algorithm),
            "der": self.der.hex(),
            "pin": int(self.pin_policy),
            "touch": int(self.touch_policy),
            "origin": int(self.origin),
        }
        return json.dumps(value, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyRecord:
        value = json.loads(raw)
        return cls(
            Algorithm(value["alg"]),
            bytes.fromhex(value["der"]),
            PinPolicy(value["pin"]),
            TouchPolicy(value["touch"]),
            Origin(value["origin"]),
        )

    def private_key(self) -> PrivateKey:
        key = serialization.load_der_private_key(self.der, password=None)
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ValueError(f"stored key is a {type(key).__name__}")  # pragma: no cover
        return key


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        for alg, bits in RSA_BITS.items():
            if bits == key.key_size:
                return alg
        raise CardError(SW.WRONG_DATA, f"RSA-{key.key_size} is not a PIV algorithm")
    for alg, name in EC_CURVE_NAMES.items():
        if key.curve.name == name:
            return alg
    raise CardError(SW.WRONG_DATA, f"curve {key.curve.name} is not a PIV algorithm")


def generate_private_key(alg: Algorithm) -> PrivateKey:
    if alg in RSA_BITS:
        return rsa.generate_private_key(RSA_EXPONENT, RSA_BITS[alg])
    if alg in _CURVES:
        return ec.generate_private_key(_CURVES[alg])
    raise CardError(SW.WRONG_DATA, f"cannot generate a key of algorithm {alg:02X}")


def import_private_key(alg: Algorithm, data: bytes) -> PrivateKey:
    """Build a key from the CRT components (01..05) or the EC scalar (06)."""
    fields = {t.tag: t.value for t in parse_tlvs(data)}
    try:
        if alg in RSA_BITS:
            p, q, dp, dq, qinv = (
                int.from_bytes(fields[tag], "big")
                for tag in (ImportTag.RSA_P, ImportTag.RSA_Q, ImportTag.RSA_DP, ImportTag.RSA_DQ, ImportTag.RSA_QINV)
            )
            n = p * q
            d = rsa.rsa_recover_private_exponent(RSA_EXPONENT, p, q)
            numbers = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qinv, rsa.RSAPublicNumbers(RSA_EXPONENT, n))
            key: PrivateKey = numbers.private_key()
        elif alg in _CURVES:
            scalar = int.from_bytes(fields[ImportTag.EC_PRIVATE], "big")
            key = ec.derive_private_key(scalar, _CURVES[alg])
        else:
            raise CardError(SW.INCORRECT_P1P2, f"cannot import a key of algorithm {alg:02X}")
    except KeyError as exc:
        raise CardError(SW.WRONG_DATA, f"key component {exc.args[0]:02X} missing") from None
    except ValueError:
        raise CardError(SW.WRONG_DATA, "inconsistent key components") from None
    if algorithm_of(key) != alg:
        raise CardError(SW.WRONG_DATA, "key size does not match the algorithm in P1")
    return key


def public_key_tlvs(key: PublicKey) -> bytes:
    """Public key data objects (part 2 Table 10): 81 modulus, 82 exponent, or 86 point."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        n_len = (key.key_size + 7) // 8
        e_len = max(1, (numbers.e.bit_length() + 7) // 8)
        return encode_tlv(PIVTag.RSA_MODULUS, numbers.n.to_bytes(n_len, "big")) + encode_tlv(
            PIVTag.RSA_EXPONENT, numbers.e.to_bytes(e_len, "big")
        )
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return encode_tlv(PIVTag.EC_POINT, point)


def rsa_private_operation(key: rsa.RSAPrivateKey, block: bytes) -> bytes:
    """Raw RSA with the private key (CRT); the host did the padding or will remove it."""
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    size = (key.key_size + 7) // 8
    if len(block) != size:
        raise CardError(SW.WRONG_DATA, f"RSA input must be {size} bytes, got {len(block)}")
    c = int.from_bytes(block, "big")
    if c >= n:
        raise CardError(SW.WRONG_DATA, "RSA input not below the modulus")
    m1 = pow(c, numbers.dmp1, numbers.p)
    m2 = pow(c, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (m1 - m2)) % numbers.p
    return (m2 + h * numbers.q).to_bytes(size, "big")


def ecdsa_sign(key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """ECDSA over a digest the host computed; answer is the DER Ecdsa-Sig-Value.

    The digest is fitted to the order's byte length the way ECDSA itself
    treats it (FIPS 186-4 §6.4: leftmost bits), so SHA-512 over P-256 works.
    """
    size = (key.curve.key_size + 7) // 8
    if not digest:
        raise CardError(SW.WRONG_DATA, "empty digest")
    fitted = digest[:size].rjust(size, b"\x00")
    return key.sign(fitted, ec.ECDSA(Prehashed(_PREHASH[size])))


def ecdh(key: ec.EllipticCurvePrivateKey, point: bytes) -> bytes:
    """Shared secret (x coordinate) with the peer's uncompressed point (SP 800-73-4 §3.2.4)."""
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, point)
    except ValueError:
        raise CardError(SW.WRONG_DATA, "peer point is not on the key's curve") from None
    return key.exchange(ec.ECDH(), peer)
