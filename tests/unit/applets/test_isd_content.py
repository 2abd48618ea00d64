"""Card content: INSTALL, DELETE, GET STATUS (incl. 6310 paging), STORE DATA, persistence."""

from __future__ import annotations

import pytest
from isd_helpers import ISD_AID, PIV_AID, GPHost, h, isd_of, make_card, make_profile, scpbase, transmit

from emulator.applets.base import Applet
from emulator.applets.isd_content import ExecutableModule, LoadFile
from emulator.card import VirtualCard
from emulator.factory import PIV_ELF_AID, PIV_MODULE_AID, build_card
from emulator.iso7816 import ResponseAPDU, iter_tlvs
from emulator.store import Store

TEST_ELF = h("F0000000010000")
TEST_MODULE = h("F000000001000001")


class TinyApplet(Applet):
    name = "tiny"


def add_tiny_load_file(card: VirtualCard) -> None:
    isd_of(card).register_load_file(LoadFile(TEST_ELF, (ExecutableModule(TEST_MODULE, lambda aid: TinyApplet(aid)),)))


def install_apdu(elf: bytes, module: bytes, aid: bytes, *, p1: int = 0x0C, privileges: bytes = b"\x00") -> bytes:
    fields = [elf, module, aid, privileges, h("C900"), b""]
    data = b"".join(bytes([len(f)]) + f for f in fields)
    return bytes([0x80, 0xE6, p1, 0x00, len(data)]) + data + b"\x00"


def aids(data: bytes) -> list[bytes]:
    return [next(c.value for c in t.children() if c.tag == 0x4F) for t in iter_tlvs(data)]


@pytest.fixture
def card() -> VirtualCard:
    c = make_card()
    add_tiny_load_file(c)
    return c


def test_get_status_lists_isd_apps_and_load_files(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    isd = host.send("80F28002024F0000")
    assert aids(isd.data) == [ISD_AID]
    apps = host.send("80F24002024F0000")
    assert apps.data == h("E3") + bytes([len(apps.data) - 2]) + h(
        "4F0BA000000308000010000100 9F700107 C503000000 C405A000000308 CC08A000000151000000".replace(" ", "")
    )
    files = host.send("80F21002024F0000")
    assert h("8409") + PIV_MODULE_AID in files.data and TEST_MODULE in files.data


def test_get_status_search_qualifier_and_tag_list(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    resp = host.send("80F240020C4F05A0000003085C034F9F7000")
    assert resp == ResponseAPDU(h("E3114F0BA000000308000010000100") + h("9F700107"))
    assert host.send("80F24002094F04D00000005C014F00").sw == 0x6A88


def test_get_status_legacy_format(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert host.send("80F28000024F0000").data == h("08A000000151000000 0F 9A".replace(" ", ""))
    assert host.send("80F24000024F0000").data == h("0B") + PIV_AID + h("0700")


@pytest.mark.parametrize(("level", "budget"), [(0x01, 256), (0x13, 248), (0x33, 239)])
def test_get_status_pages_whole_entries_with_6310(card: VirtualCard, level: int, budget: int) -> None:
    host = GPHost(card)
    host.open(0x03)
    expected = [PIV_AID]
    for n in range(12):
        aid = TEST_MODULE + bytes([n])
        assert host.send(install_apdu(TEST_ELF, TEST_MODULE, aid)).data == b"\x00"
        expected.append(aid)
    host = GPHost(card)
    host.open(level)
    pages, p2 = [], 0x02
    while True:
        resp = host.send(bytes([0x80, 0xF2, 0x40, p2, 0x02, 0x4F, 0x00, 0x00]))
        assert len(resp.data) <= budget
        pages.append(resp.data)
        if resp.sw == 0x9000:
            break
        assert resp.sw == 0x6310
        p2 = 0x03
    assert len(pages) > 1
    assert [aid for page in pages for aid in aids(page)] == expected


def test_get_status_next_without_pending_reply_is_refused(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert host.send("80F24003024F0000").sw == 0x6A88


def test_install_for_install_then_make_selectable(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    aid = h("F00000000101")
    assert host.send(install_apdu(TEST_ELF, TEST_MODULE, aid, p1=0x04)).sw == 0x9000
    assert transmit(card, b"\x00\xa4\x04\x00\x06" + aid).sw == 0x6A82  # INSTALLED is not selectable
    host = GPHost(card)
    host.open(0x01)
    assert host.send(install_apdu(b"", b"", aid, p1=0x08)).sw == 0x9000
    host = GPHost(card)
    host.open(0x01)
    assert host.send(install_apdu(b"", b"", aid, p1=0x08)).sw == 0x6985  # already selectable
    assert transmit(card, b"\x00\xa4\x04\x00\x06" + aid).sw == 0x9000


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        pytest.param(install_apdu(TEST_ELF, TEST_MODULE, PIV_AID), 0x6985, id="aid-in-use"),
        pytest.param(install_apdu(h("F0F0F0F0F0"), TEST_MODULE, h("F00000000102")), 0x6A88, id="unknown-elf"),
        pytest.param(
            install_apdu(TEST_ELF, TEST_MODULE, h("F00000000103"), privileges=b"\x80"), 0x6A80, id="sd-privilege"
        ),
        pytest.param(
            h("80E602001E07D0D1D2D3D4D50108A000000003000000000AEF08C6020160C80207D00000"), 0x6A81, id="for-load"
        ),
    ],
)
def test_install_errors(card: VirtualCard, apdu: bytes, sw: int) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert host.send(apdu).sw == sw


def test_delete_application_instance(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert host.send("80E400000D4F0BA00000030800001000010000").data == b"\x00"
    assert transmit(card, "00A404000BA000000308000010000100").sw == 0x6A82
    host = GPHost(card)
    host.open(0x01)
    assert host.send("80E400000D4F0BA00000030800001000010000").sw == 0x6A88
    assert host.send("80E400000A4F08A00000015100000000").sw == 0x6985  # the ISD
    assert host.send("80E40000074F05A00000030800").sw == 0x6985  # a built-in load file


def test_reinstalled_piv_instance_starts_from_fresh_state(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert host.send("80E400000D4F0BA00000030800001000010000").sw == 0x9000
    assert isd_of(card).store.store.keys("piv") == []
    host = GPHost(card)
    host.open(0x01)
    assert host.send(install_apdu(PIV_ELF_AID, PIV_MODULE_AID, PIV_AID)).sw == 0x9000
    assert transmit(card, "00A404000BA000000308000010000100").sw == 0x9000


def test_store_data_personalizes_iin_cin_and_card_data(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert host.send("80E290000E4203123456450799887766554433").sw == 0x9000
    assert host.send("80CA004200").data == h("4203123456")
    assert host.send("80CA004500").data == h("450799887766554433")
    assert host.send("80E2900006660473020601").sw == 0x9000
    assert host.send("80CA006600").data == h("660473020601")
    assert host.send("80E2900003DF0100").sw == 0x6A88


def test_state_survives_a_daemon_restart(tmp_path) -> None:
    path = tmp_path / "card.sqlite"
    profile = make_profile(tmp_path)
    store = Store(path)
    card = build_card(profile, store)
    add_tiny_load_file(card)
    host = GPHost(card)
    host.open(0x03)
    assert host.send(install_apdu(TEST_ELF, TEST_MODULE, h("F00000000199"))).sw == 0x9000
    assert host.send("80F040800BA000000308000010000100").sw == 0x9000  # lock PIV
    new = scpbase.StaticKeys.same(bytes(range(16)), kvn=0x01)
    assert host.send(host.host.put_key(new).apdu()).sw == 0x9000
    GPHost(card, bytes(range(16)), kvn=0x01).open(0x01)
    store.close()

    store = Store(path)
    card = build_card(profile, store)
    add_tiny_load_file(card)  # built-in modules are registered by the wiring; the test module likewise
    isd_of(card).restore_instances()
    card.power_on()
    assert [ks.kvn for ks in isd_of(card).keysets()] == [0x01]
    assert transmit(card, "00A404000BA000000308000010000100").sw == 0x6A82  # still locked
    assert transmit(card, "00A4040006F00000000199").sw == 0x9000  # installed instance is back
    assert transmit(card, "00A4040008A000000151000000").sw == 0x9000
    GPHost(card, bytes(range(16)), kvn=0x01).open(0x01)
    assert isd_of(card).keys.sequence_counter(0x01) == 2  # counters continue, never reused
    store.close()
