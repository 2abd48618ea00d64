"""The vpcd wire codec and ``handle_frame``, without sockets (vsmartcard vpcd.c framing)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.transport.server import handle_frame
from emulator.transport.vpcd import MAX_PAYLOAD, Ctrl, Frame, VpcdDecoder, VpcdProtocolError, encode_frame

h = bytes.fromhex
SELECT_ISD = h("00A4040008A000000151000000")
ATR = h("3B87018065766361726401")

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


@pytest.mark.parametrize("ctrl", ["03", "05", "7F", "FF"])
def test_unknown_control_byte_is_a_protocol_error(ctrl: str) -> None:
    with pytest.raises(VpcdProtocolError, match=ctrl):
        VpcdDecoder().feed(h("0001" + ctrl))


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


def test_get_atr_returns_the_atr() -> None:
    target = FakeTarget()
    assert handle_frame(target, Frame(ctrl=Ctrl.GET_ATR)) == ATR
    assert target.calls == [("atr", None)]


@pytest.mark.parametrize("ctrl", [Ctrl.POWER_OFF, Ctrl.POWER_ON, Ctrl.RESET])
def test_power_messages_call_control_and_get_no_reply(ctrl: Ctrl) -> None:
    target = FakeTarget()
    assert handle_frame(target, Frame(ctrl=ctrl)) is None
    assert target.calls == [("control", ctrl)]


def test_apdu_returns_the_card_reply() -> None:
    target = FakeTarget()
    assert handle_frame(target, Frame(apdu=SELECT_ISD)) == h("00 9000")
    assert target.calls == [("transmit", SELECT_ISD)]


def test_decoded_stream_through_handle_frame() -> None:
    target = FakeTarget()
    replies = [handle_frame(target, f) for f in VpcdDecoder().feed(STREAM)]
    assert replies == [None, ATR, h("00 9000"), None, None]
    assert [name for name, _ in target.calls] == ["control", "atr", "transmit", "control", "control"]
