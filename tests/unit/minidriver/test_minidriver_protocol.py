"""The processor stack: 61xx/GET RESPONSE, 6Cxx, command chaining, extended length, SCP wrap, traffic log."""

from __future__ import annotations

import logging

import pytest
from incard import InProcessConnection

from minidriver.iso7816 import TRAFFIC, ApduError, CommandAPDU
from minidriver.piv import Algorithm, KeySlot, ObjectId, PivSession
from minidriver.protocol import SmartCardProtocol, atr_supports_extended
from minidriver.scp03 import SCP03Host
from minidriver.scpbase import StaticKeys

H = bytes.fromhex
MGMT = H("010203040506070801020304050607080102030405060708")
GP_TEST_KEY = bytes(range(0x40, 0x50))
ISD_AID = H("A000000151000000")


class Scripted:
    """A connection that answers from a script and records what it was sent."""

    def __init__(self, *answers: str) -> None:
        self.answers = [H(a) for a in answers]
        self.sent: list[bytes] = []
        self.atr = H("3B8001 80")

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.answers.pop(0)


def test_61xx_collected_with_get_response_on_the_same_channel() -> None:
    conn = Scripted("0102 6103", "030405 9000")
    out = SmartCardProtocol(conn).send(CommandAPDU(0x81, 0xCA, 0x00, 0x66, ne=256))
    assert out == H("0102030405")
    assert conn.sent == [H("81CA006600"), H("01C0000003")]


def test_6cxx_resends_with_the_right_le() -> None:
    conn = Scripted("6C10", "00" * 16 + "9000")
    assert SmartCardProtocol(conn).send(CommandAPDU(0x00, 0xB0, 0, 0, ne=256)) == bytes(16)
    assert conn.sent[1] == H("00B0000010")


def test_chain_stops_at_first_refused_link() -> None:
    conn = Scripted("9000", "6A80")
    with pytest.raises(ApduError) as info:
        SmartCardProtocol(conn).send(CommandAPDU(0x00, 0xDB, 0x3F, 0xFF, bytes(600)))
    assert info.value.sw == 0x6A80
    assert [a[0] for a in conn.sent] == [0x10, 0x10] and len(conn.sent[0]) == 5 + 255


@pytest.mark.parametrize(
    ("atr", "extended"),
    [
        ("3B8B0180730000C0657663617264BE", True),  # vcard default: 73 00 00 C0 (chaining, extended Lc/Le)
        ("3B87018065766361726401", False),  # no card capabilities byte
        ("3B8C80 01 80 73 C0 21 C0 56 59 75 62 69 4B 65 79 F9".replace(" ", ""), True),  # 73 C0 21 C0: b7 of byte 3
        ("3B8C8001 80 73 C0 21 80 56 59 75 62 69 4B 65 79 39".replace(" ", ""), False),
        ("3B00", False),
    ],
)
def test_extended_length_read_from_atr(atr: str, extended: bool) -> None:
    assert atr_supports_extended(H(atr)) is extended


def test_extended_length_sends_one_apdu_instead_of_a_chain() -> None:
    conn = InProcessConnection()
    piv = PivSession(conn)
    piv.protocol = SmartCardProtocol(conn, extended=True)
    piv.authenticate(MGMT)
    content = bytes(range(200)) * 7
    start = len(conn.sent)
    piv.put_data(ObjectId.KEY_HISTORY, content)
    (put,) = conn.sent[start:]
    assert put[4] == 0 and int.from_bytes(put[5:7], "big") == len(put) - 7
    assert piv.get_data(ObjectId.KEY_HISTORY) == content


@pytest.mark.parametrize("level", [0x01, 0x03, 0x13, 0x33])
def test_piv_over_scp03_wraps_everything(level: int) -> None:
    conn = InProcessConnection()
    host = SCP03Host(StaticKeys.same(GP_TEST_KEY, kvn=0xFF), sd_aid=ISD_AID)
    piv = PivSession(conn, scp=host, scp_level=level)
    assert piv.protocol.scp is host
    start = len(conn.sent)
    piv.verify_pin(b"123456")
    piv.authenticate(MGMT)
    content = bytes(range(256)) * 3
    piv.put_data(ObjectId.KEY_HISTORY, content)  # chained links, each wrapped
    assert piv.get_data(ObjectId.KEY_HISTORY) == content
    # an extended Le is sent short under secure messaging; 61xx brings the rest
    whole = piv.protocol.send(CommandAPDU(0x00, 0xCB, 0x3F, 0xFF, H("5C035FC10C"), 65536))
    assert whole == H("53820300") + content
    public = piv.generate_key(KeySlot.RETIRED2, Algorithm.ECCP256)
    assert public is not None
    wire = [a for a in conn.sent[start:] if a[1] != 0xC0]
    assert all(a[0] & 0x04 for a in wire), "every command carries the SM bit"
    if level & 0x02:
        assert not any(b"123456" in a for a in wire), "PIN in clear under C-DECRYPTION"


def test_default_level_is_strongest_the_card_offers() -> None:
    conn = InProcessConnection()
    piv = PivSession(conn)
    assert piv.protocol.open_scp(SCP03Host(StaticKeys.same(GP_TEST_KEY, kvn=0xFF), sd_aid=ISD_AID)) == 0x33


def test_select_ends_the_secure_channel() -> None:
    conn = InProcessConnection()
    host = SCP03Host(StaticKeys.same(GP_TEST_KEY, kvn=0xFF), sd_aid=ISD_AID)
    piv = PivSession(conn, scp=host)
    piv.select()
    assert piv.protocol.scp is None
    piv.verify_pin(b"123456")  # plain again, accepted


def test_wrong_scp_keys_leave_no_session() -> None:
    from minidriver.scpbase import AuthenticationError

    conn = InProcessConnection()
    host = SCP03Host(StaticKeys.same(bytes(16), kvn=0xFF), sd_aid=ISD_AID)
    with pytest.raises(AuthenticationError):
        PivSession(conn, scp=host)


def test_traffic_log_never_shows_pin_or_management_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(TRAFFIC, logger="minidriver")
    piv = PivSession(InProcessConnection())
    piv.verify_pin(b"123456")
    piv.change_pin(b"123456", b"654321")
    piv.authenticate(MGMT)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("minidriver"))
    assert ">> 00 20 00 80 [8 bytes redacted]" in text
    for secret in (b"123456", b"654321"):
        assert secret.hex().upper() not in text and secret.decode() not in text
    assert MGMT.hex().upper() not in text
    assert any(r.levelno == TRAFFIC for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "123456" in r.getMessage()]
