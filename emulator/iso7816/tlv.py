"""BER-TLV as used by ISO 7816-4 §5.2, GlobalPlatform and PIV.

Tags are kept as integers of their encoded bytes (``0x9F7F``, ``0x5FC105``),
as the specifications write them. Malformed command data raises
``CardError(SW.WRONG_DATA)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import CardError
from .sw import SW

__all__ = ["TLV", "encode_length", "encode_tlv", "find_tlv", "iter_tlvs", "parse_tlvs", "tag_bytes"]


def tag_bytes(tag: int) -> bytes:
    """The encoded bytes of a tag given as an integer (``0x5FC105`` -> 3 bytes)."""
    if tag < 0:
        raise ValueError(f"tag must be non-negative, got {tag}")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_length(n: int) -> bytes:
    """BER definite length: short form below 128, else 81/82/83 + bytes."""
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return b"\x81" + bytes((n,))
    if n <= 0xFFFF:
        return b"\x82" + n.to_bytes(2, "big")
    if n <= 0xFFFFFF:
        return b"\x83" + n.to_bytes(3, "big")
    raise ValueError(f"length {n} does not fit in three bytes")


def encode_tlv(tag: int, value: bytes | Iterable[bytes]) -> bytes:
    """One TLV; ``value`` may be a list of already encoded children."""
    body = value if isinstance(value, (bytes, bytearray)) else b"".join(value)
    return tag_bytes(tag) + encode_length(len(body)) + bytes(body)


@dataclass(frozen=True, slots=True)
class TLV:
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        """b6 of the first tag byte (ISO 8825-1 §8.1.2.5)."""
        return bool(tag_bytes(self.tag)[0] & 0x20)

    def children(self) -> list[TLV]:
        return parse_tlvs(self.value)

    def __bytes__(self) -> bytes:
        return encode_tlv(self.tag, self.value)


def _read_tag(data: bytes, i: int) -> tuple[int, int]:
    first = data[i]
    i += 1
    tag = first
    if first & 0x1F == 0x1F:  # subsequent bytes follow while b8 is set
        while True:
            if i >= len(data):
                raise CardError(SW.WRONG_DATA, "truncated tag")
            b = data[i]
            i += 1
            tag = (tag << 8) | b
            if tag > 0xFFFFFF:
                raise CardError(SW.WRONG_DATA, "tag longer than three bytes")
            if not b & 0x80:
                break
    return tag, i


def _read_length(data: bytes, i: int) -> tuple[int, int]:
    if i >= len(data):
        raise CardError(SW.WRONG_DATA, "missing length")
    first = data[i]
    i += 1
    if first < 0x80:
        return first, i
    count = first & 0x7F
    if count == 0 or count > 3:
        raise CardError(SW.WRONG_DATA, f"unsupported length form {first:02X}")
    if i + count > len(data):
        raise CardError(SW.WRONG_DATA, "truncated length")
    return int.from_bytes(data[i : i + count], "big"), i + count


def iter_tlvs(data: bytes) -> Iterator[TLV]:
    """Yield the TLVs at one level; 00/FF padding between them is skipped."""
    i = 0
    n = len(data)
    while i < n:
        if data[i] in (0x00, 0xFF):
            i += 1
            continue
        tag, i = _read_tag(data, i)
        length, i = _read_length(data, i)
        if i + length > n:
            raise CardError(SW.WRONG_DATA, f"TLV {tag:X} claims {length} bytes, {n - i} left")
        yield TLV(tag, bytes(data[i : i + length]))
        i += length


def parse_tlvs(data: bytes) -> list[TLV]:
    return list(iter_tlvs(data))


def find_tlv(data: bytes | Iterable[TLV], tag: int) -> TLV | None:
    """The first TLV with ``tag`` at one level, or None."""
    items = iter_tlvs(data) if isinstance(data, (bytes, bytearray)) else data
    for item in items:
        if item.tag == tag:
            return item
    return None
