"""Command and response APDUs (ISO/IEC 7816-4 §5.1-5.4).

``CommandAPDU.parse`` accepts the four cases in short and extended form and
answers every other byte string with ``CardError(SW.WRONG_LENGTH)`` or
``CardError(SW.CLA_NOT_SUPPORTED)``; it never raises anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from .errors import CardError
from .sw import SW

__all__ = ["EXTENDED_LE_MAX", "SHORT_LE_MAX", "CLAKind", "CommandAPDU", "ResponseAPDU"]

SHORT_LE_MAX = 256  #: Le byte 00 in a short APDU
EXTENDED_LE_MAX = 65536  #: Le bytes 0000 in an extended APDU
HEADER_LEN = 4


class CLAKind(IntEnum):
    """How the class byte is laid out (ISO 7816-4 §5.4.1, GPCS §11.1.4)."""

    FIRST_INTERINDUSTRY = 0  #: 000x xxxx: channels 0-3, SM in b4-b3
    FURTHER_INTERINDUSTRY = 1  #: 01xx xxxx: channels 4-19, SM in b6
    PROPRIETARY = 2  #: 1xxx xxxx, laid out like the interindustry forms (GP)


def _cla_kind(cla: int) -> CLAKind:
    if cla == 0xFF or 0x20 <= cla <= 0x3F or 0xA0 <= cla <= 0xBF:
        raise CardError(SW.CLA_NOT_SUPPORTED, f"CLA {cla:02X} is not a 7816-4 or GP class")
    if cla & 0x80:
        return CLAKind.PROPRIETARY
    if cla & 0x40:
        return CLAKind.FURTHER_INTERINDUSTRY
    return CLAKind.FIRST_INTERINDUSTRY


@dataclass(frozen=True, slots=True)
class CommandAPDU:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    ne: int = 0  #: expected response length; 0: no Le field
    extended: bool = False  #: the command arrived in extended-length form

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must be 0x00-0xFF, got {value:#x}")
        if not 0 <= self.ne <= EXTENDED_LE_MAX:
            raise ValueError(f"ne must be 0-{EXTENDED_LE_MAX}, got {self.ne}")
        if len(self.data) > 0xFFFF:
            raise ValueError(f"data must be at most 65535 bytes, got {len(self.data)}")

    @classmethod
    def parse(cls, raw: bytes) -> CommandAPDU:
        """Decode one command APDU; malformed input raises ``CardError``."""
        n = len(raw)
        if n < HEADER_LEN:
            raise CardError(SW.WRONG_LENGTH, f"APDU of {n} bytes has no header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        _cla_kind(cla)
        if n == HEADER_LEN:  # case 1
            return cls(cla, ins, p1, p2)
        b5 = raw[4]
        if n == 5:  # case 2S
            return cls(cla, ins, p1, p2, ne=b5 or SHORT_LE_MAX)
        if b5 != 0:  # case 3S / 4S
            if n == 5 + b5:
                return cls(cla, ins, p1, p2, bytes(raw[5:]))
            if n == 6 + b5:
                return cls(cla, ins, p1, p2, bytes(raw[5:-1]), raw[-1] or SHORT_LE_MAX)
            raise CardError(SW.WRONG_LENGTH, f"Lc {b5} does not match {n - 5} bytes of body")
        if n == 7:  # case 2E
            le = int.from_bytes(raw[5:7], "big")
            return cls(cla, ins, p1, p2, ne=le or EXTENDED_LE_MAX, extended=True)
        if n < 8:
            raise CardError(SW.WRONG_LENGTH, "truncated extended APDU")
        lc = int.from_bytes(raw[5:7], "big")
        if lc == 0:
            raise CardError(SW.WRONG_LENGTH, "extended Lc of zero")
        if n == 7 + lc:  # case 3E
            return cls(cla, ins, p1, p2, bytes(raw[7:]), extended=True)
        if n == 9 + lc:  # case 4E
            le = int.from_bytes(raw[-2:], "big")
            return cls(cla, ins, p1, p2, bytes(raw[7:-2]), le or EXTENDED_LE_MAX, True)
        raise CardError(SW.WRONG_LENGTH, f"extended Lc {lc} does not match {n - 7} bytes")

    def __bytes__(self) -> bytes:
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        ext = self.extended or len(self.data) > 255 or self.ne > SHORT_LE_MAX
        body = b""
        if self.data:
            lc = len(self.data)
            body = (b"\x00" + lc.to_bytes(2, "big") if ext else bytes((lc,))) + self.data
        if self.ne:
            if ext:
                le = (self.ne % EXTENDED_LE_MAX).to_bytes(2, "big")
                body += le if self.data else b"\x00" + le
            else:
                body += bytes((self.ne % SHORT_LE_MAX,))
        return header + body

    # -- class byte ---------------------------------------------------------
    @property
    def cla_kind(self) -> CLAKind:
        return _cla_kind(self.cla)

    @property
    def channel(self) -> int:
        """Logical channel number 0-19 coded in CLA."""
        if self.cla & 0x40:
            return (self.cla & 0x0F) + 4
        return self.cla & 0x03

    @property
    def chained(self) -> bool:
        """CLA b5: more commands of this chain follow (ISO 7816-4 §5.4.1)."""
        return bool(self.cla & 0x10)

    @property
    def secure_messaging(self) -> bool:
        """CLA indicates secure messaging (b4-b3 or, further classes, b6)."""
        if self.cla & 0x40:
            return bool(self.cla & 0x20)
        return bool(self.cla & 0x0C)

    @property
    def proprietary(self) -> bool:
        return bool(self.cla & 0x80)

    def with_data(self, data: bytes, *, cla: int | None = None) -> CommandAPDU:
        """A copy with new data (and optionally CLA), e.g. after unwrapping."""
        return replace(self, data=data, cla=self.cla if cla is None else cla)


@dataclass(frozen=True, slots=True)
class ResponseAPDU:
    data: bytes = b""
    sw: int = SW.OK

    def __post_init__(self) -> None:
        if not 0 <= self.sw <= 0xFFFF:
            raise ValueError(f"sw must be 0x0000-0xFFFF, got {self.sw:#x}")

    def __bytes__(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseAPDU:
        if len(raw) < 2:
            raise ValueError(f"a response needs at least SW1 SW2, got {len(raw)} bytes")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK
