"""The Cardmod core entry points (context, files, properties, PINs) through real pcscd + vpcd.

CardData comes from :func:`minidriver.card_data_for_reader` (a PC/SC context and handle, as a
CSP has them); facts the minidriver reports are compared with what the card says over a separate
PivSession. The last tests pull the card out mid-use and put it back.
"""

from __future__ import annotations

import struct

import pytest
from cardmod_e2e import context
from piv_e2e import MGMT_KEY

from emulator.pytest_plugin import LiveCard
from minidriver import (
    CardAcquireContext,
    CardAuthenticatePin,
    CardChangeAuthenticator,
    CardData,
    CardDeleteContext,
    CardGetProperty,
    CardReadFile,
    CardUnblockPin,
    Minidriver,
    Out,
    ScardCode,
)
from minidriver.cardmod.helper import reconnect
from minidriver.cardmod.piv_map import parse_chuid
from minidriver.cardmod.structs import ContainerMapRecord
from minidriver.pcsc import PcscConnection
from minidriver.piv import ObjectId, PivSession

pytestmark = pytest.mark.e2e
PIN, PUK = b"123456", b"12345678"
WRONG, BLOCKED = ScardCode.SCARD_W_WRONG_CHV, ScardCode.SCARD_W_CHV_BLOCKED


def card_facts(reader: str) -> tuple[bytes, bytes]:
    """(CHUID GUID, 9A certificate) read over a separate PC/SC connection."""
    with PcscConnection(reader) as conn:
        piv = PivSession(conn)
        return parse_chuid(piv.get_data(ObjectId.CHUID)).guid, piv.get_certificate(0x9A)


def read(cd: CardData, directory: str | None, name: str) -> tuple[int, bytes]:
    data: Out[bytearray] = Out()
    size: Out[int] = Out()
    code = CardReadFile(cd, directory, name, 0, data, size)
    return code, bytes(data.value or b"")


def pin(cd: CardData, value: bytes) -> tuple[int, int | None]:
    attempts: Out[int] = Out()
    code = CardAuthenticatePin(cd, "user", value, len(value), attempts)
    return code, attempts.value


def authenticated(cd: CardData) -> int:
    buf = bytearray(4)
    assert CardGetProperty(cd, "Authenticated State", buf, 4, Out(), 0) == 0
    value: int = struct.unpack("<I", buf)[0]
    return value


def test_files_describe_the_live_card(vcard: LiveCard) -> None:
    guid, cert = card_facts(vcard.reader)
    with context(vcard.reader) as cd:
        assert cd.dwVersion == 7
        assert read(cd, None, "cardid") == (0, guid)
        code, raw = read(cd, "mscp", "cmapfile")
        assert code == 0 and len(raw) == 24 * 86
        records = [ContainerMapRecord.from_bytes(raw[i : i + 86]) for i in range(0, len(raw), 86)]
        # the profile's P-256 key in 9A: valid + default, signature key, named from the CHUID GUID
        assert records[0] == ContainerMapRecord("01" + guid[1:].hex(), 0x03, 256, 0)
        assert all(r == ContainerMapRecord() for r in records[1:])
        assert read(cd, "mscp", "ksc00") == (0, cert)
        assert read(cd, None, "cardapps") == (0, b"mscp\0\0\0\0")


def test_pin_change_block_and_unblock_with_attempt_counts(vcard: LiveCard) -> None:
    with context(vcard.reader) as cd:
        assert pin(cd, b"000000") == (WRONG, 2)
        assert pin(cd, PIN) == (0, None)
        assert authenticated(cd) == 0x02
        attempts: Out[int] = Out()
        assert CardChangeAuthenticator(cd, "user", PIN, 6, b"24682468", 8, 0, 2, attempts) == 0
        assert [pin(cd, PIN) for _ in range(3)] == [(WRONG, 2), (WRONG, 1), (WRONG, 0)]
        assert pin(cd, b"24682468") == (BLOCKED, 0)
        assert CardUnblockPin(cd, "user", b"00000000", 8, PIN, 6, 0, 2) == WRONG
        assert CardUnblockPin(cd, "user", PUK, 8, PIN, 6, 0, 2) == 0
        assert pin(cd, PIN) == (0, None)


def test_facade_and_admin_over_the_reader(vcard: LiveCard) -> None:
    guid, _ = card_facts(vcard.reader)
    with Minidriver(vcard.reader) as m:
        assert m.card_id() == guid
        assert m.list_files("mscp") == ["cmapfile", "ksc00"]
        m.authenticate_admin(MGMT_KEY)
        m.authenticate_pin(PIN)
        assert m.get_dword_property("Authenticated State") == 0x06
        before = m.read_file("cardcf")
        m.write_file("cardcf", before[:4] + bytes((before[4] + 1, before[5])))
    with Minidriver(vcard.reader) as again:  # the admin write persisted cardcf on the card
        assert again.read_file("cardcf")[4] == before[4] + 1
    with Minidriver() as first_card:  # no reader named: the first reader holding a card
        assert first_card.card_id() == guid


def test_removed_card_then_reinserted_and_reconnected(vcard: LiveCard) -> None:
    with context(vcard.reader) as cd:
        code, card_id = read(cd, None, "cardid")
        assert code == 0
        assert pin(cd, PIN) == (0, None)
        vcard.remove(wait=True)
        assert read(cd, None, "cardid")[0] == ScardCode.SCARD_W_REMOVED_CARD
        vcard.insert(wait=True)
        # same handle, not reconnected yet: still the removal code, nothing crashes
        assert read(cd, "mscp", "cmapfile")[0] in (ScardCode.SCARD_W_REMOVED_CARD, ScardCode.SCARD_W_RESET_CARD)
        reconnect(cd)
        assert read(cd, None, "cardid") == (0, card_id)
        assert authenticated(cd) == 0  # a new insertion: nothing is authenticated
        assert pin(cd, PIN) == (0, None)


def test_two_contexts_on_one_card(vcard: LiveCard) -> None:
    with context(vcard.reader) as first, context(vcard.reader) as second:
        assert read(first, None, "cardid") == read(second, None, "cardid")
        assert pin(first, PIN) == (0, None)
        CardDeleteContext(second)  # deleting one context leaves the other working
        assert read(first, "mscp", "cmapfile")[0] == 0
        assert CardAcquireContext(second, 0) == 0
