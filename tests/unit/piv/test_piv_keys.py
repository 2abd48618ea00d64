"""GENERATE, GENERAL AUTHENTICATE with private keys, IMPORT, GET METADATA and ATTEST."""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from piv_host import ALG_P256, ALG_P384, ALG_RSA1024, ALG_RSA2048, OK, Host, public_der, tlv

from emulator.iso7816 import parse_tlvs

SHA256 = hashes.SHA256()


@pytest.fixture(scope="module")
def rsa_host() -> tuple[Host, rsa.RSAPublicKey]:
    host = Host.fresh()
    host.authenticate()
    public = host.generate(0x9D, ALG_RSA2048)
    assert isinstance(public, rsa.RSAPublicKey)
    return host, public


@pytest.fixture
def host() -> Host:
    host = Host.fresh()
    host.authenticate()
    return host


def pkcs1_sign_block(message: bytes, size: int) -> bytes:
    """EMSA-PKCS1-v1_5 encoding of SHA-256(message) (RFC 8017 §9.2), done by the host."""
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + _digest(message)
    return b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info


def _digest(message: bytes) -> bytes:
    h = hashes.Hash(SHA256)
    h.update(message)
    return h.finalize()


def test_rsa_2048_signature_verifies(rsa_host: tuple[Host, rsa.RSAPublicKey]) -> None:
    host, public = rsa_host
    assert host.verify() == OK
    message = b"vcard PIV signature test"
    signature = host.private_op(0x9D, ALG_RSA2048, pkcs1_sign_block(message, 256))
    public.verify(signature, message, padding.PKCS1v15(), SHA256)


def test_rsa_2048_decryption(rsa_host: tuple[Host, rsa.RSAPublicKey]) -> None:
    host, public = rsa_host
    assert host.verify() == OK
    secret = os.urandom(32)
    ciphertext = public.encrypt(secret, padding.PKCS1v15())
    block = host.private_op(0x9D, ALG_RSA2048, ciphertext)
    assert block[:2] == b"\x00\x02" and block.endswith(b"\x00" + secret)


def test_rsa_input_must_be_modulus_sized(rsa_host: tuple[Host, rsa.RSAPublicKey]) -> None:
    host, _ = rsa_host
    assert host.verify() == OK
    assert host.sw(0x87, ALG_RSA2048, 0x9D, tlv(0x7C, tlv(0x82) + tlv(0x81, bytes(255)))) == 0x6A80
    assert host.sw(0x87, ALG_RSA2048, 0x9D, tlv(0x7C, tlv(0x82) + tlv(0x81, b"\xff" * 256))) == 0x6A80


@pytest.mark.parametrize(
    ("alg", "curve", "hash_alg"),
    [(ALG_P256, ec.SECP256R1(), hashes.SHA256()), (ALG_P384, ec.SECP384R1(), hashes.SHA384())],
)
def test_ecdsa_signature_on_digest(
    host: Host, alg: int, curve: ec.EllipticCurve, hash_alg: hashes.HashAlgorithm
) -> None:
    public = host.generate(0x9A, alg)
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == curve.name
    assert host.verify() == OK
    h = hashes.Hash(hash_alg)
    h.update(b"message")
    digest = h.finalize()
    signature = host.private_op(0x9A, alg, digest)
    public.verify(signature, digest, ec.ECDSA(Prehashed(hash_alg)))


def test_ecdh_on_9d_and_retired_slot(host: Host) -> None:
    for slot in (0x9D, 0x82, 0x95):
        public = host.generate(slot, ALG_P256)
        assert host.verify() == OK
        peer = ec.generate_private_key(ec.SECP256R1())
        point = peer.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        secret = host.private_op(slot, ALG_P256, point, tag=0x85)
        assert secret == peer.exchange(ec.ECDH(), public)


def test_ecdh_with_point_off_the_curve_is_6a80(host: Host) -> None:
    host.generate(0x9D, ALG_P256)
    assert host.verify() == OK
    bad = b"\x04" + bytes(64)
    assert host.sw(0x87, ALG_P256, 0x9D, tlv(0x7C, tlv(0x82) + tlv(0x85, bad))) == 0x6A80


def test_9a_needs_pin_once_per_session(host: Host) -> None:
    public = host.generate(0x9A, ALG_P256)
    digest = _digest(b"m")
    assert host.sw(0x87, ALG_P256, 0x9A, tlv(0x7C, tlv(0x82) + tlv(0x81, digest))) == 0x6982
    assert host.verify() == OK
    for _ in range(2):
        signature = host.private_op(0x9A, ALG_P256, digest)
        public.verify(signature, digest, ec.ECDSA(Prehashed(SHA256)))


def test_9c_needs_pin_before_each_signature(host: Host) -> None:
    host.generate(0x9C, ALG_P256)
    digest = _digest(b"m")
    assert host.verify() == OK
    host.private_op(0x9C, ALG_P256, digest)
    assert host.sw(0x87, ALG_P256, 0x9C, tlv(0x7C, tlv(0x82) + tlv(0x81, digest))) == 0x6982
    assert host.verify() == OK
    host.private_op(0x9C, ALG_P256, digest)


def test_9c_pin_always_ends_with_any_other_command(host: Host) -> None:
    host.generate(0x9C, ALG_P256)
    assert host.verify() == OK
    assert host.sw(0x20, 0x00, 0x80) == OK  # a VERIFY status query keeps it
    host.get_object(0x7E)  # yubico-piv-tool's way to drop it
    assert host.sw(0x87, ALG_P256, 0x9C, tlv(0x7C, tlv(0x82) + tlv(0x81, _digest(b"m")))) == 0x6982
    assert host.sw(0x20, 0x00, 0x80) == OK  # the session PIN itself stays verified


def test_9e_card_authentication_needs_no_pin(host: Host) -> None:
    public = host.generate(0x9E, ALG_P256)
    host.card.reset()
    host.select()
    digest = _digest(b"challenge")
    public.verify(host.private_op(0x9E, ALG_P256, digest), digest, ec.ECDSA(Prehashed(SHA256)))


def test_pin_policy_never_on_9a(host: Host) -> None:
    host.generate(0x9A, ALG_P256, pin_policy=0x01, touch_policy=0x03)
    assert host.metadata(0x9A)[0x02] == b"\x01\x03"
    host.private_op(0x9A, ALG_P256, _digest(b"m"))


def test_general_authenticate_errors(host: Host) -> None:
    assert host.sw(0x87, ALG_P256, 0x9C, tlv(0x7C, tlv(0x82) + tlv(0x81, bytes(32)))) == 0x6A88  # empty slot
    host.generate(0x9C, ALG_P256)
    assert host.verify() == OK
    assert host.sw(0x87, ALG_RSA2048, 0x9C, tlv(0x7C, tlv(0x82) + tlv(0x81, bytes(32)))) == 0x6A86
    assert host.sw(0x87, ALG_P256, 0x9F, tlv(0x7C, tlv(0x82) + tlv(0x81, bytes(32)))) == 0x6A86


def test_generate_needs_management_key_and_valid_algorithm() -> None:
    host = Host.fresh()
    assert host.sw(0x47, 0x00, 0x9A, tlv(0xAC, tlv(0x80, b"\x11"))) == 0x6982
    host.authenticate()
    assert host.sw(0x47, 0x00, 0x9A, tlv(0xAC, tlv(0x80, b"\x03"))) == 0x6A80
    assert host.sw(0x47, 0x00, 0x9B, tlv(0xAC, tlv(0x80, b"\x11"))) == 0x6A86
    assert host.sw(0x47, 0x00, 0x9A, tlv(0xAC, tlv(0x80, b"\x11") + tlv(0xAA, b"\x09"))) == 0x6A80


def test_generated_key_metadata(host: Host) -> None:
    public = host.generate(0x9D, ALG_P256)
    meta = host.metadata(0x9D)
    assert meta[0x01] == b"\x11" and meta[0x02] == b"\x02\x01" and meta[0x03] == b"\x01"
    point = parse_tlvs(meta[0x04])[0]
    assert point.tag == 0x86
    assert point.value == public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert host.sw(0xF7, 0x00, 0x83) == 0x6A88  # empty slot


def test_default_pin_and_puk_metadata(host: Host) -> None:
    assert host.metadata(0x80) == {0x01: b"\xff", 0x05: b"\x01", 0x06: b"\x03\x03"}
    assert host.metadata(0x81) == {0x01: b"\xff", 0x05: b"\x01", 0x06: b"\x03\x03"}


def test_import_rsa_key(host: Host) -> None:
    key = rsa.generate_private_key(65537, 1024)
    n = key.private_numbers()
    data = b"".join(
        tlv(tag, value.to_bytes(64, "big"))
        for tag, value in ((1, n.p), (2, n.q), (3, n.dmp1), (4, n.dmq1), (5, n.iqmp))
    )
    assert host.sw(0xFE, ALG_RSA1024, 0x9A, data + tlv(0xAA, b"\x01")) == OK
    meta = host.metadata(0x9A)
    assert meta[0x01] == b"\x06" and meta[0x02] == b"\x01\x01" and meta[0x03] == b"\x02"
    message = b"imported"
    signature = host.private_op(0x9A, ALG_RSA1024, pkcs1_sign_block(message, 128))
    key.public_key().verify(signature, message, padding.PKCS1v15(), SHA256)


def test_import_ec_key(host: Host) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    scalar = key.private_numbers().private_value.to_bytes(48, "big")
    assert host.sw(0xFE, ALG_P384, 0x85, tlv(0x06, scalar)) == OK
    meta = host.metadata(0x85)
    assert parse_tlvs(meta[0x04])[0].value == key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def test_import_refuses_mismatched_or_missing_components(host: Host) -> None:
    scalar = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
    assert host.sw(0xFE, ALG_RSA2048, 0x9A, tlv(0x06, scalar)) == 0x6A80
    assert host.sw(0xFE, 0x03, 0x9A, tlv(0x06, scalar)) == 0x6A86
    fresh = Host.fresh()
    assert fresh.sw(0xFE, ALG_P256, 0x9A, tlv(0x06, scalar)) == 0x6982


def test_attestation_chain_verifies(host: Host) -> None:
    public = host.generate(0x9C, ALG_P256, pin_policy=0x03, touch_policy=0x02)
    attestation = x509.load_der_x509_certificate(host.ok(0xF9, 0x9C, 0x00))
    out, sw = host.get_object(0x5FFF01)
    assert sw == OK
    fields = {t.tag: t.value for t in parse_tlvs(out)[0].children()}
    root = x509.load_der_x509_certificate(fields[0x70])
    assert public_der(attestation.public_key()) == public_der(public)
    assert attestation.issuer == root.subject
    attestation.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    serial = int.from_bytes(host.ok(0xF8, 0x00, 0x00), "big")
    ext = {e.oid.dotted_string: e.value for e in attestation.extensions}
    assert ext["1.3.6.1.4.1.41482.3.3"].value == bytes(host.ok(0xFD, 0x00, 0x00))
    assert ext["1.3.6.1.4.1.41482.3.8"].value == b"\x03\x02"
    der_serial = ext["1.3.6.1.4.1.41482.3.7"].value
    assert der_serial[0] == 0x02 and int.from_bytes(der_serial[2:], "big") == serial


def test_attest_refuses_imported_and_missing_keys(host: Host) -> None:
    assert host.sw(0xF9, 0x9C, 0x00) == 0x6A88
    scalar = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
    assert host.sw(0xFE, ALG_P256, 0x9C, tlv(0x06, scalar)) == OK
    assert host.sw(0xF9, 0x9C, 0x00) == 0x6985


def test_profile_key_in_9a_matches_its_certificate() -> None:
    host = Host.fresh()
    out, _ = host.get_object(0x5FC105)
    cert = x509.load_der_x509_certificate({t.tag: t.value for t in parse_tlvs(out)[0].children()}[0x70])
    meta = host.metadata(0x9A)
    assert meta[0x03] == b"\x01" and meta[0x02] == b"\x02\x01"
    point = parse_tlvs(meta[0x04])[0].value
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert point == public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert host.verify() == OK
    digest = _digest(b"login")
    public.verify(host.private_op(0x9A, ALG_P256, digest), digest, ec.ECDSA(Prehashed(SHA256)))
