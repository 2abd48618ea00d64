"""Trace records from the card runtime: names, SM level, and redaction declared by the command tables.

Sans-I/O: a card from the default profile, ``transmit(bytes)``, and a list as the observer.
"""

from __future__ import annotations

import threading

import pytest

from emulator.applets.base import Applet, Secret
from emulator.applets.piv.applet import PIVApplet
from emulator.card import VirtualCard
from emulator.faults import FaultKind, FaultSpec, FaultTable, TearWhen
from emulator.iso7816 import CommandAPDU
from emulator.slot import CardAbsent, Slot
from emulator.trace import ApduEvent, ApduRecord, CardEvent, EventHub, FaultEvent, format_event, sm_name
from emulator.transport.vpcd import Ctrl
from tests.unit.applets.isd_helpers import GPHost, make_card

h = bytes.fromhex
SELECT_PIV = h("00A4040009A00000030800001000")
SELECT_ISD = h("00A4040008A000000151000000")
VERIFY = h("0020008008313233343536FFFF")
PIN_HEX = "313233343536FFFF"


@pytest.fixture
def traced() -> tuple[VirtualCard, list[ApduEvent]]:
    card = make_card()
    events: list[ApduEvent] = []
    card.observer = lambda rec: events.append(ApduEvent.from_record(0, rec))
    card.power_on()
    return card, events


def test_each_command_is_one_event_with_applet_ins_and_sw_names(traced: tuple[VirtualCard, list[ApduEvent]]) -> None:
    card, events = traced
    card.transmit(SELECT_PIV)
    card.transmit(h("00CB3FFF055C035FC102"))
    card.transmit(h("00FD000000"))
    sel, chuid, version = events
    assert (sel.ins_name, sel.applet, sel.sw_name, sel.lc) == ("SELECT", "piv", "OK", 9)
    assert (chuid.ins_name, chuid.applet, chuid.resp_len > 0) == ("GET_DATA", "piv", True)
    assert (version.ins_name, version.sw) == ("GET_VERSION", 0x9000)
    assert chuid.response_data is not None and chuid.secret == ()
    assert all(e.duration_ms >= 0 and e.channel == 0 and e.sm == "" for e in events)


@pytest.mark.parametrize(
    ("apdu", "ins_name", "secret"),
    [
        (VERIFY, "VERIFY", ("command_data",)),
        (h("0024008010313233343536FFFF363534333231FFFF"), "CHANGE_REFERENCE_DATA", ("command_data",)),
        (h("002C008010313233343536FFFF363534333231FFFF"), "RESET_RETRY_COUNTER", ("command_data",)),
        (h("0087039B047C028100"), "GENERAL_AUTHENTICATE", ("command_data", "response_data")),  # witness
        (h("00DB3FFF0A5C035FC10953030102FF"), "PUT_DATA", ("command_data",)),
        (
            h("00FFFFFF1B039B1801020304050607080102030405060708010203040506070800"),
            "SET_MANAGEMENT_KEY",
            ("command_data",),
        ),
        (h("00FE119A03010203"), "IMPORT_ASYMMETRIC_KEY", ("command_data",)),
        (h("00CB3FFF055C035FC102"), "GET_DATA", ()),
    ],
)
def test_piv_command_table_declares_the_secrets(
    traced: tuple[VirtualCard, list[ApduEvent]], apdu: bytes, ins_name: str, secret: tuple[str, ...]
) -> None:
    card, events = traced
    card.transmit(SELECT_PIV)
    card.transmit(apdu)
    ev = events[-1]
    assert ev.ins_name == ins_name and ev.secret == secret
    red = ev.redacted()
    for name in secret:
        assert getattr(red, name) is None and name in red.redacted_fields
    assert apdu[5:].hex().upper() not in format_event(red) or not secret


def test_redaction_is_declared_in_the_table_not_by_ins_byte() -> None:
    """The same INS byte is secret for one applet and not for another (no global list)."""
    assert PIVApplet.describe(CommandAPDU.parse(VERIFY))[1] == Secret.COMMAND
    name, secret = PIVApplet.describe(CommandAPDU.parse(h("00CB3FFF055C035FC102")))
    assert (name, secret) == ("GET_DATA", Secret.NONE)
    # a PIN-protected object (printed information 5FC109) answers secret data
    assert PIVApplet.describe(CommandAPDU.parse(h("00CB3FFF055C035FC109")))[1] == Secret.RESPONSE

    class Echo(Applet):
        name = "echo"

    assert Echo.describe(CommandAPDU.parse(VERIFY)) == ("INS_20", Secret.COMMAND)  # undeclared: hidden


def test_a_pin_sent_to_an_applet_that_does_not_know_verify_is_still_hidden(
    traced: tuple[VirtualCard, list[ApduEvent]],
) -> None:
    card, events = traced
    card.transmit(SELECT_ISD)
    card.transmit(VERIFY)
    assert events[-1].ins_name == "INS_20" and events[-1].redacted().command_data is None


def test_a_command_that_fails_before_it_is_understood_hides_its_data(
    traced: tuple[VirtualCard, list[ApduEvent]],
) -> None:
    card, events = traced
    card.transmit(h("0320008008313233343536FFFF"))  # channel 3 is not open: nobody looked at it
    assert events[-1].sw == 0x6881 and events[-1].secret == ("command_data",)


def test_secure_messaging_level_and_secrets_under_it(traced: tuple[VirtualCard, list[ApduEvent]]) -> None:
    card, events = traced
    card.transmit(SELECT_ISD)
    host = GPHost(card)
    host.open(0x33)  # C-MAC, C-DEC, R-MAC, R-ENC
    iu, ea = events[-2:]
    assert iu.ins_name == "INITIALIZE_UPDATE" and set(iu.secret) == {"command_data", "response_data"}
    assert ea.ins_name == "EXTERNAL_AUTHENTICATE" and ea.secret == ("command_data",)
    assert host.send("80CA006600").sw == 0x9000
    gd = events[-1]
    assert gd.ins_name == "GET_DATA" and "C_MAC" in gd.sm and "R_ENCRYPTION" in gd.sm
    assert gd.secret == ("command_data", "response_data")  # decrypted under SM / encrypted answer


def test_get_response_of_a_secret_answer_stays_secret(traced: tuple[VirtualCard, list[ApduEvent]]) -> None:
    card, events = traced
    card.transmit(SELECT_PIV)
    card.transmit(VERIFY)
    # GENERAL AUTHENTICATE: sign 32 bytes with the 9A P-256 key; Le 10 splits the answer (61xx)
    first = card.transmit(h("0087119A267C2482008120") + bytes(32) + h("10"))
    assert first[-2] == 0x61 and events[-1].secret == ("command_data", "response_data")
    card.transmit(h("00C0000000"))
    assert events[-1].ins_name == "GET_RESPONSE" and events[-1].secret == ("response_data",)
    card.transmit(h("00CB3FFF055C035FC102"))
    assert events[-1].secret == ()  # the next command is judged on its own


def test_sm_name() -> None:
    assert sm_name(0) == "" and sm_name(0x81) == "C_MAC" and sm_name(0x33) == "C_MAC|C_DECRYPTION|R_MAC|R_ENCRYPTION"


def test_hub_ring_is_bounded_and_numbered() -> None:
    hub = EventHub(ring=3)
    for n in range(5):
        hub.publish(CardEvent(0, f"e{n}"))
    hub.publish(CardEvent(1, "other"))
    recent = hub.recent(0)
    assert [e.kind for e in recent] == ["e2", "e3", "e4"]  # type: ignore[union-attr]
    assert [e.seq for e in recent] == [3, 4, 5] and hub.last_seq == 6
    assert [e.kind for e in hub.recent(None, last=2)] == ["e4", "other"]  # type: ignore[union-attr]
    assert [e.kind for e in hub.recent(0, after=4)] == ["e4"]  # type: ignore[union-attr]
    assert all(e.time > 0 for e in recent)


def test_slow_subscriber_is_dropped_never_blocks_publish() -> None:
    hub = EventHub()
    dropped = []
    hub.on_drop = dropped.append
    sub, backlog = hub.subscribe(None, maxsize=2)
    assert backlog == []
    for n in range(5):
        hub.publish(CardEvent(0, f"e{n}"))  # returns at once though nobody reads
    assert dropped == [sub] and sub.dropped.is_set()
    got = [sub.get(0.01), sub.get(0.01), sub.get(0.01)]
    assert [e.kind for e in got[:2]] == ["e0", "e1"] and got[2] is None  # type: ignore[union-attr]
    fresh, backlog = hub.subscribe(0, last=2)
    assert [e.kind for e in backlog] == ["e3", "e4"]  # type: ignore[union-attr]
    hub.publish(CardEvent(1, "not mine"))
    assert fresh.drain() == []


def test_record_of_a_short_command_does_not_crash() -> None:
    ev = ApduEvent.from_record(0, ApduRecord(b"\x00", b"\x67\x00"))
    assert ev.sw == 0x6700 and ev.lc == 0 and ev.ins_name == "SHORT"


# -- faults (sans-I/O) ----------------------------------------------------------------------------
def test_fault_table_counts_skips_and_spends() -> None:
    table = FaultTable()
    table.add(FaultSpec(FaultKind.SW, ins=0xCB, sw=0x6A82, skip=1, count=2))
    fired = [table.on_command(0x00, 0xCB, 0x3F, "piv").terminal is not None for _ in range(4)]
    assert fired == [False, True, True, False] and not table
    table.add(FaultSpec(FaultKind.LATENCY, delay_ms=5, count=None))
    table.add(FaultSpec(FaultKind.TEAR, ins=0x24, when=TearWhen.AFTER))
    firing = table.on_command(0x00, 0x24, 0x00, "piv")
    assert firing.delay_ms == 5 and firing.terminal is not None and firing.terminal.spec.kind is FaultKind.TEAR
    assert [f.spec.kind for f in table.list()] == [FaultKind.LATENCY]  # the tear is spent, latency stays
    assert table.clear() == 1 and not table


def test_fault_matches_cla_p1_and_applet() -> None:
    table = FaultTable()
    table.add(FaultSpec(FaultKind.SW, ins=0xCA, cla=0x80, p1=0x9F, applet="isd", sw=0x6985, count=None))
    assert table.on_command(0x00, 0xCA, 0x9F, "isd").terminal is None
    assert table.on_command(0x80, 0xCA, 0x00, "isd").terminal is None
    assert table.on_command(0x80, 0xCA, 0x9F, "piv").terminal is None
    assert table.on_command(0x80, 0xCA, 0x9F, "isd").terminal is not None
    assert table.on_atr().fired == ()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"kind": FaultKind.SW}, "sw must be"),
        ({"kind": FaultKind.SW, "sw": 0x6000}, "sw must be"),
        ({"kind": FaultKind.SW, "sw": 0x9000, "ins": 0x100}, "ins must be a byte"),
        ({"kind": FaultKind.LATENCY}, "needs a delay"),
        ({"kind": FaultKind.LATENCY, "delay_ms": 60_001}, "delay_ms must be"),
        ({"kind": FaultKind.ATR, "atr": b"\x3b"}, "atr must be 2-33 bytes"),
        ({"kind": FaultKind.SLOW_ATR, "delay_ms": 5, "ins": 0xA4}, "takes no INS"),
        ({"kind": FaultKind.TEAR, "count": 0}, "count must be"),
        ({"kind": FaultKind.MUTE, "sw": 0x9000}, "sw is only for kind sw"),
    ],
)
def test_fault_spec_refuses_what_cannot_work(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        FaultSpec(**kwargs)


def test_mute_gets_a_bound_by_default() -> None:
    assert FaultSpec.mute().delay_ms > 0


# -- the slot carries out faults (sans-I/O: no socket, drop_link recorded) ------------------------------
def slot_with_card() -> tuple[Slot, EventHub, list[str]]:
    hub = EventHub()
    slot = Slot(0, events=hub)
    dropped: list[str] = []
    slot.drop_link = lambda: dropped.append("link")
    slot.insert(make_card(), profile="default", state_file=":memory:")
    slot.control(Ctrl.POWER_ON)
    return slot, hub, dropped


def test_tear_after_runs_the_command_then_pulls_the_card() -> None:
    slot, hub, dropped = slot_with_card()
    assert slot.atr() == slot.card.atr  # type: ignore[union-attr]
    slot.faults.add(FaultSpec(FaultKind.TEAR, ins=0xA4, when=TearWhen.AFTER))
    with pytest.raises(CardAbsent):
        slot.transmit(SELECT_PIV)
    assert slot.card is None and dropped == ["link"]
    kinds = [(type(e).__name__, getattr(e, "kind", getattr(e, "ins_name", ""))) for e in hub.recent(0)]
    assert kinds[-3:] == [("FaultEvent", "tear"), ("ApduEvent", "SELECT"), ("CardEvent", "tear")]


def test_tear_before_never_reaches_the_card() -> None:
    slot, hub, dropped = slot_with_card()
    slot.faults.add(FaultSpec(FaultKind.TEAR, ins=0xA4))
    with pytest.raises(CardAbsent):
        slot.transmit(SELECT_PIV)
    assert dropped == ["link"] and not [e for e in hub.recent(0) if isinstance(e, ApduEvent)]


def test_mute_is_bounded_and_cut_short_by_removal() -> None:
    slot, _, dropped = slot_with_card()
    slot.faults.add(FaultSpec.mute(ins=0xA4, delay_ms=60_000))
    threading.Timer(0.05, slot.interrupt).start()
    with pytest.raises(CardAbsent):
        slot.transmit(SELECT_PIV)  # returns after the interrupt, not after 60 s
    assert slot.card is None and dropped == ["link"]


def test_atr_faults_fire_on_the_atr_after_power_on_not_on_presence_polls() -> None:
    slot, hub, _ = slot_with_card()
    other = h("3B8001800101")
    slot.faults.add(FaultSpec(FaultKind.ATR, atr=other))
    own = slot.card.atr  # type: ignore[union-attr]
    assert slot.atr() == other  # the ATR asked for by the power-on
    assert slot.atr() == own  # a presence poll: not counted, and the fault is spent anyway
    slot.faults.add(FaultSpec(FaultKind.ATR, atr=other))
    assert slot.atr() == own  # still a poll: the fault waits for a power-on or reset
    slot.control(Ctrl.RESET)
    assert slot.atr() == other
    assert [e.kind for e in hub.recent(0) if isinstance(e, FaultEvent)] == ["atr", "atr"]


def test_sw_fault_is_traced_as_the_answer() -> None:
    slot, hub, _ = slot_with_card()
    slot.faults.add(FaultSpec(FaultKind.SW, ins=0xA4, sw=0x6A82))
    assert slot.transmit(SELECT_PIV) == h("6A82")
    ev = [e for e in hub.recent(0) if isinstance(e, ApduEvent)][-1]
    assert ev.fault == "f1" and ev.sw_name == "FILE_NOT_FOUND"
    assert slot.transmit(SELECT_PIV)[-2:] == h("9000")  # spent
