"""YubiKey vendor extensions: version, serial, SET PIN RETRIES, RESET."""

from __future__ import annotations

from pathlib import Path

import pytest
from piv_host import ALG_P256, OK, Host, pin_block

from emulator.store import Store

CERT_9A, CHUID = 0x5FC105, 0x5FC102


@pytest.fixture
def host() -> Host:
    return Host.fresh()


def test_get_version_is_a_modern_yubikey_version(host: Host) -> None:
    version = host.ok(0xFD, 0x00, 0x00)
    assert len(version) == 3 and tuple(version) >= (5, 3, 0)


def test_serial_is_random_per_card_and_persisted(tmp_path: Path) -> None:
    first = Host.fresh(Store(tmp_path / "a.sqlite")).ok(0xF8, 0x00, 0x00)
    second = Host.fresh(Store(tmp_path / "b.sqlite")).ok(0xF8, 0x00, 0x00)
    assert len(first) == 4 and first != second
    assert Host.fresh(Store(tmp_path / "a.sqlite")).ok(0xF8, 0x00, 0x00) == first


def test_serial_fits_a_signed_32_bit_integer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """yubico-piv-tool prints the serial with %d: a top bit set showed a negative serial."""
    import emulator.applets.piv.state as piv_state

    assert all(1 <= piv_state.new_serial() < 2**31 for _ in range(200))
    monkeypatch.setattr(piv_state.secrets, "randbelow", lambda n: n - 1)  # the largest draw
    serial = int.from_bytes(Host.fresh(Store(tmp_path / "c.sqlite")).ok(0xF8, 0x00, 0x00), "big")
    assert serial == 2**31 - 1


def test_set_pin_retries_needs_management_key_and_pin(host: Host) -> None:
    assert host.sw(0xFA, 5, 6) == 0x6982
    host.authenticate()
    assert host.sw(0xFA, 5, 6) == 0x6982
    assert host.verify() == OK
    assert host.sw(0xFA, 0, 6) == 0x6A86
    assert host.sw(0xFA, 5, 6) == OK
    assert host.metadata(0x80)[0x06] == b"\x05\x05"
    assert host.metadata(0x81)[0x06] == b"\x06\x06"
    assert host.sw(0x20, 0x00, 0x80) == 0x63C5  # the PIN status was cleared


def test_set_pin_retries_resets_pin_and_puk_to_defaults(host: Host) -> None:
    assert host.sw(0x24, 0x00, 0x80, pin_block("123456") + pin_block("999999")) == OK
    assert host.sw(0x24, 0x00, 0x81, pin_block("12345678") + pin_block("99999999")) == OK
    host.authenticate()
    assert host.verify("999999") == OK
    assert host.sw(0xFA, 4, 4) == OK
    assert host.verify("123456") == OK
    assert host.sw(0x24, 0x00, 0x81, pin_block("12345678") + pin_block("11111111")) == OK


def test_reset_only_when_pin_and_puk_are_blocked(host: Host) -> None:
    assert host.sw(0xFB, 0x00, 0x00) == 0x6985
    for _ in range(3):
        host.verify("000000")
    assert host.sw(0xFB, 0x00, 0x00) == 0x6985  # PUK still usable
    for _ in range(3):
        host.sw(0x2C, 0x00, 0x80, pin_block("00000000") + pin_block("000000"))
    chuid_before = host.get_object(CHUID)[0]
    serial = host.ok(0xF8, 0x00, 0x00)
    assert host.sw(0xFB, 0x00, 0x00) == OK

    assert host.verify("123456") == OK
    assert host.metadata(0x81)[0x06] == b"\x03\x03"
    host.authenticate()  # default management key again
    assert host.get_object(CERT_9A)[1] == 0x6A82  # keys and certificates gone
    assert host.sw(0xF7, 0x00, 0x9A) == 0x6A88
    assert host.metadata(0xF9)[0x01] == b"\x11"  # attestation key kept
    assert host.get_object(0x5FFF01)[1] == OK
    chuid_after, sw = host.get_object(CHUID)
    assert sw == OK and chuid_after != chuid_before  # new GUID
    assert host.ok(0xF8, 0x00, 0x00) == serial
    host.generate(0x9A, ALG_P256)
    host.ok(0xF9, 0x9A, 0x00)


def test_reset_clears_management_key_status(host: Host) -> None:
    host.authenticate()
    for _ in range(3):
        host.verify("000000")
        host.sw(0x2C, 0x00, 0x80, pin_block("00000000") + pin_block("000000"))
    assert host.sw(0xFB, 0x00, 0x00) == OK
    assert host.put_object(CERT_9A, b"x") == 0x6982
