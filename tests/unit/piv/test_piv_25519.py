"""Ed25519 (E0) and X25519 (E1) keys of the yubikey-5.7 persona, and compressed certificates.

Wire formats as yubikit sends them: GENERATE answers 7F49 { 86 <32-byte raw key> }; IMPORT
takes 07 (Ed25519) or 08 (X25519) with the raw private key; Ed25519 signs the whole message in
81; X25519 takes the peer's raw key in 85. Certificates may be stored gzip-compressed
(CertInfo 71 = 01), as ``ykman piv certificates import --compress`` writes them.
"""

from __future__ import annotations

import gzip

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from piv_host import ALG_AES192, ALG_P256, DEFAULT_MGMT, OK, Host, tlv

from emulator.applets.piv.certs import MAX_CERT_LEN, certificate_der
from emulator.factory import build_card
from emulator.iso7816 import parse_tlvs
from emulator.profile import load_profile
from emulator.store import MemoryStore

ED25519, X25519 = 0xE0, 0xE1
AUTH, SIGN, KEY_MGMT = 0x9A, 0x9C, 0x9D
ATTESTATION_CERT = 0x5FFF01
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


@pytest.fixture
def host() -> Host:
    card = build_card(load_profile("yubikey-5.7"), MemoryStore())
    card.power_on()
    h = Host(card)
    h.select()
    h.authenticate(DEFAULT_MGMT, ALG_AES192)
    return h


def generate_raw(host: Host, slot: int, alg: int) -> bytes:
    resp = host.ok(0x47, 0x00, slot, tlv(0xAC, tlv(0x80, bytes((alg,)))))
    (template,) = parse_tlvs(resp)
    assert template.tag == 0x7F49
    (point,) = parse_tlvs(template.value)
    assert point.tag == 0x86 and len(point.value) == 32
    return point.value


def test_ed25519_generate_sign_the_whole_message_metadata(host: Host) -> None:
    raw = generate_raw(host, SIGN, ED25519)
    public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    message = b"vcard signs this whole message with Ed25519 " * 8  # > 255 bytes: command chaining
    assert host.verify() == OK  # 9C: PIN before every use
    signature = host.private_op(SIGN, ED25519, message)
    assert len(signature) == 64
    public.verify(signature, message)
    meta = host.metadata(SIGN)
    assert meta[0x01] == bytes((ED25519,)) and meta[0x03] == b"\x01"
    assert meta[0x04] == tlv(0x86, raw)


def test_x25519_generate_and_agree(host: Host) -> None:
    raw = generate_raw(host, KEY_MGMT, X25519)
    peer = x25519.X25519PrivateKey.generate()
    assert host.verify() == OK
    secret = host.private_op(KEY_MGMT, X25519, peer.public_key().public_bytes(*RAW), tag=0x85)
    assert secret == peer.exchange(x25519.X25519PublicKey.from_public_bytes(raw))
    assert host.metadata(KEY_MGMT)[0x01] == bytes((X25519,))


def test_each_25519_key_does_only_its_own_operation(host: Host) -> None:
    generate_raw(host, SIGN, ED25519)
    generate_raw(host, KEY_MGMT, X25519)
    host.verify()
    peer = x25519.X25519PrivateKey.generate().public_key().public_bytes(*RAW)
    assert host.sw(0x87, ED25519, SIGN, tlv(0x7C, tlv(0x82) + tlv(0x85, peer))) == 0x6A80
    assert host.sw(0x87, X25519, KEY_MGMT, tlv(0x7C, tlv(0x82) + tlv(0x81, b"sign me"))) == 0x6A80
    # a small-order peer point (all zero) gives an all-zero secret: refused (RFC 7748 §6.1)
    assert host.sw(0x87, X25519, KEY_MGMT, tlv(0x7C, tlv(0x82) + tlv(0x85, bytes(32)))) == 0x6A80
    assert host.sw(0x87, X25519, KEY_MGMT, tlv(0x7C, tlv(0x82) + tlv(0x85, bytes(31)))) == 0x6A80


def test_import_ed25519_and_x25519_keys(host: Host) -> None:
    signer = ed25519.Ed25519PrivateKey.generate()
    agreer = x25519.X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    host.ok(0xFE, ED25519, AUTH, tlv(0x07, signer.private_bytes(*raw)) + tlv(0xAA, b"\x01"))
    host.ok(0xFE, X25519, KEY_MGMT, tlv(0x08, agreer.private_bytes(*raw)))
    meta = host.metadata(AUTH)
    assert meta[0x03] == b"\x02" and meta[0x02][0] == 0x01  # imported, PIN never
    assert meta[0x04] == tlv(0x86, signer.public_key().public_bytes(*RAW))
    signer.public_key().verify(host.private_op(AUTH, ED25519, b"imported"), b"imported")
    assert host.sw(0xF9, AUTH, 0x00) == 0x6985  # imported keys are not attested
    assert host.sw(0xFE, ED25519, SIGN, tlv(0x07, bytes(31))) == 0x6A80
    assert host.sw(0xFE, X25519, SIGN, tlv(0x07, bytes(32))) == 0x6A80  # component 08 missing
    assert host.sw(0xFE, X25519, 0xF9, tlv(0x08, bytes(32))) == 0x6A86  # the attestation key must sign


def test_attestation_of_25519_keys_carries_the_raw_public_key(host: Host) -> None:
    for slot, alg, kind in ((SIGN, ED25519, ed25519.Ed25519PublicKey), (KEY_MGMT, X25519, x25519.X25519PublicKey)):
        raw = generate_raw(host, slot, alg)
        cert = x509.load_der_x509_certificate(host.ok(0xF9, slot, 0x00))
        public = cert.public_key()
        assert isinstance(public, kind) and public.public_bytes(*RAW) == raw
        content, _ = host.get_object(ATTESTATION_CERT)
        f9 = x509.load_der_x509_certificate(certificate_der(parse_tlvs(content)[0].value) or b"")
        cert.verify_directly_issued_by(f9)
        assert cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.3")).value.value == (
            bytes((5, 7, 2))
        )


def test_gp_standard_offers_no_25519_keys() -> None:
    host = Host.fresh()
    host.authenticate()
    assert host.sw(0x47, 0x00, SIGN, tlv(0xAC, tlv(0x80, bytes((ED25519,))))) == 0x6A80
    assert host.sw(0xFE, X25519, SIGN, tlv(0x08, bytes(range(32)))) == 0x6A86


def test_piv_nist_generate_takes_no_policy_tags_and_only_sp800_78_algorithms() -> None:
    card = build_card(load_profile("piv-nist"), MemoryStore())
    card.power_on()
    host = Host(card)
    host.select()
    host.authenticate()
    assert host.sw(0x47, 0x00, 0x9C, tlv(0xAC, tlv(0x80, b"\x11") + tlv(0xAA, b"\x01"))) == 0x6A80
    for alg in (0x05, 0x16, 0xE0, 0xE1):  # RSA 3072/4096 (YubiKey numbers), Ed25519, X25519
        assert host.sw(0x47, 0x00, 0x9C, tlv(0xAC, tlv(0x80, bytes((alg,))))) == 0x6A80
    assert host.sw(0x47, 0x00, 0x9C, tlv(0xAC, tlv(0x80, b"\x11"))) == 0x9000


# -- compressed certificates ----------------------------------------------------------------------
def _cert_object(der: bytes, *, compressed: bool) -> bytes:
    value = gzip.compress(der) if compressed else der
    return tlv(0x70, value) + tlv(0x71, b"\x01" if compressed else b"\x00") + tlv(0xFE)


def test_a_compressed_certificate_is_stored_and_read_back_as_written(host: Host) -> None:
    content, _ = host.get_object(ATTESTATION_CERT)
    der = certificate_der(parse_tlvs(content)[0].value)
    assert der is not None
    stored = _cert_object(der, compressed=True)
    assert host.put_object(0x5FC105, stored) == OK
    assert host.get_object(0x5FC105) == (tlv(0x53, stored), OK)


def test_attestation_works_with_a_compressed_f9_certificate_and_survives_garbage(host: Host) -> None:
    content, _ = host.get_object(ATTESTATION_CERT)
    der = certificate_der(parse_tlvs(content)[0].value) or b""
    assert host.put_object(ATTESTATION_CERT, _cert_object(der, compressed=True)) == OK
    generate_raw(host, AUTH, ED25519)
    cert = x509.load_der_x509_certificate(host.ok(0xF9, AUTH, 0x00))
    cert.verify_directly_issued_by(x509.load_der_x509_certificate(der))
    # not gzip, gzip of no certificate, no 70 at all: a status word, and the card keeps working
    for bad in (
        tlv(0x70, b"not gzip") + tlv(0x71, b"\x01"),
        _cert_object(b"not a certificate", compressed=True),
        tlv(0x71, b"\x00"),
    ):
        assert host.put_object(ATTESTATION_CERT, bad) == OK
        assert host.sw(0xF9, AUTH, 0x00) == 0x6A88
    assert host.ok(0xFD, 0x00, 0x00) == bytes((5, 7, 2))


def test_a_gzip_bomb_is_not_inflated() -> None:
    bomb = gzip.compress(bytes(MAX_CERT_LEN + 1))
    assert certificate_der(tlv(0x70, bomb) + tlv(0x71, b"\x01")) is None
    fits = gzip.compress(b"\x30" * 100)
    assert certificate_der(tlv(0x70, fits) + tlv(0x71, b"\x01")) == b"\x30" * 100
    assert certificate_der(tlv(0x70, b"plain") + tlv(0x71, b"\x00")) == b"plain"
    assert certificate_der(b"\x70\x05ab") is None  # truncated TLV


def test_p256_keys_still_sign_on_the_yubikey_persona(host: Host) -> None:
    resp = host.ok(0x47, 0x00, AUTH, tlv(0xAC, tlv(0x80, bytes((ALG_P256,)))))
    point = parse_tlvs(parse_tlvs(resp)[0].value)[0].value
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    host.verify()
    digest = bytes(range(32))
    public.verify(host.private_op(AUTH, ALG_P256, digest), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
