"""Card and application life cycles via SET STATUS (GPCS §5.1, §5.3, §11.10)."""

from __future__ import annotations

import pytest
from isd_helpers import GPHost, h, isd_of, make_card, make_profile, transmit

from emulator.applets.isd_content import CardLifeCycle
from emulator.card import VirtualCard

SELECT_ISD = "00A4040008A000000151000000"
SELECT_PIV = "00A404000BA000000308000010000100"


def set_status(card: VirtualCard, p1: int, p2: int, data: bytes = b"") -> int:
    host = GPHost(card)
    host.open(0x01)
    apdu = bytes([0x80, 0xF0, p1, p2]) + (bytes([len(data)]) + data if data else b"")
    return host.send(apdu).sw


@pytest.mark.parametrize(
    ("start", "path"),
    [
        ("OP_READY", [0x07, 0x0F, 0x7F, 0x0F, 0xFF]),
        ("OP_READY", [0x0F]),
        ("SECURED", [0x7F, 0xFF]),
        ("INITIALIZED", [0xFF]),
    ],
)
def test_legal_card_life_cycle_transitions(start: str, path: list[int]) -> None:
    card = make_card(make_profile(life_cycle=start))
    for state in path:
        assert set_status(card, 0x80, state) == 0x9000
        assert isd_of(card).card_life_cycle == state


@pytest.mark.parametrize(
    ("start", "target"),
    [("SECURED", 0x07), ("SECURED", 0x01), ("INITIALIZED", 0x01), ("SECURED", 0x0F), ("INITIALIZED", 0x7F)],
)
def test_illegal_card_life_cycle_transitions_answer_6985(start: str, target: int) -> None:
    card = make_card(make_profile(life_cycle=start))
    assert set_status(card, 0x80, target) == 0x6985
    assert isd_of(card).card_life_cycle.name == start


def test_unknown_card_state_is_wrong_data() -> None:
    assert set_status(make_card(), 0x80, 0x55) == 0x6A80


def test_locked_card_selects_only_the_isd_with_6283() -> None:
    card = make_card()
    assert set_status(card, 0x80, CardLifeCycle.CARD_LOCKED) == 0x9000
    assert transmit(card, SELECT_PIV).sw == 0x6A82
    resp = transmit(card, SELECT_ISD)
    assert resp.sw == 0x6283 and resp.data.startswith(h("6F"))
    # unlocking needs a secure channel to the ISD, which stays reachable
    assert set_status(card, 0x80, CardLifeCycle.SECURED) == 0x9000
    assert transmit(card, SELECT_PIV).sw == 0x9000


def test_locked_card_refuses_content_management() -> None:
    card = make_card()
    assert set_status(card, 0x80, CardLifeCycle.CARD_LOCKED) == 0x9000
    host = GPHost(card)
    host.open(0x01)
    assert host.send("80E400000D4F0BA00000030800001000010000").sw == 0x6985


def test_terminated_card_answers_only_get_data() -> None:
    card = make_card()
    assert set_status(card, 0x80, CardLifeCycle.TERMINATED) == 0x9000
    assert transmit(card, SELECT_ISD).sw == 0x6283
    assert transmit(card, "80CA006600").sw == 0x9000
    assert transmit(card, "8050000008010203040506070800").sw == 0x6985
    assert transmit(card, SELECT_PIV).sw == 0x6A82


def test_card_life_cycle_survives_restart(tmp_path) -> None:
    from emulator.factory import build_card
    from emulator.store import Store

    profile = make_profile(tmp_path)
    store = Store(tmp_path / "c.sqlite")
    card = build_card(profile, store)
    assert set_status(card, 0x80, CardLifeCycle.CARD_LOCKED) == 0x9000
    store.close()
    store = Store(tmp_path / "c.sqlite")
    card = build_card(profile, store)
    card.power_on()
    assert transmit(card, SELECT_PIV).sw == 0x6A82
    assert transmit(card, SELECT_ISD).sw == 0x6283
    store.close()


def test_application_lock_and_unlock() -> None:
    card = make_card()
    piv = h("A000000308000010000100")
    assert set_status(card, 0x40, 0x80, piv) == 0x9000
    assert transmit(card, SELECT_PIV).sw == 0x6A82
    assert set_status(card, 0x40, 0x80, piv) == 0x6985  # already locked
    host = GPHost(card)
    host.open(0x01)
    assert h("9F700187") in host.send("80F24002024F0000").data
    assert set_status(card, 0x40, 0x00, piv) == 0x9000
    assert transmit(card, SELECT_PIV).sw == 0x9000
    assert transmit(card, SELECT_ISD).sw == 0x9000
    assert set_status(card, 0x40, 0x00, piv) == 0x6985  # not locked


@pytest.mark.parametrize(
    ("p1", "p2", "data", "sw"),
    [
        (0x40, 0x80, h("A0000003089999"), 0x6A88),
        (0x40, 0x0F, h("A000000308000010000100"), 0x6A86),
        (0x60, 0x0F, h("A000000151000000"), 0x6A86),  # P1 60 takes 80 (lock) / 00 (unlock)
        (0x60, 0x80, h("A0000003089999"), 0x6A88),  # the ISD is the only security domain
        (0x20, 0x80, h("A000000151000000"), 0x6A86),
    ],
)
def test_set_status_errors(p1: int, p2: int, data: bytes, sw: int) -> None:
    assert set_status(make_card(), p1, p2, data) == sw
