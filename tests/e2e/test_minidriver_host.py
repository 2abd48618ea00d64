"""minidriver's host stack through the real pcscd + vpcd + daemon: PivSession over PcscConnection.

The same operations as the in-process unit tests, now through pyscard and a
real reader, so framing (61xx, chaining), PIN counters, key operations and
removal are seen as every PC/SC application sees them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from emulator.pytest_plugin import LiveCard
from minidriver.iso7816 import SW, ApduError, CommandAPDU
from minidriver.pcsc import Disposition, PcscCode, PcscConnection, PcscError, list_readers
from minidriver.piv import Algorithm, InvalidPinError, KeySlot, ObjectId, PinBlockedError, PivSession
from minidriver.protocol import SmartCardProtocol
from minidriver.scp03 import SCP03Host
from minidriver.scpbase import StaticKeys

pytestmark = pytest.mark.e2e

MGMT = bytes.fromhex("010203040506070801020304050607080102030405060708")
PIN, PUK = b"123456", b"12345678"
GP_TEST_KEY = bytes(range(0x40, 0x50))
ISD_AID = bytes.fromhex("A000000151000000")


@pytest.fixture
def conn(vcard: LiveCard) -> Iterator[PcscConnection]:
    with PcscConnection(vcard.reader) as connection:
        yield connection


@pytest.fixture
def piv(conn: PcscConnection) -> PivSession:
    return PivSession(conn)


def sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def test_reader_listed_and_atr(vcard: LiveCard, conn: PcscConnection) -> None:
    assert vcard.reader in list_readers()
    assert conn.atr == bytes.fromhex("3B8B0180730000C0657663617264BE")
    assert conn.status() == conn.atr


def test_pin_verify_change_unblock_with_attempts(piv: PivSession) -> None:
    assert piv.get_pin_attempts() == 3
    with pytest.raises(InvalidPinError) as err:
        piv.verify_pin(b"999999")
    assert err.value.attempts_remaining == 2 and err.value.sw == 0x63C2
    piv.verify_pin(PIN)  # a good PIN restores the counter
    assert piv.get_pin_attempts() == 3
    piv.change_pin(PIN, b"246801")
    for left in (2, 1, 0):
        with pytest.raises(InvalidPinError) as err:
            piv.verify_pin(PIN)
        assert err.value.attempts_remaining == left
    with pytest.raises(PinBlockedError):
        piv.verify_pin(b"246801")
    assert piv.get_pin_attempts() == 0
    with pytest.raises(InvalidPinError) as err:
        piv.unblock_pin(b"00000000", b"112233")
    assert err.value.attempts_remaining == 2
    assert piv.get_puk_attempts() == 2
    piv.unblock_pin(PUK, b"112233")
    piv.verify_pin(b"112233")
    assert piv.get_puk_attempts() == 3


def test_sign_p256_with_9a_verifies(piv: PivSession) -> None:
    piv.authenticate(MGMT)
    public = piv.generate_key(KeySlot.AUTHENTICATION, Algorithm.ECCP256)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    piv.verify_pin(PIN)
    digest = sha256(b"signed through pcscd")
    signature = piv.sign_raw(KeySlot.AUTHENTICATION, Algorithm.ECCP256, digest)
    public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    metadata = piv.get_slot_metadata(KeySlot.AUTHENTICATION)
    assert metadata is not None and metadata.generated and metadata.public_key is not None
    assert metadata.public_key.public_numbers() == public.public_numbers()


def test_rsa2048_generate_sign_decrypt(piv: PivSession) -> None:
    piv.authenticate(MGMT)
    public = piv.generate_key(KeySlot.KEY_MANAGEMENT, Algorithm.RSA2048)
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    piv.verify_pin(PIN)
    info = bytes.fromhex("3031300d060960864801650304020105000420") + sha256(b"message")
    block = b"\x00\x01" + b"\xff" * (256 - len(info) - 3) + b"\x00" + info
    signature = piv.sign_raw(KeySlot.KEY_MANAGEMENT, Algorithm.RSA2048, block)  # 256 bytes in: chained
    public.verify(signature, b"message", padding.PKCS1v15(), hashes.SHA256())
    ciphertext = public.encrypt(b"session key", padding.PKCS1v15())
    plain = piv.decrypt_raw(KeySlot.KEY_MANAGEMENT, Algorithm.RSA2048, ciphertext)
    assert plain[:2] == b"\x00\x02" and plain.endswith(b"\x00session key")


@pytest.mark.parametrize(
    ("algorithm", "curve"), [(Algorithm.ECCP256, ec.SECP256R1()), (Algorithm.ECCP384, ec.SECP384R1())]
)
def test_ecdh_equal_on_both_sides(piv: PivSession, algorithm: Algorithm, curve: ec.EllipticCurve) -> None:
    piv.authenticate(MGMT)
    public = piv.generate_key(KeySlot.KEY_MANAGEMENT, algorithm)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    peer = ec.generate_private_key(curve)
    point = peer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    piv.verify_pin(PIN)
    assert piv.ecdh(KeySlot.KEY_MANAGEMENT, algorithm, point) == peer.exchange(ec.ECDH(), public)


def test_get_put_data_and_metadata(piv: PivSession) -> None:
    chuid = piv.get_data(ObjectId.CHUID)
    assert chuid
    with pytest.raises(ApduError) as err:
        piv.put_data(ObjectId.KEY_HISTORY, b"\x01")
    assert err.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    piv.authenticate(MGMT)
    content = bytes(range(256)) * 5  # chained out, 61xx back through pcscd
    piv.put_data(ObjectId.KEY_HISTORY, content)
    assert piv.get_data(ObjectId.KEY_HISTORY) == content
    piv.put_data(ObjectId.KEY_HISTORY, b"")
    with pytest.raises(ApduError) as err:
        piv.get_data(ObjectId.KEY_HISTORY)
    assert err.value.sw == SW.FILE_NOT_FOUND
    assert piv.version == (5, 4, 3)
    pin = piv.get_slot_metadata(0x80)
    assert pin is not None and (pin.retries_total, pin.retries_remaining, pin.is_default) == (3, 3, True)
    mgmt = piv.get_slot_metadata(0x9B)
    assert mgmt is not None and mgmt.algorithm == Algorithm.TDES and mgmt.is_default


def test_certificate_of_9a_from_the_profile(piv: PivSession) -> None:
    cert = x509.load_der_x509_certificate(piv.get_certificate(KeySlot.AUTHENTICATION))
    assert "vcard test key" in cert.subject.rfc4514_string()


def test_piv_over_scp03_through_pcscd(conn: PcscConnection) -> None:
    host = SCP03Host(StaticKeys.same(GP_TEST_KEY, kvn=0xFF), sd_aid=ISD_AID)
    piv = PivSession(conn, scp=host)
    assert piv.protocol.scp is host
    piv.verify_pin(PIN)
    assert piv.get_certificate(KeySlot.AUTHENTICATION)  # longer than a short response, under R-MAC
    piv.close()
    assert piv.protocol.scp is None


def test_removal_mid_session_is_a_card_gone_pcsc_error(vcard: LiveCard, conn: PcscConnection) -> None:
    piv = PivSession(conn)
    piv.verify_pin(PIN)
    vcard.remove(wait=True)
    with pytest.raises(PcscError) as err:
        piv.get_pin_attempts()
    assert err.value.code == PcscCode.SCARD_W_REMOVED_CARD  # pcscd has seen the removal (wait=True)
    assert err.value.card_gone
    vcard.insert(wait=True)
    with pytest.raises(PcscError) as err:  # the old handle stays dead until the caller reconnects
        piv.get_pin_attempts()
    assert err.value.card_gone
    conn.reconnect()
    piv.select()
    assert piv.get_pin_attempts() == 3  # transient state is gone: the PIN is no longer verified
    with pytest.raises(ApduError) as status:  # VERIFY without data: 63C3, not verified any more
        piv.protocol.send(CommandAPDU(0x00, 0x20, 0x00, 0x80))
    assert status.value.sw == 0x63C3


def test_connecting_to_an_empty_reader_says_no_smartcard(vcard: LiveCard) -> None:
    vcard.remove(wait=True)
    with pytest.raises(PcscError) as err:
        PcscConnection(vcard.reader)
    assert err.value.code in (PcscCode.SCARD_E_NO_SMARTCARD, PcscCode.SCARD_W_REMOVED_CARD)


def test_borrowed_handles_stay_open_for_their_owner(conn: PcscConnection) -> None:
    borrowed = PcscConnection.from_handles(conn.context, conn.handle)
    assert (borrowed.reader, borrowed.atr) == (conn.reader, conn.atr)
    piv = PivSession(borrowed)
    piv.verify_pin(PIN)
    borrowed.close()  # forgets the handles, does not disconnect them
    assert PivSession(conn).get_pin_attempts() == 3  # same card handle, still usable


def test_transaction_and_reset_on_reconnect(conn: PcscConnection) -> None:
    conn.begin_transaction()
    piv = PivSession(conn)
    piv.verify_pin(PIN)
    assert piv.protocol.transceive(CommandAPDU(0x00, 0x20, 0x00, 0x80)).sw == SW.OK  # verified
    conn.end_transaction()
    assert conn.reconnect(Disposition.RESET) == conn.atr
    piv.select()
    # a reset clears the PIN's security status
    assert piv.protocol.transceive(CommandAPDU(0x00, 0x20, 0x00, 0x80)).sw == 0x63C3


def test_unknown_reader_is_a_pcsc_error(vcard: LiveCard) -> None:
    with pytest.raises(PcscError) as err:
        PcscConnection("no such reader 00 00")
    assert err.value.code in (PcscCode.SCARD_E_UNKNOWN_READER, PcscCode.SCARD_E_READER_UNAVAILABLE)


def test_extended_length_apdus_through_pcscd(conn: PcscConnection) -> None:
    """pcscd + vpcd carry extended APDUs: one PUT DATA of 1500 bytes, one GET DATA with Le 0000."""
    piv = PivSession(conn)
    piv.protocol = SmartCardProtocol(conn, extended=True)
    piv.authenticate(MGMT)
    content = bytes(range(250)) * 6
    piv.put_data(ObjectId.KEY_HISTORY, content)
    assert piv.get_data(ObjectId.KEY_HISTORY) == content
    raw = conn.transmit(CommandAPDU(0x00, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C035FC10C"), 65536).encode(extended=True))
    assert raw[-2:] == b"\x90\x00" and raw[:-2] == bytes.fromhex("538205DC") + content  # whole answer, no 61xx
