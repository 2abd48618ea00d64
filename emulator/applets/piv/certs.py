"""X.509 certificates the card itself makes: self-signed slot certificates and attestations.

Attestation (YubiKey extension, EXTENSIONS.md): the card signs, with the key
in slot F9, a certificate for the public key of a key it generated. The
extensions carry the firmware version, serial number and key policies
under the OIDs PIV tools read (Yubico arc 1.3.6.1.4.1.41482.3).
"""

from __future__ import annotations

import datetime as dt
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .consts import PinPolicy, TouchPolicy
from .keys import PrivateKey, PublicKey

__all__ = ["attestation_certificate", "parse_name", "self_signed_certificate"]

_YUBICO_ARC = "1.3.6.1.4.1.41482.3"
OID_FIRMWARE = x509.ObjectIdentifier(f"{_YUBICO_ARC}.3")  #: 3 raw bytes: major, minor, patch
OID_SERIAL = x509.ObjectIdentifier(f"{_YUBICO_ARC}.7")  #: DER INTEGER
OID_POLICY = x509.ObjectIdentifier(f"{_YUBICO_ARC}.8")  #: 2 raw bytes: PIN policy, touch policy
OID_FORM_FACTOR = x509.ObjectIdentifier(f"{_YUBICO_ARC}.9")  #: 1 raw byte
FORM_FACTOR_UNKNOWN = 0x00
VALIDITY = dt.timedelta(days=3650)


def parse_name(text: str) -> x509.Name:
    """An RFC 4514 string ("CN=x,O=y"); a bare word becomes the common name."""
    if "=" not in text:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    return x509.Name.from_rfc4514_string(text)


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _serial() -> int:
    return int.from_bytes(os.urandom(16), "big") >> 1 or 1


def self_signed_certificate(key: PrivateKey, subject: str, *, ca: bool = False) -> bytes:
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
    signer: PrivateKey,
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
