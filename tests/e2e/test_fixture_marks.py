"""The pytest plugin's richer fixture: the vcard marker, two cards, module scope, the fast fresh card.

Card state is read back through PIV as any application does: the PIN retry
counter (VERIFY without data answers 63Cx) shows whether a card is fresh or
kept, and a wrong PIN changes it.
"""

from __future__ import annotations

import pytest
from smartcard import scard

from emulator import fixture_cards
from emulator.control.client.api import VCard
from emulator.profile import load_profile
from emulator.pytest_plugin import LiveCard
from minidriver.pcsc import PcscConnection, PcscError

pytestmark = pytest.mark.e2e

SELECT_PIV = "00A4040009A00000030800001000"
PIN_STATUS = "0020008000"
WRONG_PIN = "0020008008" + "3939393939FFFFFF"  # "99999" padded with FF


def pin_tries(card: LiveCard, *, wrong: bool = False) -> int:
    """Tries left (after one wrong VERIFY if ``wrong``), in one PC/SC connection."""
    conn = card.connect()
    try:
        for apdu in (SELECT_PIV, *([WRONG_PIN] if wrong else []), PIN_STATUS):
            _data, sw1, sw2 = conn.transmit(list(bytes.fromhex(apdu)))
        assert sw1 == 0x63 and sw2 & 0xF0 == 0xC0, f"{sw1:02X}{sw2:02X}"
        return sw2 & 0x0F
    finally:
        conn.release()


def atr_of(card: LiveCard) -> bytes:
    conn = card.connect()
    try:
        return bytes(conn.getATR())
    finally:
        conn.release()


@pytest.mark.vcard(profile="yubikey-5.7", slot=1)
def test_marker_chooses_profile_and_slot(vcard: LiveCard) -> None:
    assert vcard.slot == 1 and vcard.reader.endswith(" 01")
    assert atr_of(vcard) == load_profile("yubikey-5.7").atr
    assert pin_tries(vcard) == 3


def test_default_card_is_slot_0_default_profile(vcard: LiveCard) -> None:
    assert vcard.slot == 0 and vcard.reader.endswith(" 00")
    assert atr_of(vcard) == load_profile("default").atr


@pytest.mark.vcard(profile="yubikey-5.7")
def test_in_place_renewal_switches_the_atr_pcscd_reports(vcard: LiveCard) -> None:
    """The card before this one (default profile) was replaced in place: pcscd re-read the ATR at the reset."""
    assert atr_of(vcard) == load_profile("yubikey-5.7").atr
    assert pin_tries(vcard) == 3


@pytest.mark.vcard(other_profile="yubikey-5.7")
def test_two_cards_have_their_own_state(vcard_pair: tuple[LiveCard, LiveCard]) -> None:
    first, second = vcard_pair
    assert (first.slot, second.slot) == (0, 1) and first.reader != second.reader
    assert atr_of(first) == load_profile("default").atr and atr_of(second) == load_profile("yubikey-5.7").atr
    assert pin_tries(first, wrong=True) == 2
    assert pin_tries(second) == 3  # the other card's counter is its own
    assert pin_tries(second, wrong=True) == 2 and pin_tries(first) == 2


SHARED: dict[str, int] = {}


@pytest.mark.vcard(scope="module")
def test_module_card_first_use(vcard: LiveCard) -> None:
    SHARED["tries"] = pin_tries(vcard, wrong=True)
    SHARED["state"] = hash(vcard.profile)
    assert SHARED["tries"] <= 2


def test_a_function_card_between_module_tests_is_fresh(vcard: LiveCard) -> None:
    assert pin_tries(vcard) == 3


@pytest.mark.vcard(scope="module")
def test_module_card_keeps_its_state(vcard: LiveCard) -> None:
    if "tries" not in SHARED:
        pytest.skip("runs after test_module_card_first_use (it shares that test's card)")
    assert hash(vcard.profile) == SHARED["state"]  # the same card (state file) ...
    assert pin_tries(vcard) == SHARED["tries"]  # ... with the state the first test left


def test_fresh_card_after_a_wrong_pin_1(vcard: LiveCard) -> None:
    assert pin_tries(vcard, wrong=True) == 2


def test_fresh_card_after_a_wrong_pin_2(vcard: LiveCard) -> None:
    """The previous test's card stayed in slot 0: this one replaced it in place, fresh."""
    assert pin_tries(vcard) == 3
    assert fixture_cards.STATS and fixture_cards.STATS[-1].how == "in place"


def test_in_place_renewal_is_a_reset_for_open_handles(vcard_stack: VCard, vcard: LiveCard, tmp_path: object) -> None:
    """What pcscd shows when a card is renewed in place: a reset for handles, no event for watchers."""
    from pathlib import Path

    from minidriver.pcsc import ReaderWatch

    held = PcscConnection(vcard.reader)
    watch = ReaderWatch([vcard.reader])
    try:
        watch.current()
        held.transmit(bytes.fromhex(SELECT_PIV))
        fixture_cards.place(vcard_stack, 0, "default", Path(str(tmp_path)) / "renewed.sqlite")
        assert fixture_cards.STATS[-1].how == "in place"
        print(f"in-place renewal took {fixture_cards.STATS[-1].seconds * 1000:.1f} ms")
        with pytest.raises(PcscError) as err:
            held.transmit(bytes.fromhex(SELECT_PIV))
        assert err.value.code == scard.SCARD_W_RESET_CARD
        assert watch.wait(0.0) is None  # no presence change: the card never left the reader
        assert vcard_stack.status().slots[0].state_file == str(Path(str(tmp_path)) / "renewed.sqlite")
    finally:
        held.close()
        watch.close()


def test_marker_mistakes_are_usage_errors() -> None:
    for kwargs, text in (
        ({"slott": 1}, "unknown vcard marker argument 'slott'"),
        ({"slot": 2}, "slot must be 0 or 1"),
        ({"scope": "session"}, "scope must be one of function, module"),
        ({"profile": "nope"}, "must be a built-in profile"),
        ({"profile": "missing.toml"}, "is not a file"),
    ):
        with pytest.raises(fixture_cards.SpecError, match=text):
            fixture_cards.card_spec(kwargs)
