"""VirtualCard runtime: SELECT, GET DATA, logical channels, chaining, 61xx, power (ISO 7816-4, GPCS).

Every test talks to a whole card through ``transmit(bytes)``; no pcscd, no sockets.
"""

from __future__ import annotations

import pytest

from emulator.card import VirtualCard
from emulator.factory import build_card
from emulator.iso7816 import SW, ResponseAPDU, encode_tlv, find_tlv, parse_tlvs
from emulator.profile import load_profile
from emulator.store import MemoryStore

h = bytes.fromhex
ISD_AID = h("A000000151000000")
PIV_AID = h("A000000308000010000100")
SELECT_ISD = "00 A4 04 00 08 A000000151000000"
SELECT_PIV = "00 A4 04 00 0B A000000308000010000100"
VERIFY_PIN = "00 20 00 80 08 313233343536FFFF"  # the default profile's test PIN 123456
PIN_STATUS = "00 20 00 80"
GET_VERSION = "00 FD 00 00 00"
CERT_9A = "5C 03 5FC105"  # PIV authentication certificate object, filled by the default profile


@pytest.fixture
def card() -> VirtualCard:
    c = build_card(load_profile(), MemoryStore())
    c.power_on()
    return c


def tx(card: VirtualCard, apdu: str | bytes) -> ResponseAPDU:
    raw = h(apdu) if isinstance(apdu, str) else apdu
    return ResponseAPDU.from_bytes(card.transmit(raw))


def sw(card: VirtualCard, apdu: str | bytes) -> int:
    return tx(card, apdu).sw


def on(channel: int, apdu: str) -> str:
    """The same command on another logical channel (first interindustry CLA)."""
    raw = bytearray(h(apdu))
    raw[0] |= channel
    return raw.hex()


def isd_selected(card: VirtualCard, channel: int = 0) -> bool:
    return sw(card, on(channel, "00 CA 9F7F 00")) == SW.OK


def piv_selected(card: VirtualCard, channel: int = 0) -> bool:
    return sw(card, on(channel, GET_VERSION)) == SW.OK


# -- status words --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("00 A4 04", SW.WRONG_LENGTH),  # no complete header
        ("00 A4 04 00 08 A0000001", SW.WRONG_LENGTH),  # Lc says 8, 4 bytes follow
        ("00 A4 04 00 11" + "A0" * 17, SW.WRONG_LENGTH),  # AID longer than 16 bytes
        ("00 12 00 00", SW.INS_NOT_SUPPORTED),  # unknown INS to the ISD
        ("80 A4 04 00 08 A000000151000000", SW.INS_NOT_SUPPORTED),  # proprietary SELECT goes to the applet
        ("FF A4 04 00", SW.CLA_NOT_SUPPORTED),
        ("20 CA 9F 7F 00", SW.CLA_NOT_SUPPORTED),
        ("A0 A4 04 00", SW.CLA_NOT_SUPPORTED),
        ("00 A4 04 01 08 A000000151000000", SW.INCORRECT_P1P2),  # P2: last occurrence
        ("00 A4 04 03", SW.INCORRECT_P1P2),  # P2: previous occurrence
        ("00 A4 04 10", SW.INCORRECT_P1P2),
        ("00 A4 05 00", SW.INCORRECT_P1P2),  # P1 is no selection method
        ("00 70 01 00", SW.INCORRECT_P1P2),  # MANAGE CHANNEL P1 neither open nor close
        ("00 70 80 00", SW.INCORRECT_P1P2),  # the basic channel cannot be closed
        ("00 70 80 02", SW.INCORRECT_P1P2),  # channel 2 is not open
        ("00 C0 00 01 00", SW.INCORRECT_P1P2),  # GET RESPONSE takes P1=P2=00
        ("01 CA 9F 7F 00", SW.LOGICAL_CHANNEL_NOT_SUPPORTED),  # channel 1 not opened
        ("03 CA 9F 7F 00", SW.LOGICAL_CHANNEL_NOT_SUPPORTED),
        ("40 CA 9F 7F 00", SW.LOGICAL_CHANNEL_NOT_SUPPORTED),  # channel 4: beyond the 4 channels
        ("4F CA 9F 7F 00", SW.LOGICAL_CHANNEL_NOT_SUPPORTED),  # channel 19
        ("04 CA 9F 7F 00", SW.SECURITY_STATUS_NOT_SATISFIED),  # secure messaging without a session
        ("0C CA 9F 7F 00", SW.SECURITY_STATUS_NOT_SATISFIED),
        ("84 CA 9F 7F 00", SW.SECURITY_STATUS_NOT_SATISFIED),
        ("00 A4 04 00 05 D276000124", SW.FILE_NOT_FOUND),  # unknown AID
        ("00 A4 04 00 09 A000000151000000FF", SW.FILE_NOT_FOUND),  # longer than the ISD's AID
        ("00 A4 00 00 02 3F00", SW.FILE_NOT_FOUND),  # no file system
        ("00 C0 00 00 00", SW.CONDITIONS_NOT_SATISFIED),  # GET RESPONSE with nothing pending
        ("00 CA 00 FE 00", SW.REFERENCED_DATA_NOT_FOUND),  # GET DATA of an unknown tag
    ],
)
def test_status_words(card: VirtualCard, apdu: str, expected: int) -> None:
    assert tx(card, apdu) == ResponseAPDU(sw=expected)


def test_errors_do_not_disturb_the_card(card: VirtualCard) -> None:
    for apdu in ("00", "FF A4 04 00", "01 CA 9F7F 00", "00 A4 04 00 05 D276000124", "00 12 00 00"):
        assert sw(card, apdu) != SW.OK
    assert isd_selected(card)


def test_chain_interrupted_by_another_command(card: VirtualCard) -> None:
    """ISO 7816-4 §5.3.3: a command outside the chain abandons it and is processed (issue 8)."""
    assert sw(card, SELECT_PIV) == SW.OK
    assert sw(card, "10 20 00 80 03 313233") == SW.OK
    assert sw(card, GET_VERSION) == SW.OK  # not 6883
    assert sw(card, PIN_STATUS) == 0x63C3  # the abandoned VERIFY link was never executed


def test_abandoned_chain_does_not_break_the_next_applications_select(card: VirtualCard) -> None:
    """One application leaves a chain open; the next one's first SELECT works (issue 8, defect 8)."""
    assert sw(card, SELECT_PIV) == SW.OK
    before = tx(card, f"00 CB 3F FF 00 00 05 {CERT_9A} 00 00")
    assert sw(card, "10 DB 3F FF 05 5C035FC105") == SW.OK  # first link of a PUT DATA, never finished
    assert sw(card, SELECT_ISD) == SW.OK
    assert isd_selected(card)
    assert sw(card, SELECT_PIV) == SW.OK
    assert tx(card, f"00 CB 3F FF 00 00 05 {CERT_9A} 00 00") == before  # nothing of the chain was written


def test_a_new_chain_does_not_inherit_an_abandoned_one(card: VirtualCard) -> None:
    assert sw(card, SELECT_PIV) == SW.OK
    assert sw(card, "10 20 00 80 04 39393939") == SW.OK  # abandoned: wrong PIN digits
    assert sw(card, "10 20 00 81 02 3132") == SW.OK  # another P2: a new chain starts
    assert sw(card, "10 20 00 80 03 313233") == SW.OK  # P2 80 again: that one is abandoned too
    assert sw(card, "00 20 00 80 05 343536FFFF") == SW.OK  # VERIFY of the default PIN only
    assert sw(card, PIN_STATUS) == SW.OK


# -- SELECT ----------------------------------------------------------------------------
def test_power_on_selects_the_isd(card: VirtualCard) -> None:
    assert isd_selected(card)
    assert not piv_selected(card)


def test_select_isd_by_full_aid_returns_its_fci(card: VirtualCard) -> None:
    resp = tx(card, SELECT_ISD + "00")
    assert resp.sw == SW.OK
    (fci,) = parse_tlvs(resp.data)
    assert fci.tag == 0x6F
    assert find_tlv(fci.value, 0x84) is not None
    assert find_tlv(fci.value, 0x84).value == ISD_AID  # type: ignore[union-attr]
    proprietary = find_tlv(fci.value, 0xA5)
    assert proprietary is not None
    assert [t.tag for t in proprietary.children()] == [0x73, 0x9F65]
    recognition = find_tlv(proprietary.value, 0x73)
    assert recognition is not None
    # GP card recognition data: the GP RID OID, then SCP 03 with i=70 under tag 64
    assert encode_tlv(0x64, encode_tlv(0x06, h("2A864886FC6B 04 03 70"))) in recognition.value


def test_select_piv_by_full_aid_returns_its_application_property_template(card: VirtualCard) -> None:
    resp = tx(card, SELECT_PIV + "00")
    assert resp.sw == SW.OK
    (apt,) = parse_tlvs(resp.data)
    assert apt.tag == 0x61
    assert find_tlv(apt.value, 0x4F) is not None
    assert PIV_AID.endswith(find_tlv(apt.value, 0x4F).value)  # type: ignore[union-attr]
    assert piv_selected(card)
    assert not isd_selected(card)


@pytest.mark.parametrize("prefix", ["A000000308", "A00000030800001000", "A0000003080000100001"])
def test_select_by_partial_aid(card: VirtualCard, prefix: str) -> None:
    assert sw(card, f"00 A4 04 00 {len(prefix) // 2:02X} {prefix}") == SW.OK
    assert piv_selected(card)


def test_select_legacy_card_manager_aid_selects_the_isd(card: VirtualCard) -> None:
    assert sw(card, SELECT_PIV) == SW.OK
    resp = tx(card, "00 A4 04 00 08 A000000003000000 00")
    assert resp.sw == SW.OK
    assert ISD_AID in resp.data
    assert isd_selected(card)


def test_select_next_occurrence_walks_the_registry(card: VirtualCard) -> None:
    # A0 00 00 is a prefix of both the ISD's and the PIV applet's AID
    first = tx(card, "00 A4 04 00 03 A00000 00")
    assert first.sw == SW.OK and ISD_AID in first.data
    assert isd_selected(card)
    assert sw(card, "00 A4 04 02 03 A00000") == SW.OK
    assert piv_selected(card)
    assert sw(card, "00 A4 04 02 03 A00000") == SW.FILE_NOT_FOUND
    assert piv_selected(card)  # a failed SELECT keeps the selection
    assert sw(card, "00 A4 04 00 03 A00000") == SW.OK  # first occurrence again
    assert isd_selected(card)


@pytest.mark.parametrize("apdu", ["00 A4 04 00", "00 A4 04 00 00", "00 A4 04 02"])
def test_select_without_aid_selects_the_default_application(card: VirtualCard, apdu: str) -> None:
    assert sw(card, SELECT_PIV) == SW.OK
    resp = tx(card, apdu)
    assert resp.sw == SW.OK
    assert find_tlv(resp.data, 0x6F) is not None
    assert isd_selected(card)


def test_unknown_aid_keeps_the_selection(card: VirtualCard) -> None:
    assert sw(card, SELECT_PIV) == SW.OK
    assert sw(card, "00 A4 04 00 05 D276000124") == SW.FILE_NOT_FOUND
    assert piv_selected(card)


@pytest.mark.parametrize("p2", ["0C", "0E"])
def test_select_p2_0c_returns_no_data(card: VirtualCard, p2: str) -> None:
    assert tx(card, f"00 A4 04 {p2} 0B A000000308000010000100") == ResponseAPDU(sw=SW.OK)
    assert piv_selected(card)
    assert tx(card, "00 A4 04 0C 08 A000000151000000 00") == ResponseAPDU(sw=SW.OK)


# -- GET DATA (ISD) ------------------------------------------------------------------
def test_get_data_cplc(card: VirtualCard) -> None:
    resp = tx(card, "00 CA 9F 7F 00")
    assert resp.sw == SW.OK
    (cplc,) = parse_tlvs(resp.data)
    assert cplc.tag == 0x9F7F
    assert len(cplc.value) == 42
    assert tx(card, "80 CA 9F 7F 00") == resp  # GP class byte as well


@pytest.mark.parametrize(("p1p2", "expected"), [("0042", "42 01 42"), ("0045", "45 01 45")])
def test_get_data_iin_and_cin(card: VirtualCard, p1p2: str, expected: str) -> None:
    assert tx(card, f"00 CA {p1p2} 00") == ResponseAPDU(h(expected))


def test_get_data_card_data(card: VirtualCard) -> None:
    resp = tx(card, "00 CA 00 66 00")
    assert resp.sw == SW.OK
    (card_data,) = parse_tlvs(resp.data)
    assert card_data.tag == 0x66
    (recognition,) = card_data.children()
    assert recognition.tag == 0x73
    tags = [t.tag for t in recognition.children()]
    assert tags[0] == 0x06 and 0x64 in tags


def test_get_data_key_information_template(card: VirtualCard) -> None:
    resp = tx(card, "00 CA 00 E0 00")
    assert resp.sw == SW.OK
    (template,) = parse_tlvs(resp.data)
    assert template.tag == 0xE0
    # key id 1-3 of key set FF, AES (88) 16 bytes; SCP11b key 13 of KVN 01
    assert [(t.tag, t.value) for t in template.children()] == [
        (0xC0, h("01 FF 88 10")),
        (0xC0, h("02 FF 88 10")),
        (0xC0, h("03 FF 88 10")),
        (0xC0, h("13 01 B1 20")),  # the default profile's SCP11b key pair (ECC private key, 32 bytes)
    ]


# -- MANAGE CHANNEL --------------------------------------------------------------------
def test_open_assigns_the_lowest_free_channels_then_runs_out(card: VirtualCard) -> None:
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("01"))
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("02"))
    assert tx(card, "00 70 00 00") == ResponseAPDU(h("03"))  # no Le is accepted too
    assert sw(card, "00 70 00 00 01") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert sw(card, "00 70 00 00 00") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED  # Le 00 is fine, no channel left
    assert sorted(card.channels) == [0, 1, 2, 3]


def test_open_accepts_le_00_as_many_hosts_send_it(card: VirtualCard) -> None:
    assert tx(card, "00 70 00 00 00") == ResponseAPDU(h("01"))


def test_open_a_specific_channel(card: VirtualCard) -> None:
    assert tx(card, "00 70 00 02") == ResponseAPDU()
    assert isd_selected(card, 2)  # opened from channel 0: the default application
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("01"))
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("03"))
    assert sw(card, "00 70 00 02") == SW.CONDITIONS_NOT_SATISFIED  # already open


def test_close_a_channel(card: VirtualCard) -> None:
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("01"))
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("02"))
    assert tx(card, "00 70 80 02") == ResponseAPDU()
    assert sw(card, "02 CA 9F 7F 00") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert tx(card, "01 70 80 00") == ResponseAPDU()  # P2=00: the channel the command came on
    assert sw(card, "01 CA 9F 7F 00") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert sorted(card.channels) == [0]
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("01"))  # free again


def test_each_channel_answers_for_its_own_selection(card: VirtualCard) -> None:
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("01"))
    assert sw(card, on(1, SELECT_PIV)) == SW.OK
    assert isd_selected(card, 0) and not piv_selected(card, 0)
    assert piv_selected(card, 1) and not isd_selected(card, 1)
    assert tx(card, on(1, GET_VERSION)).data == h("05 04 03")
    assert sw(card, "00 CA 9F 7F 00") == SW.OK
    # PIN status is per channel too
    assert sw(card, on(1, VERIFY_PIN)) == SW.OK
    assert sw(card, on(1, PIN_STATUS)) == SW.OK
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("02"))
    assert isd_selected(card, 2)


def test_a_channel_opened_from_another_inherits_its_selection(card: VirtualCard) -> None:
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("01"))
    assert sw(card, on(1, SELECT_PIV)) == SW.OK
    assert tx(card, "01 70 00 00 01") == ResponseAPDU(h("02"))
    assert piv_selected(card, 2)


def test_further_interindustry_class_reaches_channels_beyond_3() -> None:
    card = build_card(load_profile(), MemoryStore())
    card.max_channels = 6
    card.power_on()
    assert tx(card, "00 70 00 05") == ResponseAPDU()
    assert sw(card, "41 CA 9F 7F 00") == SW.OK  # CLA 41: channel 4 + 1
    assert sw(card, "40 CA 9F 7F 00") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED


# -- command chaining --------------------------------------------------------------------
def test_chained_links_are_assembled(card: VirtualCard) -> None:
    assert sw(card, SELECT_PIV) == SW.OK
    assert tx(card, "10 20 00 80 03 313233") == ResponseAPDU()
    assert tx(card, "10 20 00 80 02 3435") == ResponseAPDU()
    assert tx(card, "00 20 00 80 03 36FFFF") == ResponseAPDU()  # VERIFY of 313233343536FFFF
    assert sw(card, PIN_STATUS) == SW.OK


def test_chain_with_a_wrong_assembled_pin_counts_once(card: VirtualCard) -> None:
    assert sw(card, SELECT_PIV) == SW.OK
    assert sw(card, "10 20 00 80 04 31323334") == SW.OK
    assert sw(card, "00 20 00 80 04 3535FFFF") == 0x63C2
    assert sw(card, PIN_STATUS) == 0x63C2


def test_chains_are_per_channel(card: VirtualCard) -> None:
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("01"))
    assert sw(card, on(1, SELECT_PIV)) == SW.OK
    assert sw(card, on(1, "10 20 00 80 04 31323334")) == SW.OK
    assert isd_selected(card, 0)  # channel 0 is not part of channel 1's chain
    assert sw(card, on(1, "00 20 00 80 04 3536FFFF")) == SW.OK
    assert sw(card, on(1, PIN_STATUS)) == SW.OK


def test_chain_of_65535_bytes_is_dispatched(card: VirtualCard) -> None:
    for _ in range(257):
        assert sw(card, "10 12 00 00 FF" + "AA" * 255) == SW.OK
    # the last link completes 65535 bytes; the ISD then answers the unknown INS
    assert sw(card, "00 12 00 00") == SW.INS_NOT_SUPPORTED


def test_chain_longer_than_65535_bytes_is_refused(card: VirtualCard) -> None:
    for _ in range(257):
        assert sw(card, "10 12 00 00 FF" + "AA" * 255) == SW.OK
    assert sw(card, "00 12 00 00 01 AA") == SW.NOT_ENOUGH_MEMORY
    assert isd_selected(card)


# -- long responses: 61xx and GET RESPONSE -------------------------------------------
def test_short_le_splits_and_get_response_drains(card: VirtualCard) -> None:
    whole = tx(card, SELECT_ISD + "00").data
    assert len(whole) == 0x43
    first = tx(card, SELECT_ISD + "10")
    assert first == ResponseAPDU(whole[:0x10], 0x6133)
    second = tx(card, "00 C0 00 00 10")
    assert second == ResponseAPDU(whole[0x10:0x20], 0x6123)
    rest = tx(card, "00 C0 00 00 23")
    assert rest == ResponseAPDU(whole[0x20:], SW.OK)
    assert sw(card, "00 C0 00 00 00") == SW.CONDITIONS_NOT_SATISFIED


def test_get_response_le_00_fetches_up_to_256(card: VirtualCard) -> None:
    whole = tx(card, SELECT_ISD + "00").data
    assert tx(card, SELECT_ISD + "01") == ResponseAPDU(whole[:1], 0x6142)
    assert tx(card, "00 C0 00 00 00") == ResponseAPDU(whole[1:])


def test_long_object_with_short_le_then_get_response(card: VirtualCard) -> None:
    assert sw(card, SELECT_PIV) == SW.OK
    whole = tx(card, f"00 CB 3F FF 00 00 05 {CERT_9A} 00 00")
    assert whole.sw == SW.OK
    assert len(whole.data) > 256  # the test needs an object longer than one short response
    resp = tx(card, f"00 CB 3F FF 05 {CERT_9A} 00")
    got = resp.data
    assert len(got) == 256
    while resp.sw != SW.OK:
        left = len(whole.data) - len(got)
        assert resp.sw == 0x6100 | (left if left < 256 else 0)
        resp = tx(card, "00 C0 00 00 00")
        got += resp.data
    assert got == whole.data


def test_extended_le_returns_everything_at_once(card: VirtualCard) -> None:
    resp = tx(card, "00 A4 04 00 00 00 08 A000000151000000 00 00")
    assert resp.sw == SW.OK
    assert len(resp.data) == 0x43


def test_another_command_drops_the_pending_response(card: VirtualCard) -> None:
    assert sw(card, SELECT_ISD + "10") == 0x6133
    assert sw(card, "00 CA 00 42 00") == SW.OK
    assert sw(card, "00 C0 00 00 00") == SW.CONDITIONS_NOT_SATISFIED


def test_pending_response_is_per_channel(card: VirtualCard) -> None:
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("01"))
    assert sw(card, SELECT_ISD + "10") == 0x6133
    assert sw(card, "01 C0 00 00 00") == SW.CONDITIONS_NOT_SATISFIED
    assert sw(card, "01 CA 00 42 00") == SW.OK
    assert tx(card, "00 C0 00 00 00").sw == SW.OK


# -- power -------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["reset", "power_off", "power_cycle"])
def test_power_loss_forgets_the_verified_pin(card: VirtualCard, how: str) -> None:
    assert sw(card, SELECT_PIV) == SW.OK
    assert sw(card, VERIFY_PIN) == SW.OK
    assert sw(card, PIN_STATUS) == SW.OK
    if how == "reset":
        card.reset()
    elif how == "power_off":
        card.power_off()  # the next APDU powers the card on again
    else:
        card.power_off()
        card.power_on()
    assert isd_selected(card)
    assert sw(card, SELECT_PIV) == SW.OK
    assert sw(card, PIN_STATUS) == 0x63C3


def test_reset_closes_channels_and_restores_the_default_selection(card: VirtualCard) -> None:
    assert tx(card, "00 70 00 00 01") == ResponseAPDU(h("01"))
    assert sw(card, SELECT_PIV) == SW.OK
    card.reset()
    assert sorted(card.channels) == [0]
    assert sw(card, "01 CA 9F 7F 00") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert isd_selected(card)


def test_reset_ends_the_secure_channel_session(card: VirtualCard) -> None:
    ext_auth = "84 82 33 00 10" + "00" * 16
    assert sw(card, ext_auth) == SW.CONDITIONS_NOT_SATISFIED  # no INITIALIZE UPDATE yet
    assert tx(card, "80 50 00 00 08 0001020304050607 00").sw == SW.OK
    assert card.channels[0].session is not None
    card.reset()
    assert card.channels[0].session is None
    assert sw(card, ext_auth) == SW.CONDITIONS_NOT_SATISFIED


def test_reset_drops_pending_response_and_chain(card: VirtualCard) -> None:
    assert sw(card, SELECT_ISD + "10") == 0x6133
    card.reset()
    assert sw(card, "00 C0 00 00 00") == SW.CONDITIONS_NOT_SATISFIED
    assert sw(card, "10 12 00 00 01 AA") == SW.OK
    card.reset()
    assert sw(card, "00 CA 00 42 00") == SW.OK  # not 6883


def test_reset_hooks_run_on_reset_and_power_off(card: VirtualCard) -> None:
    calls: list[str] = []
    card.on_reset.append(lambda: calls.append("x"))
    card.reset()
    card.power_off()
    assert calls == ["x", "x"]


def test_atr_comes_from_the_profile(card: VirtualCard) -> None:
    assert card.atr == load_profile().atr == h("3B8B0180730000C0657663617264BE")
