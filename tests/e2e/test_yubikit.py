"""yubikit (yubikey-manager's library) against the virtual card, as against a YubiKey.

A real third-party client: yubikit's own ``PivSession`` and
``SecurityDomainSession`` build every APDU, run SCP03 on the host side and parse
every answer, over pyscard through the real pcscd + vpcd + daemon of the
``vcard`` fixture. The reader is not named "Yubico YubiKey ...", so the
connection is made with ykman's lower-level ``ScardSmartCardConnection`` on a
pyscard connection to ``vcard.reader``. Results are checked with
``cryptography`` against the public keys and certificates yubikit returns.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from piv_e2e import MGMT_KEY, PIN, PUK
from yubikit.core import TRANSPORT, BadResponseError, Tlv, Version
from yubikit.core.smartcard import ApduError, SmartCardConnection
from yubikit.core.smartcard.scp import KeyRef, Scp03KeyParams, ScpKid, StaticKeys
from yubikit.piv import (
    KEY_TYPE,
    MANAGEMENT_KEY_TYPE,
    PIN_POLICY,
    SLOT,
    TOUCH_POLICY,
    InvalidPinError,
    PivSession,
)
from yubikit.securitydomain import SecurityDomainSession
from yubikit_e2e import yubikit_connection

from emulator.iso7816.sw import SW
from emulator.pytest_plugin import LiveCard

pytestmark = pytest.mark.e2e

FACTORY_SCP03 = Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0xFF), keys=StaticKeys.default())  # 40..4F, TEST ONLY
MESSAGE = b"vcard e2e: signed by yubikit through pcscd"
GP_OID = bytes.fromhex("2A864886FC6B")  # 1.2.840.114283, GlobalPlatform
AES = 0x88  # key type in PUT KEY and the key information data (GPCS 2.3.1 §11.1.8)
ECC_PRIVATE = 0xB1  # key type of an SCP11 key pair in the key information data
SCP11B_KEY = KeyRef(ScpKid.SCP11b, 0x01)  # the default profile's test SCP11b key pair


class Recording(SmartCardConnection):
    """Passes APDUs through and keeps (command, (data, SW)) as pcscd carried them."""

    def __init__(self, inner: SmartCardConnection) -> None:
        self.inner = inner
        self.exchanges: list[tuple[bytes, tuple[bytes, int]]] = []

    @property
    def transport(self) -> TRANSPORT:
        return self.inner.transport

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        response = self.inner.send_and_receive(apdu)
        self.exchanges.append((bytes(apdu), response))
        return response


@contextmanager
def piv_session(card: LiveCard, **kwargs: object) -> Iterator[PivSession]:
    with yubikit_connection(card) as conn:
        yield PivSession(conn, **kwargs)  # type: ignore[arg-type]


def random_scp03_keys() -> StaticKeys:
    return StaticKeys(os.urandom(16), os.urandom(16), os.urandom(16))


def self_signed(public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, subject: str) -> x509.Certificate:
    """A certificate for a card key, signed by a throwaway software key (TEST ONLY)."""
    issuer = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vcard yubikit e2e issuer (TEST ONLY)")]))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(issuer, hashes.SHA256())
    )


def key_information(sd: SecurityDomainSession) -> dict[KeyRef, dict[int, int]]:
    """GET DATA E0 parsed as GPCS 2.3.1 §11.3.3.1 shapes it: C0 entries inside the E0 template."""
    info: dict[KeyRef, dict[int, int]] = {}
    for entry in Tlv.parse_list(Tlv.unpack(0xE0, sd.get_data(0xE0))):
        data = Tlv.unpack(0xC0, entry)
        info[KeyRef(data[:2])] = dict(zip(data[2::2], data[3::2], strict=True))
    return info


def extension(cert: x509.Certificate, oid: str) -> bytes:
    value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


def encode_der_integer(n: int) -> bytes:
    content = n.to_bytes(n.bit_length() // 8 + 1, "big")  # room for a sign bit
    return bytes((0x02, len(content))) + content


def public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- PIV ------------------------------------------------------------------------------------------
def test_piv_identifies_as_a_yubikey_5_4_3_with_a_serial(vcard: LiveCard) -> None:
    with piv_session(vcard) as piv:
        assert piv.version == Version(5, 4, 3)
        serial = piv.get_serial()
        assert 0 < serial < 2**31
        assert piv.management_key_type is MANAGEMENT_KEY_TYPE.TDES
    with piv_session(vcard) as piv:
        assert piv.get_serial() == serial  # kept in the card's state, not made per session


def test_piv_pin_verify_attempts_and_metadata(vcard: LiveCard) -> None:
    with piv_session(vcard) as piv:
        meta = piv.get_pin_metadata()
        assert (meta.default_value, meta.total_attempts, meta.attempts_remaining) == (True, 3, 3)
        with pytest.raises(InvalidPinError) as err:
            piv.verify_pin("000000")
        assert err.value.attempts_remaining == 2
        assert piv.get_pin_attempts() == 2
        piv.verify_pin(PIN)
        assert piv.get_pin_attempts() == 3
        puk = piv.get_puk_metadata()
        assert (puk.default_value, puk.attempts_remaining) == (True, 3)


def test_piv_ec_generate_sign_ecdh_certificate_and_slot_metadata(vcard: LiveCard) -> None:
    with piv_session(vcard) as piv:
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ECCP256, pin_policy=PIN_POLICY.ONCE)
        assert isinstance(public, ec.EllipticCurvePublicKey)

        meta = piv.get_slot_metadata(SLOT.SIGNATURE)
        assert meta.key_type is KEY_TYPE.ECCP256
        assert meta.generated
        assert meta.pin_policy is PIN_POLICY.ONCE
        assert meta.touch_policy is TOUCH_POLICY.NEVER
        assert public_bytes(meta.public_key) == public_bytes(public)

        piv.verify_pin(PIN)
        signature = piv.sign(SLOT.SIGNATURE, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
        public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))

        cert = self_signed(public, "vcard yubikit 9c")
        piv.put_certificate(SLOT.SIGNATURE, cert)
        assert piv.get_certificate(SLOT.SIGNATURE) == cert

        # ECDH in 9D (key management), against a software peer
        agreement = piv.generate_key(SLOT.KEY_MANAGEMENT, KEY_TYPE.ECCP256)
        assert isinstance(agreement, ec.EllipticCurvePublicKey)
        peer = ec.generate_private_key(ec.SECP256R1())
        secret = piv.calculate_secret(SLOT.KEY_MANAGEMENT, peer.public_key())
        assert secret == peer.exchange(ec.ECDH(), agreement)


def test_piv_rsa2048_generate_sign_and_decrypt(vcard: LiveCard) -> None:
    with piv_session(vcard) as piv:
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.KEY_MANAGEMENT, KEY_TYPE.RSA2048)
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == 2048
        piv.verify_pin(PIN)

        signature = piv.sign(SLOT.KEY_MANAGEMENT, KEY_TYPE.RSA2048, MESSAGE, hashes.SHA256(), padding.PKCS1v15())
        public.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = piv.sign(SLOT.KEY_MANAGEMENT, KEY_TYPE.RSA2048, MESSAGE, hashes.SHA256(), pss)
        public.verify(signature, MESSAGE, pss, hashes.SHA256())

        secret = os.urandom(32)
        assert (
            piv.decrypt(SLOT.KEY_MANAGEMENT, public.encrypt(secret, padding.PKCS1v15()), padding.PKCS1v15()) == secret
        )


def test_piv_attestation_is_signed_by_the_f9_key(vcard: LiveCard) -> None:
    with piv_session(vcard) as piv:
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.AUTHENTICATION, KEY_TYPE.ECCP256)
        attestation = piv.attest_key(SLOT.AUTHENTICATION)
        f9 = piv.get_certificate(SLOT.ATTESTATION)
        serial = piv.get_serial()

    assert public_bytes(attestation.public_key()) == public_bytes(public)
    assert attestation.issuer == f9.subject
    attestation.verify_directly_issued_by(f9)
    # the extensions ykman reads (Yubico's arc): firmware version, and the serial as a DER INTEGER
    assert extension(attestation, "1.3.6.1.4.1.41482.3.3") == bytes((5, 4, 3))
    assert extension(attestation, "1.3.6.1.4.1.41482.3.7") == encode_der_integer(serial)
    assert extension(attestation, "1.3.6.1.4.1.41482.3.8") == bytes((PIN_POLICY.ONCE, TOUCH_POLICY.NEVER))  # 9A default


def test_piv_change_pin_and_aes192_management_key(vcard: LiveCard) -> None:
    new_key = os.urandom(24)
    with piv_session(vcard) as piv:
        piv.change_pin(PIN, "654321")
        with pytest.raises(InvalidPinError):
            piv.verify_pin(PIN)
        piv.verify_pin("654321")
        assert not piv.get_pin_metadata().default_value

        piv.authenticate(MGMT_KEY)
        piv.set_management_key(MANAGEMENT_KEY_TYPE.AES192, new_key)
        assert piv.get_management_key_metadata().key_type is MANAGEMENT_KEY_TYPE.AES192

    with piv_session(vcard) as piv:  # a new session reads the key type from the metadata
        assert piv.management_key_type is MANAGEMENT_KEY_TYPE.AES192
        meta = piv.get_management_key_metadata()
        assert not meta.default_value
        piv.authenticate(new_key)
        with pytest.raises(ApduError) as err:
            piv.authenticate(bytes(24))
        assert err.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
        piv.authenticate(new_key)
        piv.verify_pin("654321")
        piv.change_puk(PUK, "87654321")
        assert not piv.get_puk_metadata().default_value


# -- PIV over SCP03 -------------------------------------------------------------------------------
def test_piv_over_scp03_verifies_pin_and_signs_inside_the_channel(vcard: LiveCard) -> None:
    with piv_session(vcard) as piv:  # a key to sign with, made in the clear
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ECCP256)
        assert isinstance(public, ec.EllipticCurvePublicKey)

    with yubikit_connection(vcard) as conn:
        wire = Recording(conn)
        piv = PivSession(wire, scp_key_params=FACTORY_SCP03)
        assert piv.version == Version(5, 4, 3)
        piv.verify_pin(PIN)
        signature = piv.sign(SLOT.SIGNATURE, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
        public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
        with pytest.raises(InvalidPinError) as err:  # an error SW comes back through the channel too
            piv.verify_pin("000000")
        assert err.value.attempts_remaining == 2
        piv.authenticate(MGMT_KEY)

    # what pcscd carried: SELECT, INITIALIZE UPDATE, then only APDUs with the secure-messaging bit (CLA 84 / 04)
    (select, _), (initialize_update, _), *wrapped = wire.exchanges
    assert select[:2] == bytes.fromhex("00A4") and initialize_update[:4] == bytes.fromhex("8050FF00")
    assert wrapped and all(apdu[0] & 0x04 for apdu, _ in wrapped)
    assert wrapped[0][0][1:3] == bytes.fromhex("8233")  # EXTERNAL AUTHENTICATE: C-DEC, C-MAC, R-ENC, R-MAC
    verifies = [apdu for apdu, _ in wrapped if apdu[1] == 0x20]
    assert len(verifies) == 2
    pin_block = PIN.encode().ljust(8, b"\xff")
    assert all(pin_block not in apdu for apdu, _ in wrapped)  # C-DECRYPTION: no PIN on the wire
    assert all(signature not in response for _, (response, _) in wrapped)  # R-ENCRYPTION


def test_piv_over_scp03_refuses_wrong_keys_and_an_unknown_key_version(vcard: LiveCard) -> None:
    wrong_keys = Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0xFF), keys=random_scp03_keys())
    with yubikit_connection(vcard) as conn, pytest.raises(ValueError, match="Incorrect SCP parameters") as err:
        PivSession(conn, scp_key_params=wrong_keys)
    assert isinstance(err.value.__context__, BadResponseError)  # yubikit's check of the card cryptogram

    unknown_kvn = Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0x30), keys=StaticKeys.default())
    with yubikit_connection(vcard) as conn, pytest.raises(ValueError, match="Incorrect SCP parameters") as err:
        PivSession(conn, scp_key_params=unknown_kvn)
    assert isinstance(err.value.__context__, ApduError)
    assert err.value.__context__.sw == SW.REFERENCED_DATA_NOT_FOUND


# -- Security domain ------------------------------------------------------------------------------
def test_security_domain_data_objects(vcard: LiveCard) -> None:
    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        factory = {KeyRef(kid, 0xFF): {AES: 16} for kid in (1, 2, 3)}
        assert key_information(sd) == {**factory, SCP11B_KEY: {ECC_PRIVATE: 32}}  # + the test SCP11b key pair

        recognition = Tlv.parse_list(Tlv.unpack(0x73, Tlv.unpack(0x66, sd.get_data(0x66))))
        assert recognition[0].tag == 0x06 and recognition[0].value == GP_OID + b"\x01"  # {globalPlatform 1}
        protocols = [Tlv.unpack(0x06, t.value) for t in recognition if t.tag == 0x64]
        assert protocols == [GP_OID + bytes.fromhex(x) for x in ("040370", "041100")]  # SCP03 i=70, SCP11b
        assert len(Tlv.unpack(0x9F7F, sd.get_data(0x9F7F))) == 42  # CPLC (GPCS §H.6)


def test_yubikit_key_information_helper_expects_the_yubikey_shape(vcard: LiveCard) -> None:
    """The card answers GET DATA E0 as GP defines (inside the E0 template); yubikit's
    helper expects a YubiKey's bare C0 entries. The data itself is checked above."""
    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        assert sd.get_data(0xE0)[0] == 0xE0
        with pytest.raises(ValueError):
            sd.get_key_information()


def test_yubikit_card_recognition_helper_expects_the_yubikey_shape(vcard: LiveCard) -> None:
    """GET DATA 66 answers 66 { 73 ... } (GPCS §H.2); yubikit's helper expects a bare 73."""
    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        assert sd.get_data(0x66)[0] == 0x66
        with pytest.raises(ValueError):
            sd.get_card_recognition_data()


def test_security_domain_put_key_rotates_the_factory_keys(vcard: LiveCard) -> None:
    new = random_scp03_keys()
    new_params = Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0x01), keys=new)
    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        sd.authenticate(FACTORY_SCP03)
        sd.put_key(KeyRef(ScpKid.SCP03, 0x01), new)  # yubikit checks the card's key check values
        # the first issuer key set retires the factory set 0xFF, as on real cards
        issuer = {KeyRef(kid, 0x01): {AES: 16} for kid in (1, 2, 3)}
        assert key_information(sd) == {**issuer, SCP11B_KEY: {ECC_PRIVATE: 32}}  # SCP11 keys stay

    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        sd.authenticate(new_params)
        assert set(key_information(sd)) == {*(KeyRef(kid, 0x01) for kid in (1, 2, 3)), SCP11B_KEY}

    # KVN 0xFF is gone (6A88); KVN 01 with the factory key values fails the card cryptogram check
    for old in (FACTORY_SCP03, Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0x01), keys=StaticKeys.default())):
        with yubikit_connection(vcard) as conn, pytest.raises(ValueError, match="Incorrect SCP parameters"):
            SecurityDomainSession(conn).authenticate(old)

    with piv_session(vcard, scp_key_params=new_params) as piv:  # PIV uses the ISD's channel, so the new keys
        piv.verify_pin(PIN)
        assert piv.get_pin_attempts() == 3


def test_security_domain_adds_and_deletes_a_key_set(vcard: LiveCard) -> None:
    first, second = random_scp03_keys(), random_scp03_keys()
    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        sd.authenticate(FACTORY_SCP03)
        sd.put_key(KeyRef(ScpKid.SCP03, 0x01), first)

    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        sd.authenticate(Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0x01), keys=first))
        sd.put_key(KeyRef(ScpKid.SCP03, 0x02), second)
        assert {ref.kvn for ref in key_information(sd)} == {0x01, 0x02}

        sd.delete_key(kvn=0x02)
        assert {ref.kvn for ref in key_information(sd)} == {0x01}
        with pytest.raises(ApduError) as err:  # never delete the last key set: that locks the card out
            sd.delete_key(kvn=0x01)
        assert err.value.sw == SW.CONDITIONS_NOT_SATISFIED
        # yubikit's delete_last=True is a YubiKey extension (P2 01; GPCS 11.2.2.2 defines only 00 and 80)
        with pytest.raises(ApduError) as err:
            sd.delete_key(kvn=0x01, delete_last=True)
        assert err.value.sw == SW.INCORRECT_P1P2
        assert {ref.kvn for ref in key_information(sd)} == {0x01}

    with yubikit_connection(vcard) as conn, pytest.raises(ValueError, match="Incorrect SCP parameters"):
        SecurityDomainSession(conn).authenticate(Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0x02), keys=second))
