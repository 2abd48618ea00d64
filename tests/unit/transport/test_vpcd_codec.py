"""The vpcd wire codec and ``handle_event``, without sockets (vsmartcard vpcd.c framing)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.transport.link import PRESENT, Event, Kind, VpcdLink
from emulator.transport.server import NO_CARD, CardAbsent, handle_event
from emulator.transport.vpcd import MAX_PAYLOAD, Ctrl, Frame, VpcdDecoder, encode_frame

h = bytes.fromhex
SELECT_ISD = h("00A4040008A000000151000000")
ATR = h("3B8B0180730000C0657663617264BE")

#: one stream as vpcd sends it: power on, ATR request, an APDU, reset, power off
STREAM = h("0001 01") + h("0001 04") + encode_frame(SELECT_ISD) + h("0001 02") + h("0001 00")
FRAMES = [
    Frame(ctrl=Ctrl.POWER_ON),
    Frame(ctrl=Ctrl.GET_ATR),
    Frame(apdu=SELECT_ISD),
    Frame(ctrl=Ctrl.RESET),
    Frame(ctrl=Ctrl.POWER_OFF),
]


@pytest.mark.parametrize(
    ("payload", "frame"),
    [
        ("00", Frame(ctrl=Ctrl.POWER_OFF)),
        ("01", Frame(ctrl=Ctrl.POWER_ON)),
        ("02", Frame(ctrl=Ctrl.RESET)),
        ("04", Frame(ctrl=Ctrl.GET_ATR)),
        ("00A40400", Frame(apdu=h("00A40400"))),
        ("0000", Frame(apdu=h("0000"))),  # two bytes is an APDU (too short, the card answers 6700)
        ("", Frame(apdu=b"")),
    ],
)
def test_decode_one_frame(payload: str, frame: Frame) -> None:
    decoder = VpcdDecoder()
    assert decoder.feed(encode_frame(h(payload))) == [frame]
    assert decoder.buffered == 0
    assert frame.is_control == (frame.ctrl is not None)


@pytest.mark.parametrize("byte", ["03", "05", "7F", "FF"])
def test_a_single_byte_that_is_no_control_byte_is_an_apdu(byte: str) -> None:
    """A 1-byte SCardTransmit: an (invalid) APDU for the card, never a reason to drop the link (issue 8)."""
    assert VpcdDecoder().feed(h("0001" + byte)) == [Frame(apdu=h(byte))]


@pytest.mark.parametrize("byte", ["00", "01", "02", "04"])
def test_frame_payload_round_trips(byte: str) -> None:
    (frame,) = VpcdDecoder().feed(h("0001" + byte))
    assert frame.is_control and frame.payload == h(byte)


def test_joined_frames_decode_in_order() -> None:
    assert VpcdDecoder().feed(STREAM) == FRAMES


def encoded(frames: list[Frame]) -> bytes:
    """The wire bytes of frames already decoded."""
    return b"".join(encode_frame(bytes((f.ctrl,)) if f.ctrl is not None else f.apdu) for f in frames)


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_byte_boundary(cut: int) -> None:
    decoder = VpcdDecoder()
    first = decoder.feed(STREAM[:cut])
    assert decoder.buffered == cut - len(encoded(first))
    assert first + decoder.feed(STREAM[cut:]) == FRAMES
    assert decoder.buffered == 0


def test_one_byte_at_a_time() -> None:
    decoder = VpcdDecoder()
    frames: list[Frame] = []
    for b in STREAM:
        frames += decoder.feed(bytes((b,)))
    assert frames == FRAMES


@given(st.lists(st.binary(min_size=2, max_size=300), max_size=6), st.data())
def test_any_split_of_apdu_frames(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = VpcdDecoder()
    frames: list[Frame] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames += decoder.feed(stream[a:b])
    assert [f.apdu for f in frames] == payloads
    assert not any(f.is_control for f in frames)


@pytest.mark.parametrize(
    ("payload", "frame"),
    [
        (b"", "0000"),
        (h("04"), "0001 04"),
        (h("9000"), "0002 9000"),
        (b"\xab" * 0x1234, "1234" + "AB" * 0x1234),
        (bytes(MAX_PAYLOAD), "FFFF" + "00" * MAX_PAYLOAD),
    ],
)
def test_encode_frame_length_prefix(payload: bytes, frame: str) -> None:
    assert encode_frame(payload) == h(frame)


def test_encode_frame_refuses_more_than_65535_bytes() -> None:
    with pytest.raises(ValueError, match="65535"):
        encode_frame(bytes(MAX_PAYLOAD + 1))


def test_largest_frame_round_trips() -> None:
    payload = bytes(range(256)) * 255 + bytes(range(255))
    assert len(payload) == MAX_PAYLOAD
    assert VpcdDecoder().feed(encode_frame(payload)) == [Frame(apdu=payload)]


class FakeTarget:
    """Records what ``handle_frame`` asks of a slot."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def atr(self) -> bytes:
        self.calls.append(("atr", None))
        return ATR

    def control(self, ctrl: Ctrl) -> None:
        self.calls.append(("control", ctrl))

    def transmit(self, apdu: bytes) -> bytes:
        self.calls.append(("transmit", apdu))
        return h("6F00") if apdu == b"" else apdu[:1] + h("9000")


def test_atr_event_returns_the_atr() -> None:
    target = FakeTarget()
    assert handle_event(target, Event(Kind.ATR)) == ATR
    assert target.calls == [("atr", None)]


def test_poll_event_answers_present_never_the_atr() -> None:
    """A lone GET ATR may be a 1-byte APDU 04: it never gets the ATR as a response (issue 8)."""
    target = FakeTarget()
    assert handle_event(target, Event(Kind.POLL)) == PRESENT == h("6700")
    assert target.calls == [("atr", None)]  # asked only whether a card is in


def test_poll_of_an_empty_slot_raises_card_absent() -> None:
    class Empty(FakeTarget):
        def atr(self) -> bytes:
            raise CardAbsent("empty")

    with pytest.raises(CardAbsent):
        handle_event(Empty(), Event(Kind.POLL))


@pytest.mark.parametrize("ctrl", [Ctrl.POWER_OFF, Ctrl.POWER_ON, Ctrl.RESET])
def test_power_messages_call_control_and_get_no_reply(ctrl: Ctrl) -> None:
    target = FakeTarget()
    assert handle_event(target, Event(Kind.CONTROL, ctrl)) is None
    assert target.calls == [("control", ctrl)]


def test_apdu_returns_the_card_reply() -> None:
    target = FakeTarget()
    assert handle_event(target, Event(Kind.APDU, apdu=SELECT_ISD)) == h("00 9000")
    assert target.calls == [("transmit", SELECT_ISD)]


def test_decoded_stream_through_the_link_and_handle_event() -> None:
    target = FakeTarget()
    link = VpcdLink()
    events: list[Event] = []
    for i, frame in enumerate(VpcdDecoder().feed(STREAM)):
        events += link.feed(frame, now=i * 0.001)
    # the reset is proven control by the power off after it; the power off is followed by
    # nothing, so it is held back and then, its time over, a 1-byte APDU
    events += link.expire(now=100.0)
    replies = [handle_event(target, e) for e in events]
    assert replies == [None, ATR, h("00 9000"), None, h("00 9000")]
    assert [name for name, _ in target.calls] == ["control", "atr", "transmit", "control", "transmit"]


def test_no_card_answer_is_an_empty_atr_and_one_padding_byte() -> None:
    """Gentle removal: vpcd reads length 0 ("no card"), its recv(0, MSG_WAITALL) returns on the pad."""
    assert h("0000 00") == NO_CARD
    assert VpcdDecoder().feed(NO_CARD) == [Frame(apdu=b"")]
