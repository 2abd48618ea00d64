"""The rule that tells vpcd's control messages from 1-byte APDUs (transport/link.py), sans-I/O.

Sequences are the ones measured from vpcd 0.8 under pcscd 1.9.9 (issue 8, defect 1).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.transport.link import (
    FOLLOW_SECONDS,
    POLL_MARGIN_SECONDS,
    POLL_PERIOD_SECONDS,
    Event,
    Kind,
    LinkDesync,
    VpcdLink,
)
from emulator.transport.vpcd import Ctrl, Frame

OFF, ON, RESET, ATR = (Frame(ctrl=c) for c in (Ctrl.POWER_OFF, Ctrl.POWER_ON, Ctrl.RESET, Ctrl.GET_ATR))
SELECT = Frame(apdu=bytes.fromhex("00A4040000"))


def control(c: Ctrl) -> Event:
    return Event(Kind.CONTROL, c)


def apdu(raw: bytes) -> Event:
    return Event(Kind.APDU, apdu=raw)


POLL = Event(Kind.POLL)
GET_ATR = Event(Kind.ATR)


def test_power_on_then_get_atr_is_control_and_asks_for_the_atr() -> None:
    link = VpcdLink()
    assert link.feed(ON, 0.0) == []
    assert link.pending is Ctrl.POWER_ON and link.deadline == pytest.approx(FOLLOW_SECONDS)
    assert link.feed(ATR, 0.0001) == [control(Ctrl.POWER_ON), GET_ATR]
    assert link.deadline is None


def test_reset_then_get_atr_is_control() -> None:
    link = VpcdLink()
    link.feed(RESET, 1.0)
    assert link.feed(ATR, 1.0001) == [control(Ctrl.RESET), GET_ATR]


def test_lone_get_atr_is_a_poll_and_records_the_poll_phase() -> None:
    link = VpcdLink()
    assert link.feed(ATR, 5.0) == [POLL]
    assert link.last_poll == 5.0


@pytest.mark.parametrize("ctrl", [Ctrl.POWER_ON, Ctrl.RESET])
def test_power_on_or_reset_followed_by_nothing_was_a_1_byte_apdu(ctrl: Ctrl) -> None:
    link = VpcdLink()
    link.feed(Frame(ctrl=ctrl), 0.0)
    assert link.expire(FOLLOW_SECONDS - 0.01) == []
    assert link.expire(FOLLOW_SECONDS) == [apdu(bytes((ctrl,)))]
    assert link.pending is None and link.deadline is None


def test_power_off_waits_for_the_next_poll_plus_a_margin() -> None:
    link = VpcdLink()
    link.feed(ATR, 10.0)  # a poll: the next one is due at 10.41
    link.feed(OFF, 10.1)
    assert link.deadline == pytest.approx(10.0 + POLL_PERIOD_SECONDS + POLL_MARGIN_SECONDS)
    assert link.feed(ATR, 10.40) == [control(Ctrl.POWER_OFF), POLL]


def test_power_off_with_the_poll_overdue_waits_the_margin() -> None:
    link = VpcdLink()
    link.feed(ATR, 10.0)
    link.feed(SELECT, 10.2)
    link.feed(OFF, 11.0)  # the poll due at 10.41 waits for pcscd's reader lock
    assert link.deadline == pytest.approx(11.0 + POLL_MARGIN_SECONDS)


def test_power_off_with_unknown_poll_phase_waits_a_whole_period() -> None:
    link = VpcdLink()
    link.feed(OFF, 3.0)
    assert link.deadline == pytest.approx(3.0 + POLL_PERIOD_SECONDS + POLL_MARGIN_SECONDS)


def test_power_off_followed_by_nothing_was_a_1_byte_apdu() -> None:
    link = VpcdLink()
    link.feed(ATR, 0.0)
    link.feed(OFF, 0.05)
    deadline = link.deadline
    assert deadline is not None and deadline - 0.05 < 1.0  # answered well within a second
    assert link.expire(deadline) == [apdu(b"\x00")]


def test_power_off_then_power_on_then_get_atr() -> None:
    """SCardReconnect(SCARD_UNPOWER_CARD): 00, 01, 04 back to back."""
    link = VpcdLink()
    assert link.feed(OFF, 0.0) == []
    assert link.feed(ON, 0.0001) == [control(Ctrl.POWER_OFF)]
    assert link.feed(ATR, 0.0002) == [control(Ctrl.POWER_ON), GET_ATR]


def test_power_off_then_apdu() -> None:
    link = VpcdLink()
    link.feed(OFF, 0.0)
    assert link.feed(SELECT, 0.1) == [control(Ctrl.POWER_OFF), apdu(SELECT.apdu)]


@pytest.mark.parametrize("byte", [0x03, 0x05, 0x80, 0xFF])
def test_other_single_bytes_are_apdus_at_once(byte: int) -> None:
    link = VpcdLink()
    assert link.feed(Frame(apdu=bytes((byte,))), 0.0) == [apdu(bytes((byte,)))]


def test_a_guess_proven_wrong_by_a_power_on_is_a_desync() -> None:
    """A power off answered as an APDU, then pcscd powers on: vpcd holds a reply it did not ask for."""
    link = VpcdLink()
    link.feed(OFF, 0.0)
    assert link.expire(2.0) == [apdu(b"\x00")]
    assert link.feed(ON, 2.5) == []
    with pytest.raises(LinkDesync):
        link.feed(ATR, 2.5001)


def test_two_1_byte_apdus_01_are_no_desync() -> None:
    """An attacker's 01 twice: both time out, both are APDUs; the link stays."""
    link = VpcdLink()
    link.feed(ON, 0.0)
    assert link.expire(1.0) == [apdu(b"\x01")]
    link.feed(ON, 1.1)
    assert link.expire(2.0) == [apdu(b"\x01")]
    assert link.feed(ATR, 2.1) == [POLL]


def test_reset_after_a_guess_is_no_desync() -> None:
    """After an answered 1-byte APDU a client may reset the card: 02 04 is legitimate."""
    link = VpcdLink()
    link.feed(ON, 0.0)
    link.expire(1.0)
    link.feed(RESET, 1.1)
    assert link.feed(ATR, 1.1001) == [control(Ctrl.RESET), GET_ATR]


def test_poll_after_a_guess_clears_it() -> None:
    link = VpcdLink()
    link.feed(OFF, 0.0)
    link.expire(2.0)
    assert link.feed(ATR, 2.01) == [POLL]
    link.feed(ON, 3.0)
    assert link.feed(ATR, 3.0001) == [control(Ctrl.POWER_ON), GET_ATR]


@given(st.lists(st.sampled_from([OFF, ON, RESET, ATR, SELECT]), max_size=30), st.data())
def test_every_frame_becomes_exactly_one_event(frames: list[Frame], data: st.DataObject) -> None:
    """Nothing is dropped or doubled: each frame is one event (control or APDU for a
    1-byte payload, ATR or poll for GET ATR, APDU for an APDU), in order."""
    link = VpcdLink()
    now = 0.0
    events: list[Event] = []
    for frame in frames:
        now += data.draw(st.floats(0.0, 1.0))
        try:
            events += link.expire(now)
            events += link.feed(frame, now)
        except LinkDesync:
            return
    events += link.expire(now + 10)
    assert len(events) == len(frames)
    for frame, event in zip(frames, events, strict=True):
        if frame.ctrl is Ctrl.GET_ATR:
            assert event.kind in (Kind.ATR, Kind.POLL)
        elif frame.ctrl is not None:
            assert event in (control(frame.ctrl), apdu(frame.payload))
        else:
            assert event == apdu(frame.apdu)
