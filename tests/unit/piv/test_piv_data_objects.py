"""SELECT and the data objects: GET DATA / PUT DATA and their access rules (SP 800-73-4)."""

from __future__ import annotations

import os

import pytest
from piv_host import OK, SELECT_PIV, Host, tlv

from emulator.iso7816 import find_tlv, parse_tlvs

CHUID, CCC, PRINTED, FACIAL, FINGERPRINTS = 0x5FC102, 0x5FC107, 0x5FC109, 0x5FC108, 0x5FC103
CERT_9A, CERT_9C, RETIRED_1, RETIRED_20, KEY_HISTORY = 0x5FC105, 0x5FC10A, 0x5FC10D, 0x5FC120, 0x5FC10C


@pytest.fixture
def host() -> Host:
    return Host.fresh()


def test_select_answers_application_property_template(host: Host) -> None:
    apt = parse_tlvs(host.select())
    assert [t.tag for t in apt] == [0x61]
    inner = {t.tag: t.value for t in apt[0].children()}
    assert inner[0x4F] == bytes.fromhex("000010000100")  # PIX + version
    assert find_tlv(inner[0x79], 0x4F).value == bytes.fromhex("A000000308")
    algs = [t.value for t in parse_tlvs(inner[0xAC]) if t.tag == 0x80]
    assert {b"\x03", b"\x07", b"\x11", b"\x14", b"\x0c"} <= set(algs)
    assert parse_tlvs(inner[0xAC])[-1].tag == 0x06


@pytest.mark.parametrize("aid", ["A000000308000010000100", "A00000030800001000", "A000000308"])
def test_select_by_full_or_truncated_aid(aid: str) -> None:
    host = Host.fresh()
    raw = bytes.fromhex(aid)
    resp = host.card.transmit(bytes((0x00, 0xA4, 0x04, 0x00, len(raw))) + raw)
    assert resp[-2:] == b"\x90\x00"
    assert resp[0] == 0x61


def test_chuid_has_random_nonzero_guid() -> None:
    guids = []
    for _ in range(2):
        out, sw = Host.fresh().get_object(CHUID)
        assert sw == OK
        content = parse_tlvs(out)[0]
        assert content.tag == 0x53
        fields = {t.tag: t.value for t in content.children()}
        assert len(fields[0x30]) == 25 and len(fields[0x34]) == 16 and any(fields[0x34])
        assert 0x35 in fields and 0x3E in fields and 0xFE in fields
        guids.append(fields[0x34])
    assert guids[0] != guids[1]


def test_ccc_and_discovery_objects(host: Host) -> None:
    out, sw = host.get_object(CCC)
    assert sw == OK
    fields = {t.tag: t.value for t in parse_tlvs(out)[0].children()}
    assert fields[0xF0][:5] == bytes.fromhex("A000000116") and fields[0xF1] == b"\x21"
    out, sw = host.get_object(0x7E)
    assert sw == OK
    discovery = parse_tlvs(out)[0]
    assert discovery.tag == 0x7E
    fields = {t.tag: t.value for t in discovery.children()}
    assert fields[0x4F] == bytes.fromhex("A000000308000010000100")
    assert fields[0x5F2F] == b"\x40\x00"


def test_default_profile_provisions_9a_certificate(host: Host) -> None:
    out, sw = host.get_object(CERT_9A)
    assert sw == OK
    fields = {t.tag: t.value for t in parse_tlvs(out)[0].children()}
    assert fields[0x71] == b"\x00"
    from cryptography import x509

    cert = x509.load_der_x509_certificate(fields[0x70])
    assert "TEST ONLY" in cert.subject.rfc4514_string()


def test_missing_object_is_6a82(host: Host) -> None:
    assert host.get_object(CERT_9C)[1] == 0x6A82
    assert host.get_object(KEY_HISTORY)[1] == 0x6A82
    assert host.get_object(0x5FC0FF)[1] == 0x6A82  # not a PIV tag at all


def test_get_data_checks_p1p2_and_tag_list(host: Host) -> None:
    assert host.sw(0xCB, 0x3F, 0xFE, tlv(0x5C, b"\x5f\xc1\x02")) == 0x6A86
    assert host.sw(0xCB, 0x3F, 0xFF, tlv(0x53, b"\x5f\xc1\x02")) == 0x6A80
    assert host.sw(0xCB, 0x3F, 0xFF, tlv(0x5C, b"")) == 0x6A80


def test_put_data_needs_management_key(host: Host) -> None:
    assert host.put_object(CERT_9C, tlv(0x70, b"x")) == 0x6982
    host.authenticate()
    assert host.put_object(CERT_9C, tlv(0x70, b"x") + tlv(0x71, b"\x00")) == OK
    out, sw = host.get_object(CERT_9C)
    assert sw == OK and out == tlv(0x53, tlv(0x70, b"x") + tlv(0x71, b"\x00"))


def test_put_empty_object_deletes_it(host: Host) -> None:
    host.authenticate()
    assert host.put_object(RETIRED_20, b"abc") == OK
    assert host.get_object(RETIRED_20)[1] == OK
    assert host.put_object(RETIRED_20, b"") == OK
    assert host.get_object(RETIRED_20)[1] == 0x6A82


def test_chained_put_data_of_2000_byte_certificate(host: Host) -> None:
    host.authenticate()
    cert = os.urandom(2000)
    content = tlv(0x70, cert) + tlv(0x71, b"\x00") + tlv(0xFE)
    data = tlv(0x5C, b"\x5f\xc1\x0d") + tlv(0x53, content)
    links = [data[i : i + 200] for i in range(0, len(data), 200)]
    for i, link in enumerate(links):
        cla = 0x00 if i == len(links) - 1 else 0x10
        resp = host.card.transmit(bytes((cla, 0xDB, 0x3F, 0xFF, len(link))) + link)
        assert resp == b"\x90\x00"
    out, sw = host.get_object(RETIRED_1)  # 61xx + GET RESPONSE collected by the host
    assert sw == OK
    assert parse_tlvs(out)[0].value == content


def test_discovery_object_is_written_with_7e(host: Host) -> None:
    host.authenticate()
    new = tlv(0x4F, bytes.fromhex("A000000308000010000100")) + tlv(0x5F2F, b"\x60\x10")
    assert host.sw(0xDB, 0x3F, 0xFF, tlv(0x7E, new)) == OK
    assert host.get_object(0x7E) == (tlv(0x7E, new), OK)


def test_put_data_refuses_unknown_tags_and_huge_objects(host: Host) -> None:
    host.authenticate()
    assert host.put_object(0x5FC0AA, b"x") == 0x6A80
    assert host.put_object(CERT_9C, os.urandom(13000)) == 0x6A84
    assert host.sw(0xDB, 0x3F, 0xFF, tlv(0x53, b"x")) == 0x6A80


@pytest.mark.parametrize("tag", [PRINTED, FACIAL, FINGERPRINTS])
def test_pin_protected_objects_need_verify(host: Host, tag: int) -> None:
    host.authenticate()
    assert host.put_object(tag, b"secret") == OK
    assert host.get_object(tag)[1] == 0x6982
    assert host.verify() == OK
    assert host.get_object(tag) == (tlv(0x53, b"secret"), OK)
    host.card.transmit(SELECT_PIV)  # re-selection drops the security status in this runtime
    host.sw(0x20, 0xFF, 0x80)
    assert host.get_object(tag)[1] == 0x6982
