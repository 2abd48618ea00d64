"""VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER; counters persist, status does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from piv_host import OK, SELECT_PIV, Host, pin_block

from emulator.store import Store

PRINTED = 0x5FC109
ISD_SELECT = bytes.fromhex("00A4040008A000000151000000")


@pytest.fixture
def host() -> Host:
    return Host.fresh()


def tries_left(host: Host, ref: int = 0x80) -> int:
    return host.metadata(ref)[0x06][1]


def test_verify_right_pin(host: Host) -> None:
    assert host.sw(0x20, 0x00, 0x80) == 0x63C3  # not verified yet: status query
    assert host.verify("123456") == OK
    assert host.sw(0x20, 0x00, 0x80) == OK  # verified: query answers 9000


def test_wrong_pin_counts_down_then_blocks(host: Host) -> None:
    assert host.verify("000000") == 0x63C2
    assert host.sw(0x20, 0x00, 0x80) == 0x63C2  # the query spends nothing
    assert host.verify("111111") == 0x63C1
    assert host.verify("123456") == OK  # a right PIN restores the counter
    assert tries_left(host) == 3
    for expected in (0x63C2, 0x63C1, 0x63C0):
        assert host.verify("999999") == expected
    assert host.verify("123456") == 0x6983
    assert host.sw(0x20, 0x00, 0x80) == 0x6983


def test_failed_verify_clears_pin_status(host: Host) -> None:
    assert host.verify() == OK
    assert host.verify("654321") == 0x63C2
    assert host.sw(0x20, 0x00, 0x80) == 0x63C2


def test_verify_p1_ff_resets_status(host: Host) -> None:
    assert host.verify() == OK
    assert host.sw(0x20, 0xFF, 0x80) == OK
    assert host.sw(0x20, 0x00, 0x80) == 0x63C3


@pytest.mark.parametrize(("p2", "data", "sw"), [(0x81, pin_block("12345678"), 0x6A88), (0x80, b"123456", 0x6A80)])
def test_verify_rejects_puk_reference_and_unpadded_pin(host: Host, p2: int, data: bytes, sw: int) -> None:
    assert host.sw(0x20, 0x00, p2, data) == sw
    assert tries_left(host) == 3


def test_change_pin(host: Host) -> None:
    assert host.sw(0x24, 0x00, 0x80, pin_block("123456") + pin_block("24681357")) == OK
    assert host.verify("123456") == 0x63C2
    assert host.verify("24681357") == OK
    assert host.metadata(0x80)[0x05] == b"\x00"  # no longer the default value


def test_change_pin_with_wrong_old_pin_costs_a_try(host: Host) -> None:
    assert host.sw(0x24, 0x00, 0x80, pin_block("000000") + pin_block("654321")) == 0x63C2
    assert host.verify("123456") == OK


@pytest.mark.parametrize("new", ["12345", "12ab56", "\xff\xff\xff\xff\xff\xff"])
def test_change_pin_refuses_bad_format_without_spending_a_try(host: Host, new: str) -> None:
    raw = new.encode("latin-1").ljust(8, b"\xff")
    assert host.sw(0x24, 0x00, 0x80, pin_block("123456") + raw) == 0x6A80
    assert tries_left(host) == 3
    assert host.verify("123456") == OK


def test_change_puk(host: Host) -> None:
    assert host.sw(0x24, 0x00, 0x81, pin_block("12345678") + pin_block("abcdefgh")) == OK
    assert host.sw(0x24, 0x00, 0x81, pin_block("12345678") + pin_block("87654321")) == 0x63C2
    assert host.metadata(0x81)[0x06] == b"\x03\x02"
    assert host.sw(0x24, 0x00, 0x81, pin_block("abcdefgh") + pin_block("87654321")) == OK


def test_reset_retry_counter_unblocks_pin(host: Host) -> None:
    for _ in range(3):
        host.verify("000000")
    assert host.verify("123456") == 0x6983
    assert host.sw(0x2C, 0x00, 0x80, pin_block("11111111") + pin_block("654321")) == 0x63C2
    assert host.sw(0x2C, 0x00, 0x80, pin_block("12345678") + pin_block("654321")) == OK
    assert host.metadata(0x81)[0x06] == b"\x03\x03"
    assert host.verify("654321") == OK
    assert tries_left(host) == 3


def test_reset_retry_counter_only_for_pin_reference(host: Host) -> None:
    assert host.sw(0x2C, 0x00, 0x81, pin_block("12345678") + pin_block("654321")) == 0x6A88


def test_blocked_puk_refuses_unblock(host: Host) -> None:
    for _ in range(3):
        host.sw(0x2C, 0x00, 0x80, pin_block("00000000") + pin_block("654321"))
    assert host.sw(0x2C, 0x00, 0x80, pin_block("12345678") + pin_block("654321")) == 0x6983
    assert host.sw(0x24, 0x00, 0x81, pin_block("12345678") + pin_block("87654321")) == 0x6983


def test_counters_and_pin_persist_in_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    host = Host.fresh(Store(path))
    assert host.sw(0x24, 0x00, 0x80, pin_block("123456") + pin_block("777777")) == OK
    assert host.verify("000000") == 0x63C2
    serial = host.ok(0xF8, 0x00, 0x00)
    host.card.power_off()

    again = Host.fresh(Store(path))  # a new daemon on the same file
    assert again.sw(0x20, 0x00, 0x80) == 0x63C2  # counter kept, status not
    assert again.ok(0xF8, 0x00, 0x00) == serial
    assert again.verify("777777") == OK


def test_power_cycle_clears_security_status(host: Host) -> None:
    assert host.verify() == OK
    host.authenticate()
    host.card.reset()
    host.select()
    assert host.sw(0x20, 0x00, 0x80) == 0x63C3
    assert host.put_object(PRINTED, b"x") == 0x6982


def test_selecting_another_application_clears_security_status(host: Host) -> None:
    assert host.verify() == OK
    assert host.card.transmit(ISD_SELECT)[-2:] == b"\x90\x00"
    assert host.card.transmit(SELECT_PIV)[-2:] == b"\x90\x00"
    assert host.sw(0x20, 0x00, 0x80) == 0x63C3


def test_security_status_is_per_logical_channel(host: Host) -> None:
    assert host.verify() == OK
    resp = host.card.transmit(bytes.fromhex("0070000001"))
    assert resp[-2:] == b"\x90\x00"
    channel = resp[0]
    select = bytes((channel,)) + SELECT_PIV[1:]
    assert host.card.transmit(select)[-2:] == b"\x90\x00"
    assert host.card.transmit(bytes((channel, 0x20, 0x00, 0x80))) == b"\x63\xc3"
    assert host.sw(0x20, 0x00, 0x80) == OK
