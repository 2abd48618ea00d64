"""SlotServer against a scripted vpcd on loopback (no pcscd): what goes over the wire.

The script plays vpcd 0.8's side byte for byte: it accepts the card's
connection, sends frames and reads the replies it is owed (issue 8).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from emulator.transport import server as server_module
from emulator.transport.server import NO_CARD, SlotServer
from emulator.transport.vpcd import Ctrl, encode_frame

ATR = bytes.fromhex("3B8B0180730000C0657663617264BE")
SELECT = bytes.fromhex("00A4040000")


@dataclass
class Card:
    """A FrameTarget whose APDUs take ``delay`` seconds."""

    delay: float = 0.0
    calls: list[str] = field(default_factory=list)

    def atr(self) -> bytes:
        return ATR

    def control(self, ctrl: Ctrl) -> None:
        self.calls.append(ctrl.name)

    def transmit(self, apdu: bytes) -> bytes:
        self.calls.append(apdu.hex())
        time.sleep(self.delay)
        return b"\x90\x00" if len(apdu) >= 4 else b"\x67\x00"


class Vpcd:
    """The vpcd end of one slot: a listening socket and the accepted card connection."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.listener.settimeout(5)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(5)

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(encode_frame(payload))

    def read(self, n: int) -> bytes:
        assert self.conn is not None
        out = b""
        while len(out) < n:
            chunk = self.conn.recv(n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def reply(self) -> bytes:
        size = int.from_bytes(self.read(2), "big")
        return self.read(size)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def vpcd() -> Iterator[Vpcd]:
    v = Vpcd()
    yield v
    v.close()


def serve(card: Card, vpcd: Vpcd) -> SlotServer:
    srv = SlotServer(card, "127.0.0.1", vpcd.port, name="test", settle=False)
    srv.start()
    srv.connect()
    vpcd.accept()
    assert srv.connected.wait(5)
    return srv


def test_power_on_get_atr_and_apdus(vpcd: Vpcd) -> None:
    card = Card()
    srv = serve(card, vpcd)
    try:
        vpcd.send(b"\x04")
        assert vpcd.reply() == b"\x67\x00"  # a presence poll: "present", never the ATR
        vpcd.send(b"\x01")
        vpcd.send(b"\x04")
        assert vpcd.reply() == ATR  # the GET ATR of a power on
        vpcd.send(SELECT)
        assert vpcd.reply() == b"\x90\x00"
        assert card.calls == ["POWER_ON", SELECT.hex()]
    finally:
        srv.stop()


@pytest.mark.parametrize("byte", [0x00, 0x01, 0x02, 0x04, 0x05, 0xFF])
def test_one_byte_apdu_is_answered_6700_and_the_link_stays(vpcd: Vpcd, byte: int) -> None:
    card = Card()
    srv = serve(card, vpcd)
    try:
        vpcd.send(bytes((byte,)))
        assert vpcd.reply() == b"\x67\x00"
        vpcd.send(SELECT)
        assert vpcd.reply() == b"\x90\x00"
    finally:
        srv.stop()


def test_gentle_leave_answers_the_apdu_in_flight_then_says_no_card_at_the_poll(vpcd: Vpcd) -> None:
    card = Card(delay=0.3)
    srv = serve(card, vpcd)
    try:
        vpcd.send(SELECT)
        time.sleep(0.05)  # the card is working on it
        left: list[bool] = []
        leaver = threading.Thread(target=lambda: left.append(srv.leave(timeout=5)))
        leaver.start()
        assert vpcd.reply() == b"\x90\x00"  # the answer in flight is not lost
        vpcd.send(SELECT)  # before pcscd's poll the card is still in: answered too
        assert vpcd.reply() == b"\x90\x00"
        assert leaver.is_alive()
        vpcd.send(b"\x04")  # pcscd's presence poll
        assert vpcd.read(3) == NO_CARD
        leaver.join(5)
        assert left == [True]
        assert vpcd.read(1) == b""  # and the card side closed the link
    finally:
        srv.stop()


def test_leave_without_a_poll_tears_after_the_timeout(vpcd: Vpcd) -> None:
    srv = serve(Card(), vpcd)
    try:
        t0 = time.monotonic()
        assert srv.leave(timeout=0.3) is False
        assert time.monotonic() - t0 < 3
        assert vpcd.read(1) == b""
    finally:
        srv.stop()


def test_silent_vpcd_is_dropped_by_the_watchdog(vpcd: Vpcd, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0-byte SCardTransmit: vpcd sends nothing and waits; the link is dropped to free it."""
    monkeypatch.setattr(server_module, "WATCHDOG_SECONDS", 0.5)
    srv = serve(Card(), vpcd)
    try:
        t0 = time.monotonic()
        assert vpcd.read(1) == b""
        assert 0.4 < time.monotonic() - t0 < 5
    finally:
        srv.stop()


def test_a_proven_wrong_guess_drops_the_link(vpcd: Vpcd) -> None:
    """00 held back past its deadline is answered as an APDU; a power on with its GET ATR right
    after proves it was control: vpcd holds one reply too many, so the link is dropped."""
    srv = serve(Card(), vpcd)
    try:
        vpcd.send(b"\x00")
        assert vpcd.reply() == b"\x67\x00"
        vpcd.send(b"\x01")
        vpcd.send(b"\x04")
        assert vpcd.read(2) == b""
    finally:
        srv.stop()
