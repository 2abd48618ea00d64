"""Secure channel rules of the ISD on a whole card (gp-scp.md §1.2, §1.3, §2.7, §3.7)."""

from __future__ import annotations

import pytest
from isd_helpers import DEFAULT_KEY, ISD_AID, GPHost, h, make_card, make_profile, scpbase, transmit

from emulator.card import VirtualCard

MANAGEMENT_COMMANDS = [
    pytest.param("80D8018100", id="PUT KEY"),
    pytest.param("80E40000064F04A0000001", id="DELETE"),
    pytest.param("80F0807F", id="SET STATUS"),
    pytest.param("80E2900003420101", id="STORE DATA"),
    pytest.param("80E60C0000", id="INSTALL"),
]


@pytest.fixture
def card() -> VirtualCard:
    return make_card()


@pytest.mark.parametrize("apdu", [*MANAGEMENT_COMMANDS, pytest.param("80F28002024F0000", id="GET STATUS")])
def test_management_commands_refuse_without_secure_channel(card: VirtualCard, apdu: str) -> None:
    assert transmit(card, apdu).sw == 0x6982


@pytest.mark.parametrize("apdu", MANAGEMENT_COMMANDS)
def test_management_commands_refuse_at_level_without_c_mac(card: VirtualCard, apdu: str) -> None:
    host = GPHost(card)
    host.open(0x00)
    assert host.send(apdu).sw == 0x6982


def test_get_status_is_allowed_after_authentication_without_c_mac(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x00)
    assert host.send("80F28002024F0000").sw == 0x9000


def test_get_data_needs_no_secure_channel(card: VirtualCard) -> None:
    resp = transmit(card, "80CA00CF00")
    assert resp.sw == 0x9000
    assert resp.data == h("CF0A00000000000000000000")


def test_initialize_update_with_unknown_kvn_answers_6a88(card: VirtualCard) -> None:
    assert transmit(card, "8050300008010203040506070800").sw == 0x6A88


@pytest.mark.parametrize("apdu", ["8050000108010203040506070800", "80500000070102030405060700"])
def test_initialize_update_rejects_bad_p2_and_length(card: VirtualCard, apdu: str) -> None:
    assert transmit(card, apdu).sw in (0x6A86, 0x6700)


def test_external_authenticate_without_initialize_update_answers_6985(card: VirtualCard) -> None:
    assert transmit(card, "8482010010A5E66CD1A836E3A47CD3B3F7B689AE8F").sw == 0x6985


def test_wrong_keys_give_6300_and_wipe_the_session(card: VirtualCard) -> None:
    good = GPHost(card)
    iu = transmit(card, good.host.initialize_update_apdu(0))
    good.host.process_initialize_update_response(iu.data)
    ea = bytearray(good.host.external_authenticate_apdu(0x01))
    ea[6] ^= 0x01  # host cryptogram
    assert transmit(card, bytes(ea)).sw == 0x6300
    # the session is gone: the original EXTERNAL AUTHENTICATE cannot be replayed
    ea[6] ^= 0x01
    assert transmit(card, bytes(ea)).sw == 0x6985


def test_host_with_wrong_static_keys_cannot_authenticate(card: VirtualCard) -> None:
    wrong = GPHost(card, bytes(16))
    iu = transmit(card, wrong.host.initialize_update_apdu(0))
    assert iu.sw == 0x9000
    with pytest.raises(scpbase.AuthenticationError):
        wrong.host.process_initialize_update_response(iu.data)


def test_bad_c_mac_answers_6982_and_closes_the_session(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    wire = bytearray(host.host.wrap(h("80CA006600")))
    wire[-2] ^= 0x80
    assert transmit(card, bytes(wire)).sw == 0x6982
    assert transmit(card, "80F28002024F0000").sw == 0x6982  # no session left


def test_plain_command_inside_c_mac_session_is_refused_and_closes(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert transmit(card, "80F28002024F0000").sw == 0x6982
    assert host.send("80F28002024F0000").sw == 0x6982


def test_functional_error_keeps_the_session_open(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x33)
    assert host.send("80CA00FE00").sw == 0x6A88  # error SW: no R-MAC, session stays
    resp = host.send("80F28002024F0000")
    assert resp.sw == 0x9000
    assert ISD_AID in resp.data


def test_select_ends_the_session(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert transmit(card, "00A4040008A000000151000000").sw == 0x9000
    assert host.send("80F28002024F0000").sw == 0x6982


def test_new_initialize_update_aborts_the_current_session(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert transmit(card, "8050000008010203040506070800").sw == 0x9000
    assert host.send("80F28002024F0000").sw == 0x6982


@pytest.mark.parametrize("level", [0x11, 0x13, 0x33])
def test_r_mac_levels_are_refused_when_i_parameter_lacks_them(level: int) -> None:
    card = make_card(make_profile(i=0x10))
    host = GPHost(card)
    iu = transmit(card, host.host.initialize_update_apdu(0))
    host.host.process_initialize_update_response(iu.data)
    ea = bytearray(host.host.external_authenticate_apdu(0x01))
    ea[2] = level  # the card checks P1 against i before the MAC
    assert transmit(card, bytes(ea)).sw == 0x6A86


@pytest.mark.parametrize("level", [0x00, 0x01, 0x03, 0x11, 0x13, 0x33])
def test_every_level_round_trips_through_the_independent_host(card: VirtualCard, level: int) -> None:
    host = GPHost(card)
    host.open(level)
    for _ in range(3):
        resp = host.send("80F28002024F0000")
        assert resp.sw == 0x9000 and ISD_AID in resp.data
    assert host.send("80CA006600").data.startswith(h("66"))


@pytest.mark.parametrize("level", [0x00, 0x01, 0x03])
def test_scp02_levels_round_trip_through_the_independent_host(level: int) -> None:
    card = make_card(
        make_profile(
            keysets=[
                {"kvn": 0x20, "scp": "02", "enc": DEFAULT_KEY.hex(), "mac": DEFAULT_KEY.hex(), "dek": DEFAULT_KEY.hex()}
            ],
            scp02_i=0x55,
        )
    )
    host = GPHost(card, scp=2, i02=0x55)
    host.open(level)
    for _ in range(3):
        assert host.send("80F28002024F0000").sw == 0x9000


def test_sessions_are_per_logical_channel(card: VirtualCard) -> None:
    assert transmit(card, "0070000001").data == b"\x01"
    assert transmit(card, "01A4040008A000000151000000").sw == 0x9000
    basic, other = GPHost(card), GPHost(card, channel=1)
    basic.open(0x03)
    other.open(0x33)
    assert other.send("81F28002024F0000").sw == 0x9000
    assert basic.send("80F28002024F0000").sw == 0x9000
    assert transmit(card, "0070800100").sw == 0x9000  # closing channel 1 ends its session only
    assert basic.send("80CA006600").sw == 0x9000


def test_sequence_counter_advances_with_every_initialize_update(card: VirtualCard) -> None:
    counters = []
    for _ in range(3):
        iu = transmit(card, "8050000008010203040506070800")
        counters.append(int.from_bytes(iu.data[-3:], "big"))
    assert counters == sorted(set(counters)) and len(counters) == 3
    assert transmit(card, "80CA00C100").data == h("C103") + counters[-1].to_bytes(3, "big")


def test_manage_channel_inside_an_r_mac_session_is_answered_plain(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x33)
    assert bytes(transmit(card, "0070000001")) == h("019000")
    assert host.send("80F28002024F0000").sw == 0x9000
