"""GPSession and the GP decoders over a whole virtual card in process (no reader)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from incard import InProcessConnection

from minidriver.gp import DEFAULT_TEST_KEY, HOST_ERRORS, ISD_AID, GPSession, factory_keys_listed, logical_channel
from minidriver.gpobjects import (
    KeyInfo,
    StatusScope,
    format_key_info,
    format_registry,
    parse_key_information,
    parse_status,
    scp02_i_from_card_data,
)
from minidriver.iso7816 import ApduError, BadResponseError, CommandAPDU
from minidriver.scpbase import AuthenticationError, StaticKeys

H = bytes.fromhex
TEST_KEYS = StaticKeys.same(DEFAULT_TEST_KEY, kvn=0xFF)
PIV_AID = H("A000000308000010000100")


def fresh(kvn: int, length: int = 16) -> StaticKeys:
    return StaticKeys(kvn=kvn, enc=os.urandom(length), mac=os.urandom(length), dek=os.urandom(length))


@pytest.fixture
def conn() -> InProcessConnection:
    return InProcessConnection()


@pytest.mark.parametrize("level", [0x00, 0x01, 0x03, 0x11, 0x13, 0x33])
def test_open_at_every_scp03_level_and_read_the_registry(conn: InProcessConnection, level: int) -> None:
    session = GPSession.open(conn, TEST_KEYS, level=level)
    assert (session.scp, session.kvn, session.level, session.i) == (0x03, 0xFF, level, 0x70)
    lines = format_registry(session.registry())
    assert lines[0] == "ISD A000000151000000: card SECURED, privileges 9AFE80"
    assert "application A000000308000010000100: SELECTABLE" in lines[1]
    session.close()


def test_default_level_is_33(conn: InProcessConnection) -> None:
    assert GPSession.open(conn, TEST_KEYS).level == 0x33


def test_wrong_keys_and_unknown_kvn(conn: InProcessConnection) -> None:
    with pytest.raises(AuthenticationError, match="card cryptogram mismatch"):
        GPSession.open(conn, StaticKeys.same(bytes(16), kvn=0xFF))
    with pytest.raises(ApduError) as info:
        GPSession.open(conn, TEST_KEYS, kvn=0x42)
    assert info.value.sw == 0x6A88 and "no key set 42" in str(info.value)


def test_put_key_rotate_replace_delete(conn: InProcessConnection) -> None:
    first, second = fresh(0x01, 32), fresh(0x02)
    session = GPSession.open(conn, TEST_KEYS)
    session.put_key(first)
    assert {(k.kvn, k.length) for k in session.key_information() if k.kid < 0x10} == {(0x01, 32)}  # factory set retired
    session = GPSession.open(conn, first, kvn=0x01)
    session.put_key(second)
    with pytest.raises(ApduError) as info:
        session.put_key(fresh(0x03), replace_kvn=0x09)
    assert info.value.sw == 0x6A88
    session.delete_key(0x02)
    with pytest.raises(ApduError) as info:
        session.delete_key(0x02)
    assert info.value.sw == 0x6A88 and "DELETE: the card has no key set 02" in str(info.value)
    with pytest.raises(ApduError) as info:
        session.delete_key(0x01)  # the last key set stays
    assert info.value.sw == 0x6985


@pytest.mark.parametrize(("kvn", "error"), [(0x00, "0x01-0x7F"), (0x80, "0x01-0x7F")])
def test_put_key_checks_the_new_kvn_first(conn: InProcessConnection, kvn: int, error: str) -> None:
    session = GPSession.open(conn, TEST_KEYS)
    with pytest.raises(ValueError, match=error):
        session.put_key(StaticKeys.same(bytes(16), kvn=kvn))


def test_get_status_pages_with_6310_and_prefix(conn: InProcessConnection) -> None:
    session = GPSession.open(conn, TEST_KEYS, level=0x01)
    aids = [PIV_AID[:-1] + bytes((n,)) for n in range(0x10, 0x17)]
    for aid in aids:
        fields = [H("A000000308"), H("A00000030800001000"), aid, b"\x00", H("C900"), b""]
        body = b"".join(bytes((len(f),)) + f for f in fields)
        assert session.transceive(CommandAPDU(0x80, 0xE6, 0x0C, 0x00, body, 256)).sw == 0x9000
    assert session.transceive(CommandAPDU(0x80, 0xF2, 0x40, 0x02, H("4F00"), 256)).sw == 0x6310
    assert [e.aid for e in session.get_status(StatusScope.APPLICATIONS)] == [PIV_AID, *aids]
    assert session.get_status(StatusScope.APPLICATIONS, aid_prefix=H("D276")) == []


def test_lock_and_unlock_an_application(conn: InProcessConnection) -> None:
    session = GPSession.open(conn, TEST_KEYS)
    session.set_status(0x40, 0x80, PIV_AID)
    (piv,) = session.get_status(StatusScope.APPLICATIONS)
    assert piv.locked and piv.state == "LOCKED (SELECTABLE)"
    session.set_status(0x40, 0x00, PIV_AID)
    assert session.get_status(StatusScope.APPLICATIONS)[0].state == "SELECTABLE"


def test_logical_channel_keeps_the_basic_channel(conn: InProcessConnection) -> None:
    with logical_channel(conn) as channel:
        assert channel == 1
        assert factory_keys_listed(conn, channel, kvn=0xFF)
        session = GPSession.open(conn, TEST_KEYS, channel=channel)
        assert session.get_status(StatusScope.ISD)[0].aid == ISD_AID
        assert all(a[0] & 0x03 == 1 for a in conn.sent[-2:])
    assert conn.sent[-1] == H("01708001")  # MANAGE CHANNEL close, sent on the channel itself


def test_scp02_key_set(tmp_path: Path) -> None:
    from importlib import resources

    text = resources.files("emulator.profiles").joinpath("default.toml").read_text()
    text += (
        '\n[[isd.keysets]]\nkvn = 0x20\nscp = "02"\n'
        + "".join(f'{name} = "{DEFAULT_TEST_KEY.hex()}"\n' for name in ("enc", "mac", "dek"))
        + "test_only = true\n"
    )
    text = text.replace('state_file = "default.sqlite"', f'state_file = "{tmp_path / "c.sqlite"}"')
    profile = tmp_path / "scp02.toml"
    profile.write_text(text)
    conn = InProcessConnection(str(profile))
    session = GPSession.open(conn, StaticKeys.same(DEFAULT_TEST_KEY, kvn=0x20), kvn=0x20)
    assert (session.scp, session.level, session.i) == (0x02, 0x03, 0x15)
    with pytest.raises(ValueError, match="security level"):
        GPSession.open(conn, StaticKeys.same(DEFAULT_TEST_KEY, kvn=0x20), kvn=0x20, level=0x33)
    session = GPSession.open(conn, StaticKeys.same(DEFAULT_TEST_KEY, kvn=0x20), kvn=0x20)
    session.put_key(fresh(0x21))
    assert {(k.kvn, k.key_type) for k in session.key_information() if k.kid < 0x10} >= {(0x21, 0x80)}


# -- decoders ----------------------------------------------------------------------------
def test_parse_status_vector() -> None:
    data = H("E3 13 4F 08 A000000151000000 9F70 01 0F C5 03 9AFE80")
    (entry,) = parse_status(StatusScope.ISD, data)
    assert (entry.aid, entry.state, entry.privileges) == (ISD_AID, "SECURED", H("9AFE80"))


@pytest.mark.parametrize("data", ["E3 03 9F7001", "4F 01 00", "E3 05 4F 08 00"])
def test_parse_status_refuses_bad_answers(data: str) -> None:
    with pytest.raises(BadResponseError):
        parse_status(StatusScope.APPLICATIONS, H(data))


def test_key_information_and_lines() -> None:
    data = H("E0 12 C0 04 01FF8810 C0 04 02FF8810 C0 04 03FF8810")
    keys = parse_key_information(data)
    assert keys == [KeyInfo(0xFF, kid, 0x88, 16) for kid in (1, 2, 3)]
    (line,) = format_key_info(keys, factory_hint="x")
    assert line == "key set 0xFF: SCP03 AES-128, keys 01 ENC, 02 MAC, 03 DEK  (factory test key set: x)"


def test_scp02_i_from_card_data() -> None:
    data = H("66 0F 73 0D 64 0B 06 09 2A864886FC6B040215")  # SCP02 OID ...04 02 15: i = 15
    assert scp02_i_from_card_data(data) == 0x15
    assert scp02_i_from_card_data(H("66 02 73 00")) is None
    assert scp02_i_from_card_data(H("66 05 73")) is None  # malformed: no crash


def test_host_errors_cover_what_sessions_raise() -> None:
    from minidriver.pcsc import PcscError
    from minidriver.scpbase import SCPError

    for exc in (ApduError, SCPError, BadResponseError, PcscError):
        assert issubclass(exc, HOST_ERRORS)
