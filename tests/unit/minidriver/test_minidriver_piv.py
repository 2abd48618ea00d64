"""PivSession over a whole virtual card in process (no reader): every operation the Cardmod layer uses."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from incard import InProcessConnection

from minidriver.iso7816 import SW, ApduError, BadResponseError, CommandAPDU
from minidriver.pcsc import Connection, PcscCode, PcscError
from minidriver.piv import (
    Algorithm,
    InvalidPinError,
    KeySlot,
    ObjectId,
    PinBlockedError,
    PinPolicy,
    PivSession,
    certificate_object,
)

MGMT = bytes.fromhex("010203040506070801020304050607080102030405060708")
PIN, PUK = b"123456", b"12345678"


@pytest.fixture
def conn() -> InProcessConnection:
    return InProcessConnection()


@pytest.fixture
def piv(conn: InProcessConnection) -> PivSession:
    return PivSession(conn)


def _pkcs1_block(key_bytes: int, message: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(message)
    info = bytes.fromhex("3031300d060960864801650304020105000420") + digest.finalize()
    return b"\x00\x01" + b"\xff" * (key_bytes - len(info) - 3) + b"\x00" + info


def test_in_process_connection_is_a_connection(conn: InProcessConnection) -> None:
    assert isinstance(conn, Connection)


def test_select_and_version(piv: PivSession) -> None:
    assert piv.version == (5, 4, 3)
    assert isinstance(piv.get_serial(), int)


def test_select_of_an_absent_application_raises_apdu_error(piv: PivSession) -> None:
    with pytest.raises(ApduError) as info:
        piv.protocol.send(CommandAPDU(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A0000003089999"), 256))
    assert info.value.sw == SW.FILE_NOT_FOUND


def test_verify_wrong_pin_counts_down_then_blocks_then_unblock(piv: PivSession) -> None:
    assert piv.get_pin_attempts() == 3
    with pytest.raises(InvalidPinError) as info:
        piv.verify_pin(b"000000")
    assert info.value.attempts_remaining == 2 and info.value.sw == 0x63C2
    assert str(info.value) == "VERIFY PIN: wrong value: SW 63C2 (2 tries left)"
    assert piv.get_pin_attempts() == 2
    for left in (1, 0):
        with pytest.raises(InvalidPinError) as info:
            piv.verify_pin(b"000000")
        assert info.value.attempts_remaining == left
    with pytest.raises(PinBlockedError):
        piv.verify_pin(PIN)
    assert piv.get_pin_attempts() == 0
    with pytest.raises(InvalidPinError) as info:
        piv.unblock_pin(b"87654321", b"654321")
    assert info.value.attempts_remaining == 2
    assert piv.get_puk_attempts() == 2
    piv.unblock_pin(PUK, b"654321")
    assert piv.get_puk_attempts() == 3
    piv.verify_pin(b"654321")
    assert piv.get_pin_attempts() == 3  # verified: the count comes from metadata


def test_verify_then_unverify(piv: PivSession) -> None:
    piv.verify_pin(PIN)
    piv.protocol.send(_verify_status())  # 9000 while verified
    piv.unverify_pin()
    with pytest.raises(ApduError) as info:
        piv.protocol.send(_verify_status())
    assert info.value.sw == 0x63C3


def _verify_status() -> CommandAPDU:
    return CommandAPDU(0x00, 0x20, 0x00, 0x80)


def test_change_pin_and_puk(piv: PivSession) -> None:
    with pytest.raises(InvalidPinError):
        piv.change_pin(b"111111", b"222222")
    piv.change_pin(PIN, b"222222")
    piv.verify_pin(b"222222")
    piv.change_puk(PUK, b"87654321")
    with pytest.raises(InvalidPinError) as info:
        piv.unblock_pin(PUK, b"333333")
    assert info.value.attempts_remaining == 2


@pytest.mark.parametrize("pin", [b"", b"123456789"])
def test_pin_length_checked_before_sending(piv: PivSession, conn: InProcessConnection, pin: bytes) -> None:
    sent = len(conn.sent)
    with pytest.raises(ValueError, match="1-8"):
        piv.verify_pin(pin)
    assert len(conn.sent) == sent


def test_management_key_mutual_and_wrong_key(piv: PivSession) -> None:
    with pytest.raises(ApduError) as info:
        piv.authenticate(bytes(24))
    assert info.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    piv.authenticate(MGMT)
    piv.put_data(ObjectId.PRINTED_INFORMATION, b"")  # needs the management key: accepted


def test_management_key_external_challenge(piv: PivSession) -> None:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    challenge = piv.get_witness(Algorithm.TDES)
    assert len(challenge) == 8
    enc = Cipher(TripleDES(MGMT), modes.ECB()).encryptor()
    piv.respond_witness(Algorithm.TDES, enc.update(challenge) + enc.finalize())
    piv.put_data(ObjectId.PRINTED_INFORMATION, b"")


def test_set_management_key_aes(piv: PivSession) -> None:
    piv.authenticate(MGMT)
    new = bytes(range(32))
    piv.set_management_key(Algorithm.AES256, new)
    piv.authenticate(new, Algorithm.AES256)
    meta = piv.get_slot_metadata(0x9B)
    assert meta is not None and meta.algorithm == Algorithm.AES256 and meta.is_default is False


def test_put_data_needs_management_key(piv: PivSession) -> None:
    with pytest.raises(ApduError) as info:
        piv.put_data(ObjectId.PRINTED_INFORMATION, b"\x01\x00")
    assert info.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_get_put_data_round_trip_long_object_goes_chained(conn: InProcessConnection) -> None:
    piv = PivSession(conn, extended=False)  # as for a card whose ATR does not announce extended length
    piv.authenticate(MGMT)
    content = bytes(range(256)) * 6  # 1536 bytes: command chaining out, 61xx back
    piv.put_data(ObjectId.KEY_HISTORY, content)
    assert any(apdu[0] & 0x10 for apdu in conn.sent), "expected chained links"
    assert piv.get_data(ObjectId.KEY_HISTORY) == content
    assert any(apdu[1] == 0xC0 for apdu in conn.sent), "expected GET RESPONSE"


def test_long_object_goes_in_one_extended_apdu_when_the_atr_allows(piv: PivSession, conn: InProcessConnection) -> None:
    piv.authenticate(MGMT)  # the default card's ATR announces extended Lc/Le (73 00 00 C0)
    content = bytes(range(256)) * 6
    conn.sent.clear()
    piv.put_data(ObjectId.KEY_HISTORY, content)
    assert len(conn.sent) == 1 and not conn.sent[0][0] & 0x10 and conn.sent[0][4] == 0  # one extended command
    assert piv.get_data(ObjectId.KEY_HISTORY) == content
    assert not any(apdu[1] == 0xC0 for apdu in conn.sent), "no GET RESPONSE needed"


def test_get_data_absent_is_6a82(piv: PivSession) -> None:
    with pytest.raises(ApduError) as info:
        piv.get_data(ObjectId.KEY_HISTORY)
    assert info.value.sw == SW.FILE_NOT_FOUND


def test_chuid_present_on_default_card(piv: PivSession) -> None:
    assert piv.get_data(ObjectId.CHUID)


def test_sign_p256_in_9a_verifies(piv: PivSession) -> None:
    piv.authenticate(MGMT)
    public = piv.generate_key(KeySlot.AUTHENTICATION, Algorithm.ECCP256)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"hello")
    h = digest.finalize()
    with pytest.raises(ApduError) as info:
        piv.sign_raw(KeySlot.AUTHENTICATION, Algorithm.ECCP256, h)
    assert info.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    piv.verify_pin(PIN)
    sig = piv.sign_raw(KeySlot.AUTHENTICATION, Algorithm.ECCP256, h)
    public.verify(sig, h, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_rsa2048_generate_sign_decrypt(piv: PivSession) -> None:
    piv.authenticate(MGMT)
    public = piv.generate_key(KeySlot.KEY_MANAGEMENT, Algorithm.RSA2048)
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    piv.verify_pin(PIN)
    raw = piv.sign_raw(KeySlot.KEY_MANAGEMENT, Algorithm.RSA2048, _pkcs1_block(256, b"msg"))
    public.verify(raw, b"msg", padding.PKCS1v15(), hashes.SHA256())
    ciphertext = public.encrypt(b"secret", padding.PKCS1v15())
    block = piv.decrypt_raw(KeySlot.KEY_MANAGEMENT, Algorithm.RSA2048, ciphertext)
    assert block[:2] == b"\x00\x02" and block.endswith(b"\x00secret")


def test_ecdh_equal_on_both_sides(piv: PivSession) -> None:
    piv.authenticate(MGMT)
    public = piv.generate_key(KeySlot.KEY_MANAGEMENT, Algorithm.ECCP384)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    peer = ec.generate_private_key(ec.SECP384R1())
    point = peer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    piv.verify_pin(PIN)
    assert piv.ecdh(KeySlot.KEY_MANAGEMENT, Algorithm.ECCP384, point) == peer.exchange(ec.ECDH(), public)


@pytest.mark.parametrize(
    "make", [lambda: ec.generate_private_key(ec.SECP256R1()), lambda: rsa.generate_private_key(65537, 1024)]
)
def test_put_key_then_metadata_and_use(piv: PivSession, make) -> None:  # type: ignore[no-untyped-def]
    key = make()
    piv.authenticate(MGMT)
    piv.put_key(KeySlot.RETIRED1, key, pin_policy=PinPolicy.NEVER)
    meta = piv.get_slot_metadata(KeySlot.RETIRED1)
    assert meta is not None and meta.generated is False and meta.pin_policy == PinPolicy.NEVER
    assert meta.public_key is not None
    assert meta.public_key.public_numbers() == key.public_key().public_numbers()


def test_metadata_of_pin_and_generated_key(piv: PivSession) -> None:
    pin = piv.get_slot_metadata(0x80)
    assert pin is not None and pin.retries_total == 3 and pin.retries_remaining == 3 and pin.is_default
    key = piv.get_slot_metadata(KeySlot.AUTHENTICATION)  # the profile's generated key
    assert key is not None and key.algorithm == Algorithm.ECCP256 and key.generated is True
    with pytest.raises(ApduError) as info:
        piv.get_slot_metadata(KeySlot.RETIRED20)
    assert info.value.sw == SW.REFERENCED_DATA_NOT_FOUND


@pytest.mark.parametrize("compress", [False, True])
def test_certificate_round_trip(piv: PivSession, compress: bool) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    import datetime

    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    piv.authenticate(MGMT)
    piv.put_certificate(KeySlot.SIGNATURE, der, compress=compress)
    assert piv.get_certificate(KeySlot.SIGNATURE) == der
    piv.delete_certificate(KeySlot.SIGNATURE)
    with pytest.raises(ApduError):
        piv.get_certificate(KeySlot.SIGNATURE)


def test_certificate_objects() -> None:
    assert certificate_object(0x9A) == 0x5FC105
    assert certificate_object(0x82) == 0x5FC10D
    assert certificate_object(0x95) == 0x5FC120
    with pytest.raises(ValueError):
        certificate_object(0x9B)


def test_removed_card_raises_pcsc_error(piv: PivSession, conn: InProcessConnection) -> None:
    conn.remove()
    with pytest.raises(PcscError) as info:
        piv.get_pin_attempts()
    assert info.value.code == PcscCode.SCARD_W_REMOVED_CARD and info.value.card_gone


def test_card_authenticate_mismatch_is_bad_response() -> None:
    assert issubclass(BadResponseError, ValueError)
