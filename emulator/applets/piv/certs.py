"""X.509 certificates the card itself makes: self-signed slot certificates and attestations.

Attestation (YubiKey extension, EXTENSIONS.md): the card signs, with the key
in slot F9, a certificate for the public key of a key it generated. The
extensions carry the firmware version, serial number and key policies
under the OIDs PIV tools read (Yubico arc 1.3.6.1.4.1.41482.3).

Certificate objects may hold a compressed certificate (CertInfo 71 = 01,
gzip, as ``ykman piv certificates import --compress`` and yubico-piv-tool
write them, SP 800-73-4 part 1 Table 10 "CertInfo"); the card stores them
as data and reads one back only to sign an attestation.
"""

from __future__ import annotations

import datetime as dt
import os
import zlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ...iso7816 import CardError, parse_tlvs
from .consts import PinPolicy, PIVTag, TouchPolicy
from .keys import PublicKey, SigningKey

__all__ = ["attestation_certificate", "certificate_der", "parse_name", "self_signed_certificate"]

_YUBICO_ARC = "1.3.6.1.4.1.41482.3"
OID_FIRMWARE = x509.ObjectIdentifier(f"{_YUBICO_ARC}.3")  #: 3 raw bytes: major, minor, patch
OID_SERIAL = x509.ObjectIdentifier(f"{_YUBICO_ARC}.7")  #: DER INTEGER
OID_POLICY = x509.ObjectIdentifier(f"{_YUBICO_ARC}.8")  #: 2 raw bytes: PIN policy, touch policy
OID_FORM_FACTOR = x509.ObjectIdentifier(f"{_YUBICO_ARC}.9")  #: 1 raw byte
FORM_FACTOR_UNKNOWN = 0x00
VALIDITY = dt.timedelta(days=3650)
CERT_INFO_COMPRESSED = 0x01  #: CertInfo bit 0: the certificate is compressed (gzip)
MAX_CERT_LEN = 64 * 1024  #: a decompressed certificate larger than this is refused (a gzip bomb)


def parse_name(text: str) -> x509.Name:
    """An RFC 4514 string ("CN=x,O=y"); a bare word becomes the common name."""
    if "=" not in text:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    return x509.Name.from_rfc4514_string(text)


def certificate_der(content: bytes | None) -> bytes | None:
    """The DER certificate of a certificate object's content (70 cert, 71 CertInfo), or None.

    A compressed one (CertInfo 01) is gunzipped, at most :data:`MAX_CERT_LEN`
    bytes; content that is not a certificate object, or does not decompress,
    is None: the caller answers a status word, the card never breaks on it.
    """
    if content is None:
        return None
    try:
        items = {item.tag: item.value for item in parse_tlvs(content)}
    except (CardError, ValueError):
        return None
    der, info = items.get(PIVTag.CERTIFICATE), items.get(PIVTag.CERT_INFO, b"\x00")
    if der is None or not info:
        return None
    if not info[0] & CERT_INFO_COMPRESSED:
        return der
    try:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing (RFC 1952)
        plain = inflater.decompress(der, MAX_CERT_LEN + 1)
    except zlib.error:
        return None
    return plain if len(plain) <= MAX_CERT_LEN and inflater.eof else None


def _hash_for(key: SigningKey) -> hashes.SHA256 | hashes.SHA384 | None:
    """The certificate's signature hash; None for Ed25519 (RFC 8410 §6: PureEdDSA)."""
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _serial() -> int:
    return int.from_bytes(os.urandom(16), "big") >> 1 or 1


def self_signed_certificate(key: SigningKey, subject: str, *, ca: bool = False) -> bytes:
    """DER of a self-signed certificate for ``key`` (profile provisioning, attestation root)."""
    name = parse_name(subject)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    return builder.sign(key, _hash_for(key)).public_bytes(serialization.Encoding.DER)


def attestation_certificate(
    *,
    signer: SigningKey,
    signer_cert: bytes,
    subject_key: PublicKey,
    slot: int,
    pin_policy: PinPolicy,
    touch_policy: TouchPolicy,
    serial: int,
    version: tuple[int, int, int],
) -> bytes:
    """DER of the certificate attesting that ``subject_key`` was generated in ``slot``."""
    issuer = x509.load_der_x509_certificate(signer_cert)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"vcard PIV Attestation {slot:02x}")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(subject_key)
        .serial_number(_serial())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(issuer.not_valid_after_utc)
        .add_extension(x509.UnrecognizedExtension(OID_FIRMWARE, bytes(version)), critical=False)
        .add_extension(x509.UnrecognizedExtension(OID_SERIAL, _der_integer(serial)), critical=False)
        .add_extension(x509.UnrecognizedExtension(OID_POLICY, bytes((pin_policy, touch_policy))), critical=False)
        .add_extension(x509.UnrecognizedExtension(OID_FORM_FACTOR, bytes((FORM_FACTOR_UNKNOWN,))), critical=False)
    )
    return builder.sign(signer, _hash_for(signer)).public_bytes(serialization.Encoding.DER)


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + bytes((len(body),)) + body
