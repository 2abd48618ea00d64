"""Card management key 9B: mutual and challenge authentication, SET MANAGEMENT KEY (YubiKey)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from piv_host import (
    ALG_AES128,
    ALG_AES192,
    ALG_AES256,
    ALG_TDES,
    DEFAULT_MGMT,
    OK,
    APDUError,
    Host,
    tlv,
)

from emulator.store import Store

CERT_9C = 0x5FC10A
KEY_LEN = {ALG_TDES: 24, ALG_AES128: 16, ALG_AES192: 24, ALG_AES256: 32}


@pytest.fixture
def host() -> Host:
    return Host.fresh()


def set_management_key(host: Host, alg: int, key: bytes, *, touch: bool = False) -> int:
    return host.sw(0xFF, 0xFF, 0xFE if touch else 0xFF, bytes((alg,)) + tlv(0x9B, key))


@pytest.mark.parametrize("mutual", [True, False], ids=["mutual", "challenge"])
def test_default_3des_key_authenticates(host: Host, mutual: bool) -> None:
    host.authenticate(mutual=mutual)
    assert host.put_object(CERT_9C, b"x") == OK


@pytest.mark.parametrize("alg", [ALG_AES128, ALG_AES192, ALG_AES256, ALG_TDES])
@pytest.mark.parametrize("mutual", [True, False], ids=["mutual", "challenge"])
def test_aes_and_3des_keys_after_set_management_key(host: Host, alg: int, mutual: bool) -> None:
    host.authenticate()
    key = os.urandom(KEY_LEN[alg])
    assert set_management_key(host, alg, key) == OK
    host.card.reset()
    host.select()
    host.authenticate(key, alg, mutual=mutual)
    assert host.put_object(CERT_9C, b"x") == OK
    meta = host.metadata(0x9B)
    assert meta[0x01] == bytes((alg,)) and meta[0x05] == b"\x00"


def test_wrong_key_fails_mutual_authentication(host: Host) -> None:
    with pytest.raises(APDUError) as err:
        host.authenticate(bytes(24))
    assert err.value.sw == 0x6982
    assert host.put_object(CERT_9C, b"x") == 0x6982


def test_wrong_response_fails_challenge_authentication(host: Host) -> None:
    host.ok(0x87, ALG_TDES, 0x9B, tlv(0x7C, tlv(0x81)))
    assert host.sw(0x87, ALG_TDES, 0x9B, tlv(0x7C, tlv(0x82, bytes(8)))) == 0x6982
    assert host.put_object(CERT_9C, b"x") == 0x6982


def test_response_without_a_challenge_is_refused(host: Host) -> None:
    assert host.sw(0x87, ALG_TDES, 0x9B, tlv(0x7C, tlv(0x82, bytes(8)))) == 0x6982
    assert host.sw(0x87, ALG_TDES, 0x9B, tlv(0x7C, tlv(0x80, bytes(8)) + tlv(0x81, bytes(8)))) == 0x6982


def test_algorithm_in_p1_must_match_the_key(host: Host) -> None:
    assert host.sw(0x87, ALG_AES128, 0x9B, tlv(0x7C, tlv(0x80))) == 0x6A86


def test_malformed_template_is_6a80(host: Host) -> None:
    assert host.sw(0x87, ALG_TDES, 0x9B, tlv(0x7D, tlv(0x80))) == 0x6A80
    assert host.sw(0x87, ALG_TDES, 0x9B, tlv(0x7C, tlv(0x84))) == 0x6A80


def test_set_management_key_needs_authentication(host: Host) -> None:
    assert set_management_key(host, ALG_AES128, bytes(16)) == 0x6982


def test_set_management_key_checks_length_and_records_touch(host: Host) -> None:
    host.authenticate()
    assert set_management_key(host, ALG_AES128, bytes(24)) == 0x6A80
    assert set_management_key(host, 0x11, bytes(16)) == 0x6A80
    key = os.urandom(32)
    assert set_management_key(host, ALG_AES256, key, touch=True) == OK
    assert host.metadata(0x9B)[0x02] == b"\x01\x02"  # PIN never, touch always (recorded only)


def test_default_key_metadata(host: Host) -> None:
    meta = host.metadata(0x9B)
    assert meta == {0x01: b"\x03", 0x02: b"\x01\x01", 0x05: b"\x01"}


def test_new_management_key_persists(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    host = Host.fresh(Store(path))
    host.authenticate()
    key = os.urandom(16)
    assert set_management_key(host, ALG_AES128, key) == OK
    again = Host.fresh(Store(path))
    with pytest.raises(APDUError):
        again.authenticate(DEFAULT_MGMT, ALG_TDES)
    again.authenticate(key, ALG_AES128)
