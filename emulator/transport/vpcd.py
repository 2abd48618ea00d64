"""The vpcd wire protocol, sans-I/O (vsmartcard ``vpcd.c``).

Every message in either direction is a 2-byte big-endian length and a
payload. From vpcd, a payload of one byte is a control message (power off,
power on, reset, get ATR); anything longer is a command APDU. The card
answers GET ATR with the ATR (an empty payload means "no card") and an APDU
with the response APDU; power messages get no answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["LENGTH_BYTES", "MAX_PAYLOAD", "Ctrl", "Frame", "VpcdDecoder", "VpcdProtocolError", "encode_frame"]

LENGTH_BYTES = 2
MAX_PAYLOAD = 0xFFFF


class Ctrl(IntEnum):
    """One-byte control payloads (vpcd.h ``VPCD_CTRL_*``)."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    GET_ATR = 0x04


class VpcdProtocolError(ValueError):
    """The peer sent something that is not vpcd framing (e.g. an unknown control byte)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One message from vpcd: a control byte or an APDU."""

    ctrl: Ctrl | None = None
    apdu: bytes = b""

    @property
    def is_control(self) -> bool:
        return self.ctrl is not None


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


def _frame(payload: bytes) -> Frame:
    if len(payload) == 1:
        try:
            return Frame(ctrl=Ctrl(payload[0]))
        except ValueError:
            raise VpcdProtocolError(f"unknown vpcd control byte {payload[0]:02X}") from None
    return Frame(apdu=payload)
