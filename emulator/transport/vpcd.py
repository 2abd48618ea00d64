"""The vpcd wire protocol, sans-I/O (vsmartcard ``vpcd.c``): framing only.

Every message in either direction is a 2-byte big-endian length and a
payload. vpcd sends four one-byte control messages (power off 00, power on
01, reset 02, get ATR 04) and every command APDU, framed the same way. A
1-byte ``SCardTransmit`` therefore reaches the card as a 1-byte payload that
may look exactly like a control message: the decoder only says what a
payload *may* be (``Frame.ctrl``); :mod:`emulator.transport.link` decides
what it *is* from what vpcd sends next (see the rule there). A 1-byte
payload that is no control byte is a (too short) APDU, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["LENGTH_BYTES", "MAX_PAYLOAD", "Ctrl", "Frame", "VpcdDecoder", "encode_frame"]

LENGTH_BYTES = 2
MAX_PAYLOAD = 0xFFFF


class Ctrl(IntEnum):
    """One-byte control payloads (vpcd.h ``VPCD_CTRL_*``)."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    GET_ATR = 0x04


@dataclass(frozen=True, slots=True)
class Frame:
    """One message from vpcd: a 1-byte payload that may be a control byte, or an APDU."""

    ctrl: Ctrl | None = None
    apdu: bytes = b""

    @property
    def is_control(self) -> bool:
        """The payload is one control byte (or a 1-byte APDU equal to it: the link decides)."""
        return self.ctrl is not None

    @property
    def payload(self) -> bytes:
        return bytes((self.ctrl,)) if self.ctrl is not None else self.apdu


def encode_frame(payload: bytes) -> bytes:
    """Length prefix + payload, ready for one ``sendall``."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload must be at most {MAX_PAYLOAD} bytes, got {len(payload)}")
    return len(payload).to_bytes(LENGTH_BYTES, "big") + payload


class VpcdDecoder:
    """Reassembles frames from a byte stream that may split or join them."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every frame completed by them."""
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        while len(buf) >= LENGTH_BYTES:
            n = (buf[0] << 8) | buf[1]
            end = LENGTH_BYTES + n
            if len(buf) < end:
                break
            payload = bytes(buf[LENGTH_BYTES:end])
            del buf[:end]
            frames.append(_frame(payload))
        return frames

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buf)


_CTRL_BYTES = frozenset(int(c) for c in Ctrl)


def _frame(payload: bytes) -> Frame:
    if len(payload) == 1 and payload[0] in _CTRL_BYTES:
        return Frame(ctrl=Ctrl(payload[0]))
    return Frame(apdu=payload)
