"""``VirtualCard.transmit`` answers any bytes with a status word: never raises, never hangs.

Inputs are random bytes, and random bodies behind valid headers for every INS
the card knows (card runtime, ISD, PIV), a few commands in a row on one card
so that state (channels, chains, pending responses, sessions) carries over.
"""

from __future__ import annotations

import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.applets.isd import INS as ISD_INS
from emulator.applets.piv.consts import INS as PIV_INS
from emulator.card import INS as CARD_INS
from emulator.card import VirtualCard
from emulator.factory import build_card
from emulator.iso7816 import EXTENDED_LE_MAX, SW, CommandAPDU
from emulator.profile import load_profile
from emulator.store import MemoryStore

#: generous: a command takes milliseconds; only a hang comes near this
CALL_BOUND_SECONDS = 20.0
KNOWN_INS = sorted({*CARD_INS, *ISD_INS, *PIV_INS})
AIDS = [
    bytes.fromhex(a)
    for a in ("A000000151000000", "A000000308000010000100", "A000000308", "A000000003000000", "A00000", "D276000124")
]
PROFILE = load_profile()


def new_card() -> VirtualCard:
    card = build_card(PROFILE, MemoryStore())
    card.power_on()
    return card


def transmit_bounded(card: VirtualCard, raw: bytes) -> bytes:
    """``card.transmit(raw)`` in a thread, so a hang fails the test instead of stalling it."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["out"] = card.transmit(raw)
        except BaseException as exc:  # the property under test: nothing escapes
            box["exc"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(CALL_BOUND_SECONDS)
    assert not worker.is_alive(), f"transmit({raw.hex().upper()}) still running after {CALL_BOUND_SECONDS} s"
    assert "exc" not in box, f"transmit({raw.hex().upper()}) raised {box['exc']!r}"
    out = box["out"]
    assert isinstance(out, bytes)
    return out


def check_response(raw: bytes, out: bytes) -> None:
    assert len(out) >= 2, f"{raw.hex().upper()} -> {out.hex().upper()}"
    sw1, sw2 = out[-2], out[-1]
    # ISO 7816-3 §10.3.3: SW1 is 61-6F (not 60) or 90-9F
    assert 0x61 <= sw1 <= 0x6F or 0x90 <= sw1 <= 0x9F, f"{raw.hex().upper()} -> SW {sw1:02X}{sw2:02X}"
    sw = (sw1 << 8) | sw2
    # 6F00 is what transmit answers for an internal error (an exception other than CardError)
    assert sw != SW.NO_PRECISE_DIAGNOSIS, f"internal error on {raw.hex().upper()}"
    if sw1 not in (0x90, 0x61, 0x62, 0x63):
        assert out == out[-2:], f"{raw.hex().upper()}: error SW with data"


CLA = st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x0C, 0x10, 0x11, 0x40, 0x41, 0x80, 0x84, 0x90]) | st.integers(
    0, 0xFF
)
BYTE = st.integers(0, 0xFF)
P1P2 = st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x0C, 0x3F, 0x7F, 0x80, 0x9A, 0x9B, 0x9F, 0xFF]) | BYTE
DATA = (
    st.binary(max_size=40)
    | st.sampled_from(AIDS)
    | st.builds(lambda t, v: bytes((0x5C, len(t))) + t + v, st.binary(min_size=1, max_size=3), st.binary(max_size=4))
    | st.binary(min_size=200, max_size=600)
)


@st.composite
def headed_commands(draw: st.DrawFn) -> bytes:
    """A valid header for a known INS and either a well-formed body or random trailing bytes."""
    header = bytes((draw(CLA), draw(st.sampled_from(KNOWN_INS)), draw(P1P2), draw(P1P2)))
    if draw(st.booleans()):
        return header + draw(st.binary(max_size=30))
    data = draw(DATA)
    extended = len(data) > 255 or draw(st.booleans())
    ne = draw(st.sampled_from([0, 1, 0x10, 256]) | st.integers(0, EXTENDED_LE_MAX if extended else 256))
    if not data and not ne:
        extended = False
    body = bytes(CommandAPDU(0, 0, 0, 0, data, ne, extended))[4:]  # Lc, data and Le as encoded
    return header + body


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_random_bytes_always_get_a_status_word(apdus: list[bytes]) -> None:
    card = new_card()
    for raw in apdus:
        check_response(raw, transmit_bounded(card, raw))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(headed_commands(), min_size=1, max_size=6))
def test_known_ins_with_random_bodies_always_get_a_status_word(apdus: list[bytes]) -> None:
    card = new_card()
    for raw in apdus:
        check_response(raw, transmit_bounded(card, raw))


@settings(max_examples=100, deadline=None)
@given(st.lists(headed_commands(), min_size=1, max_size=6))
def test_after_piv_is_selected_on_a_second_channel(apdus: list[bytes]) -> None:
    card = new_card()
    assert transmit_bounded(card, bytes.fromhex("0070000001")) == bytes.fromhex("019000")
    assert transmit_bounded(card, bytes.fromhex("01A404000BA000000308000010000100"))[-2:] == b"\x90\x00"
    assert transmit_bounded(card, bytes.fromhex("00A404000BA000000308000010000100"))[-2:] == b"\x90\x00"
    for raw in apdus:
        check_response(raw, transmit_bounded(card, raw))
