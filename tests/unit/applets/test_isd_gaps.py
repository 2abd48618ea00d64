"""The GP gaps of issue 13 on a whole card, sans I/O: DELETE by key identifier, GET DATA 67 / D3 /
2F00 / FF21, SET STATUS 60, SCP11 in the card recognition data, and the failed-authentication
counters with the factory reset of the ``yubikey-5.7`` persona."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from isd_helpers import PIV_AID, GPHost, h, isd_of, make_card, make_profile, transmit

from emulator.applets.isd_lockout import YUBIKEY_LIMIT
from emulator.applets.isd_objects import NOMINAL_NVM, NOMINAL_RAM
from emulator.card import VirtualCard
from emulator.iso7816 import parse_tlvs
from emulator.profile import Profile
from emulator.store import MemoryStore, Store

SELECT_ISD = "00A4040008A000000151000000"
SELECT_PIV = "00A404000BA000000308000010000100"
GP_OID = h("2A864886FC6B")
IU = "8050000008" + "11" * 8 + "00"
SCP11B_GARBAGE = "8088011308" + "00" * 8  # what yubikit's reset() sends to the SCP11b key


def persona_card(name: str, store: Store | None = None) -> VirtualCard:
    data = tomllib.loads(resources.files("emulator.profiles").joinpath(f"{name}.toml").read_text())
    return make_card(Profile.from_dict(data, source=f"{name}.toml", state_dir=Path("/nonexistent")), store)


def tlvs(data: bytes) -> list[tuple[int, bytes]]:
    return [(t.tag, bytes(t.value)) for t in parse_tlvs(data)]


def key_refs(card: VirtualCard) -> set[tuple[int, int]]:
    """(KID, KVN) of every key in GET DATA E0 (either shape), read in the clear after a SELECT."""
    assert transmit(card, SELECT_ISD).sw == 0x9000  # ends any session on the basic channel
    data = transmit(card, "80CA00E000").data
    items = tlvs(data)
    if items and items[0][0] == 0xE0:
        items = tlvs(items[0][1])
    return {(v[0], v[1]) for tag, v in items if tag == 0xC0}


# -- DELETE key by key identifier alone (GPCS §11.2.2.3) ---------------------------------------------
def test_delete_by_key_identifier_alone_when_scp11a_could_still_manage_the_card() -> None:
    card = make_card()
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80E4000003D00101").sw == 0x6985  # only an SCP11b key would be left
    assert host.send("80E4000003D00104").sw == 0x6A88  # no key 04 in a key set
    assert host.send("80E4000103D00101").sw == 0x6A86  # P2 01 is a YubiKey extension
    scp11 = isd_of(card).scp11
    scp11.put(
        0x11, 0x03, private=ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
    )
    ca = ec.generate_private_key(ec.SECP256R1()).public_key()
    scp11.put(0x10, 0x03, public=ca.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80E4000003D00102").sw == 0x9000  # SCP11a can manage: every key set goes
    assert {kid for kid, _ in key_refs(card)} == {0x10, 0x11, 0x13}
    assert transmit(card, "8050000008" + "00" * 8 + "00").sw == 0x6A88  # no key set any more


def test_yubikey_delete_last_lets_every_key_set_go() -> None:
    card = persona_card("yubikey-5.7")
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80E4000003D00101").sw == 0x6985
    assert host.send("80E4000103D00101").sw == 0x9000  # P2 01: yubikit's delete_last
    assert {kid for kid, _ in key_refs(card)} == {0x13}


def test_delete_by_key_identifier_still_deletes_scp11_keys() -> None:
    card = make_card()
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80E4000003D00113").sw == 0x9000
    assert host.send("80E4000003D00113").sw == 0x6A88  # gone already
    assert key_refs(card) == {(kid, 0xFF) for kid in (1, 2, 3)}


def test_delete_p2_01_is_refused_for_an_application() -> None:
    card = make_card()
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80E400010D4F0B" + PIV_AID.hex()).sw == 0x6A86


# -- GET DATA 67, D3, 2F00, FF21 -----------------------------------------------------------------------
def test_card_capability_information_lists_each_protocol() -> None:
    card = make_card()
    (tag, body), *_ = tlvs(transmit(card, "80CA006700").data)
    assert tag == 0x67
    entries = [dict(tlvs(v)) for t, v in tlvs(body) if t == 0xA0]
    assert entries[0] == {0x80: b"\x03", 0x81: b"\x70", 0x82: b"\x07"}  # SCP03 i=70, AES-128/192/256
    assert entries[-1] == {0x80: b"\x11", 0x81: h("000103")}  # SCP11b, a, c
    assert all(e[0x80] != b"\x02" for e in entries)  # no SCP02 key set on this card


def test_current_security_level_follows_the_channel() -> None:
    card = make_card()
    assert transmit(card, "80CA00D300").data == h("D30100")
    for level, expected in ((0x01, 0x81), (0x03, 0x83)):
        host = GPHost(card, kvn=0xFF)
        host.open(level)
        assert host.send("80CA00D300").data == bytes((0xD3, 0x01, expected))


def test_list_of_applications_shows_what_can_be_selected() -> None:
    card = make_card()
    assert transmit(card, "80CA2F0000").data == bytes.fromhex("610D4F0B") + PIV_AID
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80F040800B" + PIV_AID.hex()).sw == 0x9000  # lock PIV
    assert host.send("80CA2F0000").sw == 0x6A88


def test_extended_card_resources() -> None:
    card = make_card()
    data = transmit(card, "80CAFF2100").data
    assert data[:2] == h("FF21") and data[2] == len(data) - 3  # (ISO 7816-4 parsers skip FF as padding)
    fields = dict(tlvs(data[3:]))
    assert sorted(fields) == [0x81, 0x82, 0x83]
    assert int.from_bytes(fields[0x81], "big") == len(isd_of(card).records) == 1
    assert len(fields[0x82]) == 4 and 0 < int.from_bytes(fields[0x82], "big") < NOMINAL_NVM
    assert int.from_bytes(fields[0x83], "big") == NOMINAL_RAM


# -- SET STATUS 60 -------------------------------------------------------------------------------------
def test_set_status_60_locks_and_unlocks_the_card_with_its_applications() -> None:
    store = MemoryStore()
    card = make_card(store=store)
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80F0608008A000000151000000").sw == 0x9000
    assert isd_of(card).card_life_cycle == 0x7F
    assert transmit(card, SELECT_PIV).sw == 0x6A82
    assert transmit(card, SELECT_ISD).sw == 0x6283
    assert isd_of(make_card(store=store)).records[0].life_cycle & 0x80  # persisted
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80F0608008A000000151000000").sw == 0x6985  # locked already
    assert host.send("80F0600008A000000151000000").sw == 0x9000
    assert isd_of(card).card_life_cycle == 0x0F
    assert transmit(card, SELECT_PIV).sw == 0x9000


def test_set_status_60_unlock_leaves_an_application_locked_on_its_own() -> None:
    card = make_card()
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80F040800B" + PIV_AID.hex()).sw == 0x9000
    assert host.send("80F0608008A000000151000000").sw == 0x9000
    host = GPHost(card, kvn=0xFF)
    host.open(0x01)
    assert host.send("80F0600008A000000151000000").sw == 0x9000
    assert transmit(card, SELECT_ISD).sw == 0x9000
    assert transmit(card, SELECT_PIV).sw == 0x6A82  # still locked by its own SET STATUS 40


# -- card recognition data lists SCP11 ------------------------------------------------------------------
def _protocols(recognition: bytes) -> list[bytes]:
    return [dict(tlvs(v))[0x06] for t, v in tlvs(recognition) if t == 0x64]


def test_card_recognition_data_lists_scp11_per_persona() -> None:
    (tag, body), *_ = tlvs(transmit(make_card(), "80CA006600").data)
    assert tag == 0x66
    (tag73, recognition), *_ = tlvs(body)
    assert tag73 == 0x73
    assert [t for t, _ in tlvs(recognition)][:5] == [0x06, 0x60, 0x63, 0x64, 0x64]
    assert _protocols(recognition) == [GP_OID + h("040370"), GP_OID + h("041100")]
    yubikey = persona_card("yubikey-5.7")
    (tag73, recognition), *_ = tlvs(transmit(yubikey, "80CA006600").data)  # bare 73
    assert tag73 == 0x73 and _protocols(recognition) == [GP_OID + h("040370"), GP_OID + h("041100")]
    nist = persona_card("piv-nist")  # no SCP11 key: SCP03 only
    (_, body), *_ = tlvs(transmit(nist, "80CA006600").data)
    assert _protocols(tlvs(body)[0][1]) == [GP_OID + h("040370")]


# -- failed-authentication counters and the reset (yubikey-5.7) ----------------------------------------------
def test_yubikey_blocks_a_key_set_after_the_limit_and_forgets_failures_on_success() -> None:
    card = persona_card("yubikey-5.7")
    for _ in range(YUBIKEY_LIMIT - 1):
        assert transmit(card, IU).sw == 0x9000
    GPHost(card, kvn=0xFF).open(0x01)  # a successful EXTERNAL AUTHENTICATE forgets the count
    for _ in range(YUBIKEY_LIMIT):
        assert transmit(card, IU).sw == 0x9000
    assert transmit(card, IU).sw == 0x6983
    assert transmit(card, "80 50 FF 00 08" + "11" * 8 + "00").sw == 0x6983
    assert (1, 0xFF) in key_refs(card)  # blocked, not gone: the SCP11b key is not blocked yet


def test_yubikey_resets_the_security_domain_when_every_key_is_blocked() -> None:
    store = MemoryStore()
    card = persona_card("yubikey-5.7", store)
    before = transmit(card, "80CABF2106A6048302130100").data
    for _ in range(YUBIKEY_LIMIT):
        assert transmit(card, IU).sw == 0x9000
    assert transmit(card, IU).sw == 0x6983
    counted = persona_card("yubikey-5.7", store)  # the counters are in the store
    assert transmit(counted, IU).sw == 0x6983
    for _ in range(YUBIKEY_LIMIT):
        assert transmit(counted, SCP11B_GARBAGE).sw == 0x6A80
    assert transmit(counted, SCP11B_GARBAGE).sw == 0x6983  # the last key blocked: reset
    assert key_refs(counted) == {(1, 0xFF), (2, 0xFF), (3, 0xFF), (0x13, 0x01)}
    assert transmit(counted, "80CABF2106A6048302130100").data != before  # a new SCP11b key pair
    GPHost(counted, kvn=0xFF).open(0x03)  # the factory key set works again
    assert transmit(counted, SCP11B_GARBAGE).sw == 0x6A80  # counting from zero


def test_gp_standard_counts_nothing() -> None:
    card = make_card()
    for _ in range(YUBIKEY_LIMIT + 2):
        assert transmit(card, IU).sw == 0x9000
        assert transmit(card, SCP11B_GARBAGE).sw == 0x6A80
    GPHost(card, kvn=0xFF).open(0x01)


def test_mutual_authenticate_with_malformed_data_is_6a80_before_the_missing_chain() -> None:
    assert transmit(make_card(), "8082011108" + "00" * 8).sw == 0x6A80


# -- SCP02 R-MAC through the card runtime (level 10: plain commands, R-MACed answers) --------------------
def test_scp02_r_mac_levels_through_the_card_runtime() -> None:
    key = "404142434445464748494A4B4C4D4E4F"
    keyset = {"kvn": 0x20, "scp": "02", "enc": key, "mac": key, "dek": key}
    card = make_card(make_profile(scp02_i=0x35, keysets=[keyset]))
    for level in (0x10, 0x11, 0x13):
        host = GPHost(card, kvn=0x20, scp=2, i02=0x35)
        host.open(level)
        for _ in range(2):
            resp = host.send("80F28002024F0000")  # the host checks each R-MAC, chained
            assert resp.sw == 0x9000 and resp.data.startswith(h("E3"))
        assert host.send("80CA00FE00").sw == 0x6A88  # an error comes back bare
        assert host.send("80CA00D300").data == bytes((0xD3, 0x01, 0x80 | level))


def test_the_host_reads_each_protocols_i_from_either_shape() -> None:
    gpobjects = pytest.importorskip("minidriver.gpobjects")
    profile = make_profile(scp="02", i=0x35, scp02_i=0x35, scp03_i=0x71)
    for card in (make_card(profile), make_card(), persona_card("yubikey-5.7")):
        data = transmit(card, "80CA006600").data
        expected = isd_of(card).config
        assert gpobjects.scp_i_from_card_data(data, expected.scp) == expected.i
        assert gpobjects.scp_i_from_card_data(data, 0x11) == 0x00  # SCP11b, listed after it
        assert gpobjects.scp_i_from_card_data(data, 0x05) is None


# -- GET STATUS pages leave room for a 16-byte R-MAC in S16 ---------------------------------------------------
@pytest.mark.parametrize(("level", "budget"), [(0x13, 240), (0x33, 223)])
def test_get_status_pages_fit_a_short_response_in_s16(level: int, budget: int) -> None:
    from test_isd_content import TEST_ELF, TEST_MODULE, add_tiny_load_file, install_apdu

    card = make_card(make_profile(i=0x71))
    add_tiny_load_file(card)
    host = GPHost(card, kvn=0xFF, s16=True)
    host.open(0x03)
    for n in range(12):
        assert host.send(install_apdu(TEST_ELF, TEST_MODULE, TEST_MODULE + bytes([n]))).data == b"\x00"
    host = GPHost(card, kvn=0xFF, s16=True)
    host.open(level)
    p2, pages = 0x02, 0
    while True:
        wire = card.transmit(host.host.wrap(bytes([0x80, 0xF2, 0x40, p2, 0x02, 0x4F, 0x00, 0x00])))
        assert len(wire) - 2 <= 256  # data + 16-byte R-MAC (+ R-ENC padding) in one short response
        resp = host.host.unwrap(wire)
        assert len(resp) - 2 <= budget
        pages += 1
        if resp[-2:] == b"\x90\x00":
            break
        p2 = 0x03
    assert pages > 1


def test_the_host_decodes_the_card_answers_and_refuses_malformed_ones() -> None:
    gpobjects = pytest.importorskip("minidriver.gpobjects")
    iso = pytest.importorskip("minidriver.iso7816")
    card = make_card()
    caps = gpobjects.parse_card_capabilities(transmit(card, "80CA006700").data)
    assert [(c.scp, c.i_values, c.aes_key_lengths) for c in caps] == [(3, b"\x70", 7), (0x11, h("000103"), None)]
    assert gpobjects.parse_application_list(transmit(card, "80CA2F0000").data) == [PIV_AID]
    resources = gpobjects.parse_card_resources(transmit(card, "80CAFF2100").data)
    assert (resources.applications, resources.free_ram) == (1, NOMINAL_RAM)
    for bad, parse in (
        (h("6703A00100"), gpobjects.parse_card_capabilities),  # A0 without 80
        (h("6600"), gpobjects.parse_card_capabilities),
        (h("6103500141"), gpobjects.parse_application_list),  # no 4F
        (h("FF2103810101"), gpobjects.parse_card_resources),  # 82, 83 missing
        (h("FF2105810101"), gpobjects.parse_card_resources),  # wrong length
    ):
        with pytest.raises(iso.BadResponseError):
            parse(bad)
