"""Host-side ISO 7816-4: command and response APDUs, status words, one BER-TLV.

Written on the host side and apart from the card's ``emulator/iso7816``
(design.md, "Host side and card side are written apart"): the two agree
because both follow ISO/IEC 7816-4, and the end-to-end tests check that.

Everything here is pure: bytes in, values out, no I/O. A card answer that
cannot be decoded raises :class:`BadResponseError`; a status word other than
the one expected becomes an :class:`ApduError` carrying it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "MAX_EXTENDED_LC",
    "MAX_SHORT_LC",
    "SW",
    "TRAFFIC",
    "ApduError",
    "BadResponseError",
    "CommandAPDU",
    "ResponseAPDU",
    "Tlv",
    "describe_command",
    "describe_response",
    "encode_tlv",
    "exact_length",
    "find_tlv",
    "more_data",
    "parse_tlvs",
    "retries_left",
    "sw_name",
]

#: log level of raw APDUs, below DEBUG (style.md §2.11); data of sensitive commands is redacted
TRAFFIC = 5

MAX_SHORT_LC = 255  #: largest Lc of a short APDU (ISO 7816-4 §5.1)
MAX_SHORT_NE = 256  #: Le 00 in a short APDU
MAX_EXTENDED_LC = 65535  #: largest Lc of an extended APDU
MAX_EXTENDED_NE = 65536  #: Le 0000 in an extended APDU
SW_LEN = 2
CLA_CHAINING = 0x10  #: command chaining: more commands of this chain follow (ISO 7816-4 §5.1.1)
CLA_SECURE_MESSAGING = 0x04  #: SM indication in first-interindustry and GP classes


class SW(IntEnum):
    """Status words the host side names (ISO 7816-4 §5.6, GPCS §11, SP 800-73-4 part 2 Table 6).

    Families with a count in SW2 (61xx, 63Cx, 6Cxx) are functions, not members.
    """

    OK = 0x9000
    WARNING_CARD_LOCKED = 0x6283  #: SELECT of the ISD while the card is locked (GPCS §11.9.4)
    AUTHENTICATION_FAILED = 0x6300  #: GP: host cryptogram wrong
    MORE_STATUS = 0x6310  #: GET STATUS: more entries follow (GPCS §11.4.4)
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    SM_DATA_OBJECTS_MISSING = 0x6987
    SM_DATA_OBJECTS_INCORRECT = 0x6988
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


def sw_name(sw: int) -> str:
    """``6982 (SECURITY_STATUS_NOT_SATISFIED)``, ``63C2 (2 tries left)``, or the bare hex."""
    try:
        return f"{sw:04X} ({SW(sw).name})"
    except ValueError:
        pass
    if (left := retries_left(sw)) is not None:
        return f"{sw:04X} ({left} tries left)"
    if sw >> 8 == 0x61:
        return f"{sw:04X} (more data)"
    if sw >> 8 == 0x6C:
        return f"{sw:04X} (wrong Le, use {sw & 0xFF:02X})"
    return f"{sw:04X}"


def retries_left(sw: int) -> int | None:
    """63Cx: verification failed, x tries left (ISO 7816-4 §5.6, SP 800-73-4 part 2 §3.2.1)."""
    return sw & 0x0F if sw & 0xFFF0 == 0x63C0 else None


def more_data(sw: int) -> int | None:
    """61xx: xx bytes wait for GET RESPONSE; xx 00 means 256 or more (returned as 256)."""
    return (sw & 0xFF or MAX_SHORT_NE) if sw >> 8 == 0x61 else None


def exact_length(sw: int) -> int | None:
    """6Cxx: wrong Le, resend with Le xx (00 means 256)."""
    return (sw & 0xFF or MAX_SHORT_NE) if sw >> 8 == 0x6C else None


class BadResponseError(ValueError):
    """The card's answer does not decode (truncated, wrong TLV, wrong length)."""


class ApduError(Exception):
    """The card answered a status word other than the one the caller needed.

    ``sw`` is the status word, ``data`` whatever data came with it. ``str``
    names the status word so a log line or CLI message says what happened.
    """

    def __init__(self, sw: int, data: bytes = b"", detail: str = "") -> None:
        self.sw = sw
        self.data = data
        self.detail = detail
        super().__init__(sw, data)

    def __str__(self) -> str:
        prefix = f"{self.detail}: " if self.detail else ""
        return f"{prefix}SW {sw_name(self.sw)}"


def _check_byte(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0x00 <= value <= 0xFF:
        raise ValueError(f"{name} must be a byte 0x00-0xFF, got {value!r}")


@dataclass(frozen=True, slots=True)
class CommandAPDU:
    """A command APDU (ISO 7816-4 §5.1). ``ne`` is the number of response bytes expected.

    ``ne`` 0 means no Le field; 256 is Le 00 of a short APDU, 65536 Le 0000 of
    an extended one. ``bytes(cmd)`` picks the short form when it fits;
    :meth:`encode` with ``extended=True`` forces the extended form. The data
    stays out of ``repr`` (it may be a PIN or a key).
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = field(default=b"", repr=False)
    ne: int = 0

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            _check_byte(name, getattr(self, name))
        if not isinstance(self.data, bytes):
            raise TypeError(f"data must be bytes, got {type(self.data).__name__}")
        if len(self.data) > MAX_EXTENDED_LC:
            raise ValueError(f"data must be at most {MAX_EXTENDED_LC} bytes, got {len(self.data)}")
        if not 0 <= self.ne <= MAX_EXTENDED_NE:
            raise ValueError(f"ne must be 0-{MAX_EXTENDED_NE}, got {self.ne}")

    @property
    def fits_short(self) -> bool:
        return len(self.data) <= MAX_SHORT_LC and self.ne <= MAX_SHORT_NE

    def encode(self, *, extended: bool | None = None) -> bytes:
        """Cases 1-4 (ISO 7816-4 §5.1); ``extended`` None: short when it fits."""
        if extended is None:
            extended = not self.fits_short
        if not extended and not self.fits_short:
            raise ValueError(f"{len(self.data)} data bytes / ne {self.ne} do not fit a short APDU")
        out = bytes((self.cla, self.ins, self.p1, self.p2))
        if not extended:
            if self.data:
                out += bytes((len(self.data),)) + self.data
            if self.ne:
                out += bytes((self.ne % MAX_SHORT_NE,))
            return out
        if self.data:
            out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
        if self.ne:
            out += (b"" if self.data else b"\x00") + (self.ne % MAX_EXTENDED_NE).to_bytes(2, "big")
        return out

    def __bytes__(self) -> bytes:
        return self.encode()

    @classmethod
    def parse(cls, raw: bytes) -> CommandAPDU:
        """Decode cases 1-4, short or extended; ``ValueError`` if the lengths disagree."""
        if len(raw) < 4:
            raise ValueError(f"a command APDU has at least 4 bytes, got {len(raw)}")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, ne=body[0] or MAX_SHORT_NE)
        if body[0] != 0:  # short, Lc present
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, body[1:-1], ne=body[-1] or MAX_SHORT_NE)
            raise ValueError(f"short APDU of {len(raw)} bytes does not match Lc {lc}")
        if len(body) == 3:  # extended, Le only
            return cls(cla, ins, p1, p2, ne=int.from_bytes(body[1:], "big") or MAX_EXTENDED_NE)
        lc = int.from_bytes(body[1:3], "big")
        rest = body[3:]
        if lc and len(rest) == lc:
            return cls(cla, ins, p1, p2, rest)
        if lc and len(rest) == lc + 2:
            return cls(cla, ins, p1, p2, rest[:lc], ne=int.from_bytes(rest[lc:], "big") or MAX_EXTENDED_NE)
        raise ValueError(f"extended APDU of {len(raw)} bytes does not match Lc {lc}")


@dataclass(frozen=True, slots=True)
class ResponseAPDU:
    """A response APDU: data and the status word (ISO 7816-4 §5.1)."""

    data: bytes = field(default=b"", repr=False)
    sw: int = SW.OK

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseAPDU:
        if len(raw) < SW_LEN:
            raise BadResponseError(f"a response ends with SW1 SW2; got {len(raw)} bytes")
        return cls(bytes(raw[:-SW_LEN]), int.from_bytes(raw[-SW_LEN:], "big"))

    def __bytes__(self) -> bytes:
        return self.data + self.sw.to_bytes(SW_LEN, "big")

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    def check(self, detail: str = "") -> bytes:
        """The data when the SW is 9000, else :class:`ApduError`."""
        if self.sw != SW.OK:
            raise ApduError(self.sw, self.data, detail)
        return self.data


# -- BER-TLV (ISO 7816-4 §5.2, Annex D.2 of ISO 8825-1) ----------------------------------
@dataclass(frozen=True, slots=True)
class Tlv:
    """One BER-TLV data object; ``tag`` is the whole tag as an int (``0x7F49``, ``0x5FC102``)."""

    tag: int
    value: bytes = b""

    def __bytes__(self) -> bytes:
        return encode_tlv(self.tag, self.value)


def _tag_bytes(tag: int) -> bytes:
    if not isinstance(tag, int) or not 0 < tag <= 0xFFFFFF:
        raise ValueError(f"tag must be 0x01-0xFFFFFF, got {tag!r}")
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big")


def _length_bytes(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    size = (length.bit_length() + 7) // 8
    if size > 3:
        raise ValueError(f"TLV value of {length} bytes is too long")
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


def encode_tlv(tag: int, value: bytes = b"") -> bytes:
    """Tag, definite length (short or long form), value."""
    return _tag_bytes(tag) + _length_bytes(len(value)) + value


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:  # subsequent tag bytes, b8 set on all but the last
        while True:
            if pos >= len(data):
                raise BadResponseError("TLV tag runs past the end")
            tag = (tag << 8) | data[pos]
            pos += 1
            if not data[pos - 1] & 0x80:
                break
            if tag > 0xFFFFFF:
                raise BadResponseError("TLV tag longer than 3 bytes")
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise BadResponseError("TLV length missing")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    size = first & 0x7F
    if not 1 <= size <= 3 or pos + size > len(data):
        raise BadResponseError(f"bad TLV length byte {first:02X}")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def parse_tlvs(data: bytes) -> list[Tlv]:
    """Decode a sequence of data objects; 00/FF padding between them is skipped.

    Constructed values are returned as bytes: call again on ``value`` to go in.
    """
    out: list[Tlv] = []
    pos = 0
    while pos < len(data):
        if data[pos] in (0x00, 0xFF):
            pos += 1
            continue
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        if pos + length > len(data):
            raise BadResponseError(f"TLV {tag:X} of {length} bytes runs past the end")
        out.append(Tlv(tag, bytes(data[pos : pos + length])))
        pos += length
    return out


def find_tlv(items: bytes | Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with ``tag`` at this level (``items`` parsed if bytes)."""
    for item in parse_tlvs(items) if isinstance(items, bytes | bytearray) else items:
        if item.tag == tag:
            return item
    return None


# -- traffic log lines -------------------------------------------------------------------
#: instructions whose command data is a secret: VERIFY, CHANGE REFERENCE DATA, RESET RETRY
#: COUNTER, GENERAL AUTHENTICATE (witnesses, plaintexts), PUT KEY, INITIALIZE UPDATE, EXTERNAL
#: AUTHENTICATE, YubiKey IMPORT KEY and SET MANAGEMENT KEY
SECRET_COMMAND_INS = frozenset({0x20, 0x24, 0x2C, 0x87, 0xD8, 0x50, 0x82, 0xFE, 0xFF})
#: instructions whose response data is a secret: GENERAL AUTHENTICATE (decrypted blocks, ECDH)
SECRET_RESPONSE_INS = frozenset({0x87, 0x50})


def _has_sm(cla: int) -> bool:
    """SM indicated: b3 in classes 0x/8x-Fx, b6 in further interindustry 4x-7x (ISO 7816-4 §5.4.1)."""
    if cla & 0xC0 == 0x40:
        return bool(cla & 0x20)
    return bool(cla & CLA_SECURE_MESSAGING)


def describe_command(cmd: CommandAPDU, *, secure: bool = False) -> str:
    """A TRAFFIC log line for ``cmd``; secret data and anything under SM (``secure``) is redacted."""
    head = f"{cmd.cla:02X} {cmd.ins:02X} {cmd.p1:02X} {cmd.p2:02X}"
    if not cmd.data:
        body = ""
    elif secure or cmd.ins in SECRET_COMMAND_INS or _has_sm(cmd.cla):
        body = f" [{len(cmd.data)} bytes redacted]"
    else:
        body = f" {cmd.data.hex().upper()}"
    le = f" Le={cmd.ne}" if cmd.ne else ""
    return head + body + le


def describe_response(ins: int, resp: ResponseAPDU, *, secure: bool = False) -> str:
    """A TRAFFIC log line for the answer to a command with ``ins`` (``secure``: under SM)."""
    if not resp.data:
        return f"SW {sw_name(resp.sw)}"
    if secure or ins in SECRET_RESPONSE_INS:
        return f"[{len(resp.data)} bytes redacted] SW {sw_name(resp.sw)}"
    return f"{resp.data.hex().upper()} SW {sw_name(resp.sw)}"
