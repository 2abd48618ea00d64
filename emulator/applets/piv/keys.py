"""Asymmetric keys of the PIV slots: storage record, generation, import, operations.

A slot's key and its metadata (algorithm, PIN and touch policy, origin)
are one record, so a write of that record can never leave a key with
another key's metadata. Private operations follow SP 800-73-4 part 2
§3.2.4 / SP 800-78-4: RSA is the raw private exponentiation of a block
the host padded, ECDSA signs the digest the host computed, ECDH returns
the x coordinate of the shared point. YubiKey 5.7's Ed25519 signs the whole
message the host sends (RFC 8032: PureEdDSA hashes internally) and X25519
takes the peer's 32-byte u-coordinate (RFC 7748 §5), as yubikit sends them.

A slot's key is parsed once into a :class:`SlotKey` (cached by
:class:`~.state.PIVState`), which also holds what each private operation
needs, so a GENERAL AUTHENTICATE neither re-parses DER nor rebuilds
algorithm objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
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
    "SigningKey",
    "SlotKey",
    "algorithm_of",
    "generate_private_key",
    "import_private_key",
    "public_key_tlvs",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | x25519.X25519PublicKey
#: keys that can sign an X.509 certificate (an X25519 key only agrees)
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
#: the private key types a slot may hold, for isinstance checks
_PRIVATE_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, x25519.X25519PrivateKey)
CURVE25519_KEY_LEN = 32  #: Ed25519 and X25519 private and public keys (RFC 8032 §5.1.5, RFC 7748 §5)

RSA_EXPONENT = 65537  #: the only public exponent PIV cards generate or import
_CURVES: dict[Algorithm, ec.EllipticCurve] = {Algorithm.ECCP256: ec.SECP256R1(), Algorithm.ECCP384: ec.SECP384R1()}
#: ECDSA over a prehashed digest, by the order's byte length (the digest is fitted to it)
_ECDSA = {32: ec.ECDSA(Prehashed(hashes.SHA256())), 48: ec.ECDSA(Prehashed(hashes.SHA384()))}
_ECDH = ec.ECDH()
_PKCS1V15 = PKCS1v15()
#: EMSA-PKCS1-v1_5 DigestInfo prefixes (RFC 8017 §9.2 note 1), by the length of DigestInfo;
#: the lengths differ, so the length alone picks the candidate hash
_DIGEST_INFO: dict[int, tuple[bytes, Prehashed]] = {
    len(prefix) + alg.digest_size: (prefix, Prehashed(alg))
    for prefix, alg in (
        (bytes.fromhex("3020300c06082a864886f70d020505000410"), hashes.MD5()),
        (bytes.fromhex("3021300906052b0e03021a05000414"), hashes.SHA1()),
        (bytes.fromhex("302d300d06096086480165030402040500041c"), hashes.SHA224()),
        (bytes.fromhex("3031300d060960864801650304020105000420"), hashes.SHA256()),
        (bytes.fromhex("3041300d060960864801650304020205000430"), hashes.SHA384()),
        (bytes.fromhex("3051300d060960864801650304020305000440"), hashes.SHA512()),
    )
}
_NO_ENCRYPTION = serialization.NoEncryption()
_MIN_PS_LEN = 8  #: EMSA-PKCS1-v1_5 padding string: at least 8 FF bytes


class ImportTag(IntEnum):
    """Private key components of IMPORT ASYMMETRIC KEY (YubiKey extension)."""

    RSA_P = 0x01
    RSA_Q = 0x02
    RSA_DP = 0x03
    RSA_DQ = 0x04
    RSA_QINV = 0x05
    EC_PRIVATE = 0x06
    #: YubiKey 5.7: the 32-byte raw private keys (yubikit ``PivSession.put_key``)
    ED25519_PRIVATE = 0x07
    X25519_PRIVATE = 0x08


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
    def create(
        cls,
        key: PrivateKey,
        *,
        pin_policy: PinPolicy,
        touch_policy: TouchPolicy,
        origin: Origin,
        algorithm: Algorithm | None = None,
    ) -> KeyRecord:
        """The record of ``key``; ``algorithm`` if the caller knows it (else read from the key)."""
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, _NO_ENCRYPTION)
        return cls(algorithm or algorithm_of(key), der, pin_policy, touch_policy, origin)

    def __bytes__(self) -> bytes:
        """JSON with sorted keys, written out directly (what ``json.dumps(..., sort_keys=True)`` gives)."""
        return (
            f'{{"alg": {int(self.algorithm)}, "der": "{self.der.hex()}", "origin": {int(self.origin)},'
            f' "pin": {int(self.pin_policy)}, "touch": {int(self.touch_policy)}}}'
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyRecord:
        value: dict[str, Any] = json.loads(raw)
        return cls(
            Algorithm(value["alg"]),
            bytes.fromhex(value["der"]),
            PinPolicy(value["pin"]),
            TouchPolicy(value["touch"]),
            Origin(value["origin"]),
        )

    def private_key(self) -> PrivateKey:
        key = serialization.load_der_private_key(self.der, password=None)
        if not isinstance(key, _PRIVATE_TYPES):
            raise ValueError(f"stored key is a {type(key).__name__}")  # pragma: no cover
        return key


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return Algorithm.ED25519
    if isinstance(key, (x25519.X25519PrivateKey, x25519.X25519PublicKey)):
        return Algorithm.X25519
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
    if alg is Algorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if alg is Algorithm.X25519:
        return x25519.X25519PrivateKey.generate()
    raise CardError(SW.WRONG_DATA, f"cannot generate a key of algorithm {alg:02X}")


def import_private_key(alg: Algorithm, data: bytes) -> PrivateKey:
    """Build a key from the CRT components (01..05), the EC scalar (06) or a raw 25519 key (07, 08)."""
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
        elif alg is Algorithm.ED25519:
            key = ed25519.Ed25519PrivateKey.from_private_bytes(_raw_25519(fields[ImportTag.ED25519_PRIVATE]))
        elif alg is Algorithm.X25519:
            key = x25519.X25519PrivateKey.from_private_bytes(_raw_25519(fields[ImportTag.X25519_PRIVATE]))
        else:
            raise CardError(SW.INCORRECT_P1P2, f"cannot import a key of algorithm {alg:02X}")
    except KeyError as exc:
        raise CardError(SW.WRONG_DATA, f"key component {exc.args[0]:02X} missing") from None
    except ValueError:
        raise CardError(SW.WRONG_DATA, "inconsistent key components") from None
    if algorithm_of(key) != alg:
        raise CardError(SW.WRONG_DATA, "key size does not match the algorithm in P1")
    return key


def _raw_25519(value: bytes) -> bytes:
    if len(value) != CURVE25519_KEY_LEN:
        raise CardError(SW.WRONG_DATA, f"a 25519 private key is {CURVE25519_KEY_LEN} bytes, got {len(value)}")
    return value


def public_key_tlvs(key: PublicKey) -> bytes:
    """Public key data objects (part 2 Table 10): 81 modulus, 82 exponent, or 86 point.

    Ed25519 and X25519 public keys travel raw (32 bytes) in 86, as YubiKey 5.7 answers.
    """
    if isinstance(key, (ed25519.Ed25519PublicKey, x25519.X25519PublicKey)):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return encode_tlv(PIVTag.EC_POINT, raw)
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        n_len = (key.key_size + 7) // 8
        e_len = max(1, (numbers.e.bit_length() + 7) // 8)
        return encode_tlv(PIVTag.RSA_MODULUS, numbers.n.to_bytes(n_len, "big")) + encode_tlv(
            PIVTag.RSA_EXPONENT, numbers.e.to_bytes(e_len, "big")
        )
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return encode_tlv(PIVTag.EC_POINT, point)


class SlotKey:
    """A slot's private key, parsed once, with the private operations of SP 800-73-4 part 2 §3.2.4."""

    __slots__ = ("_crt", "_curve", "is_rsa", "key", "size")

    def __init__(self, key: PrivateKey) -> None:
        self.key = key
        self.is_rsa = isinstance(key, rsa.RSAPrivateKey)
        self._curve = key.curve if isinstance(key, ec.EllipticCurvePrivateKey) else None
        if isinstance(key, rsa.RSAPrivateKey):
            bits = key.key_size
        elif self._curve is not None:
            bits = self._curve.key_size
        else:
            bits = 8 * CURVE25519_KEY_LEN
        self.size = (bits + 7) // 8  #: bytes of the RSA modulus, of the EC group order, or of a 25519 key
        self._crt: tuple[int, int, int, int, int, int] | None = None  #: n, p, q, dp, dq, qinv (RSA, lazily)

    def public_key(self) -> PublicKey:
        return self.key.public_key()

    def rsa_private_operation(self, block: bytes) -> bytes:
        """Raw RSA with the private key: ``block^d mod n``; the host did the padding or will remove it.

        A block that is an EMSA-PKCS1-v1_5 signature encoding of a known hash
        (RFC 8017 §9.2) is signed by ``cryptography``: PKCS#1 v1.5 signing is
        deterministic, so the result is the same ``block^d mod n``. Any other
        block (PSS-encoded, a ciphertext to decrypt) takes the CRT computation.
        """
        key = self.key
        assert isinstance(key, rsa.RSAPrivateKey)
        size = self.size
        if len(block) != size:
            raise CardError(SW.WRONG_DATA, f"RSA input must be {size} bytes, got {len(block)}")
        signed = self._pkcs1v15_signature(key, block)
        if signed is not None:
            return signed
        if self._crt is None:
            numbers = key.private_numbers()
            self._crt = (
                numbers.public_numbers.n,
                numbers.p,
                numbers.q,
                numbers.dmp1,
                numbers.dmq1,
                numbers.iqmp,
            )
        n, p, q, dp, dq, qinv = self._crt
        c = int.from_bytes(block, "big")
        if c >= n:
            raise CardError(SW.WRONG_DATA, "RSA input not below the modulus")
        m1 = pow(c, dp, p)
        m2 = pow(c, dq, q)
        h = (qinv * (m1 - m2)) % p
        return (m2 + h * q).to_bytes(size, "big")

    @staticmethod
    def _pkcs1v15_signature(key: rsa.RSAPrivateKey, block: bytes) -> bytes | None:
        """The signature if ``block`` is ``00 01 FF..FF 00 DigestInfo`` of a known hash, else None."""
        if block[:2] != b"\x00\x01":
            return None
        sep = block.find(b"\x00", 2)
        if sep - 2 < _MIN_PS_LEN or block.count(b"\xff", 2, sep) != sep - 2:
            return None
        digest_info = block[sep + 1 :]
        known = _DIGEST_INFO.get(len(digest_info))
        if known is None or not digest_info.startswith(known[0]):
            return None
        prefix, prehashed = known
        try:
            return key.sign(digest_info[len(prefix) :], _PKCS1V15, prehashed)
        except (UnsupportedAlgorithm, ValueError):  # e.g. MD5 refused by the OpenSSL build
            return None

    def sign(self, challenge: bytes) -> bytes:
        """The signature of an EC or Ed25519 key over the 81 challenge (an X25519 key cannot sign: 6A80)."""
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(challenge)  # RFC 8032 §5.1.6: the whole message; 64 bytes R || S
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.ecdsa_sign(challenge)
        raise CardError(SW.WRONG_DATA, "an X25519 key agrees (85), it does not sign (81)")

    def ecdsa_sign(self, digest: bytes) -> bytes:
        """ECDSA over a digest the host computed; answer is the DER Ecdsa-Sig-Value.

        The digest is fitted to the order's byte length the way ECDSA itself
        treats it (FIPS 186-4 §6.4: leftmost bits), so SHA-512 over P-256 works.
        """
        key = self.key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        if not digest:
            raise CardError(SW.WRONG_DATA, "empty digest")
        size = self.size
        return key.sign(digest[:size].rjust(size, b"\x00"), _ECDSA[size])

    def ecdh(self, point: bytes) -> bytes:
        """Shared secret with the peer's public key (SP 800-73-4 §3.2.4; RFC 7748 §6.1 for X25519).

        EC: the peer's uncompressed point, answer the x coordinate. X25519: the
        peer's 32-byte u-coordinate, answer the 32-byte shared secret; an
        all-zero result (a small-order peer point) is refused.
        """
        key = self.key
        if isinstance(key, x25519.X25519PrivateKey):
            try:
                return key.exchange(x25519.X25519PublicKey.from_public_bytes(point))
            except ValueError:
                raise CardError(SW.WRONG_DATA, "peer key is not a usable X25519 public key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or self._curve is None:
            raise CardError(SW.WRONG_DATA, "an Ed25519 key signs (81), it does not agree (85)")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, point)
        except ValueError:
            raise CardError(SW.WRONG_DATA, "peer point is not on the key's curve") from None
        return key.exchange(_ECDH, peer)
