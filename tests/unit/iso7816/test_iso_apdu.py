"""CommandAPDU parsing and encoding (ISO/IEC 7816-4 §5.1-5.4), hex vectors plus a round-trip property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.iso7816 import (
    EXTENDED_LE_MAX,
    SHORT_LE_MAX,
    SW,
    CardError,
    CLAKind,
    CommandAPDU,
    ResponseAPDU,
    sw_more_data,
    sw_name,
    sw_retries_left,
    sw_wrong_le,
)

h = bytes.fromhex


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # case 1
        ("00 A4 04 00", CommandAPDU(0x00, 0xA4, 0x04, 0x00)),
        # case 2S: Le 01..FF, and 00 meaning 256
        ("00 CA 9F 7F 2D", CommandAPDU(0x00, 0xCA, 0x9F, 0x7F, ne=0x2D)),
        ("80 CA 00 66 00", CommandAPDU(0x80, 0xCA, 0x00, 0x66, ne=256)),
        # case 3S: Lc 01 and Lc FF
        ("00 20 00 80 01 AA", CommandAPDU(0x00, 0x20, 0x00, 0x80, h("AA"))),
        ("00 DB 3F FF FF" + "11" * 255, CommandAPDU(0x00, 0xDB, 0x3F, 0xFF, b"\x11" * 255)),
        # case 4S
        (
            "00 A4 04 00 08 A0 00 00 01 51 00 00 00 00",
            CommandAPDU(0x00, 0xA4, 0x04, 0x00, h("A000000151000000"), 256),
        ),
        ("00 CB 3F FF 05 5C 03 5F C1 05 10", CommandAPDU(0x00, 0xCB, 0x3F, 0xFF, h("5C035FC105"), 0x10)),
        # case 2E: Le 0001 and 0000 meaning 65536
        ("00 C0 00 00 00 01 00", CommandAPDU(0x00, 0xC0, 0x00, 0x00, ne=256, extended=True)),
        ("00 C0 00 00 00 00 00", CommandAPDU(0x00, 0xC0, 0x00, 0x00, ne=EXTENDED_LE_MAX, extended=True)),
        ("00 C0 00 00 00 00 01", CommandAPDU(0x00, 0xC0, 0x00, 0x00, ne=1, extended=True)),
        # case 3E: short-sized data in extended form, and 256 bytes
        ("00 20 00 80 00 00 02 AA BB", CommandAPDU(0x00, 0x20, 0x00, 0x80, h("AABB"), extended=True)),
        ("00 DB 3F FF 00 01 00" + "22" * 256, CommandAPDU(0x00, 0xDB, 0x3F, 0xFF, b"\x22" * 256, extended=True)),
        # case 4E
        (
            "00 CB 3F FF 00 00 05 5C 03 5F C1 05 00 00",
            CommandAPDU(0x00, 0xCB, 0x3F, 0xFF, h("5C035FC105"), EXTENDED_LE_MAX, True),
        ),
        (
            "00 87 07 9A 00 00 02 7C 00 01 02",
            CommandAPDU(0x00, 0x87, 0x07, 0x9A, h("7C00"), 0x102, True),
        ),
    ],
)
def test_parse_cases_short_and_extended(raw: str, expected: CommandAPDU) -> None:
    assert CommandAPDU.parse(h(raw)) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "00",
        "00 A4",
        "00 A4 04",  # no complete header
        "00 A4 04 00 02 AA",  # Lc 2, one byte of data
        "00 A4 04 00 01 AA BB CC",  # Lc 1, three bytes of body
        "00 A4 04 00 00 00",  # six bytes: truncated extended
        "00 A4 04 00 00 00 00 AA",  # extended Lc of zero
        "00 A4 04 00 00 00 03 AA BB",  # extended Lc 3, two bytes
        "00 A4 04 00 00 00 01 AA BB",  # extended Lc 1, one stray byte
        "00 A4 04 00 00 00 01 AA BB CC DD",  # extended Lc 1, three stray bytes
        "00 A4 04 00 FF" + "00" * 254,  # Lc 255, 254 bytes
        "00 A4 04 00 FF" + "00" * 257,  # Lc 255, 257 bytes
    ],
)
def test_malformed_length_is_wrong_length(raw: str) -> None:
    with pytest.raises(CardError) as info:
        CommandAPDU.parse(h(raw))
    assert info.value.sw == SW.WRONG_LENGTH


@pytest.mark.parametrize("cla", [0x20, 0x2F, 0x3F, 0xA0, 0xB5, 0xBF, 0xFF])
def test_reserved_cla_is_cla_not_supported(cla: int) -> None:
    with pytest.raises(CardError) as info:
        CommandAPDU.parse(bytes((cla, 0xA4, 0x04, 0x00)))
    assert info.value.sw == SW.CLA_NOT_SUPPORTED


@given(st.binary(max_size=300))
def test_parse_raises_only_card_error(raw: bytes) -> None:
    try:
        CommandAPDU.parse(raw)
    except CardError as exc:
        assert exc.sw in (SW.WRONG_LENGTH, SW.CLA_NOT_SUPPORTED)


@pytest.mark.parametrize(
    ("cla", "kind", "channel", "chained", "sm"),
    [
        (0x00, CLAKind.FIRST_INTERINDUSTRY, 0, False, False),
        (0x03, CLAKind.FIRST_INTERINDUSTRY, 3, False, False),
        (0x13, CLAKind.FIRST_INTERINDUSTRY, 3, True, False),
        (0x0C, CLAKind.FIRST_INTERINDUSTRY, 0, False, True),
        (0x40, CLAKind.FURTHER_INTERINDUSTRY, 4, False, False),
        (0x4F, CLAKind.FURTHER_INTERINDUSTRY, 19, False, False),
        (0x70, CLAKind.FURTHER_INTERINDUSTRY, 4, True, True),
        (0x80, CLAKind.PROPRIETARY, 0, False, False),
        (0x84, CLAKind.PROPRIETARY, 0, False, True),
        (0xC1, CLAKind.PROPRIETARY, 5, False, False),
    ],
)
def test_class_byte_fields(cla: int, kind: CLAKind, channel: int, chained: bool, sm: bool) -> None:
    cmd = CommandAPDU(cla, 0xCA, 0x00, 0x66)
    assert (cmd.cla_kind, cmd.channel, cmd.chained, cmd.secure_messaging) == (kind, channel, chained, sm)
    assert cmd.proprietary == bool(cla & 0x80)


@pytest.mark.parametrize(
    ("cmd", "raw"),
    [
        (CommandAPDU(0x00, 0xA4, 0x04, 0x00), "00A40400"),
        (CommandAPDU(0x00, 0xCA, 0x00, 0x66, ne=256), "00CA006600"),
        (CommandAPDU(0x00, 0xCA, 0x00, 0x66, ne=257), "00CA0066000101"),
        (CommandAPDU(0x00, 0xC0, 0x00, 0x00, ne=EXTENDED_LE_MAX, extended=True), "00C00000000000"),
        (CommandAPDU(0x00, 0x20, 0x00, 0x80, b"\x01" * 256), "00200080000100" + "01" * 256),
        (CommandAPDU(0x00, 0x20, 0x00, 0x80, h("AA"), ne=EXTENDED_LE_MAX), "00200080000001AA0000"),
    ],
)
def test_encode_vectors(cmd: CommandAPDU, raw: str) -> None:
    assert bytes(cmd) == h(raw)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("cla", {"cla": 0x100}),
        ("ins", {"ins": -1}),
        ("p2", {"p2": 0x1FF}),
        ("ne", {"ne": EXTENDED_LE_MAX + 1}),
        ("data", {"data": bytes(0x10000)}),
    ],
)
def test_invalid_fields_name_the_field(field: str, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"cla": 0, "ins": 0xA4, "p1": 4, "p2": 0} | kwargs
    with pytest.raises(ValueError, match=field):
        CommandAPDU(**args)  # type: ignore[arg-type]


VALID_CLA = st.integers(0, 0xFF).filter(lambda c: not (c == 0xFF or 0x20 <= c <= 0x3F or 0xA0 <= c <= 0xBF))
BYTE = st.integers(0, 0xFF)


@st.composite
def commands(draw: st.DrawFn) -> CommandAPDU:
    """Valid commands: the extended flag is set only where an extended form exists."""
    extended = draw(st.booleans())
    data_max = 0xFFFF if extended else 255
    data = draw(st.binary(max_size=min(data_max, 600)) | st.binary(min_size=data_max - 2, max_size=data_max))
    ne = draw(st.integers(0, EXTENDED_LE_MAX if extended else SHORT_LE_MAX))
    if not data and not ne:  # case 1 has no extended form
        extended = False
    return CommandAPDU(draw(VALID_CLA), draw(BYTE), draw(BYTE), draw(BYTE), data, ne, extended)


@given(commands())
def test_round_trip(cmd: CommandAPDU) -> None:
    assert CommandAPDU.parse(bytes(cmd)) == cmd


def test_response_apdu_codec() -> None:
    resp = ResponseAPDU.from_bytes(h("0102 6188"))
    assert resp == ResponseAPDU(h("0102"), 0x6188)
    assert bytes(resp) == h("01026188")
    assert not resp.ok
    assert ResponseAPDU().ok
    with pytest.raises(ValueError):
        ResponseAPDU.from_bytes(b"\x90")
    with pytest.raises(ValueError, match="sw"):
        ResponseAPDU(sw=0x10000)


def test_sw_families() -> None:
    assert sw_more_data(0x88) == 0x6188
    assert sw_more_data(256) == sw_more_data(1000) == 0x6100
    assert sw_wrong_le(5) == 0x6C05
    assert sw_wrong_le(256) == 0x6C00
    assert sw_retries_left(3) == 0x63C3
    assert sw_retries_left(99) == 0x63CF
    assert sw_name(0x6A82) == "FILE_NOT_FOUND"
    assert sw_name(0x6110) == "MORE_DATA(16)"
    assert sw_name(0x6C02) == "WRONG_LE(2)"
    assert sw_name(0x63C1) == "RETRIES_LEFT(1)"
    assert sw_name(0x6789) == "6789"


def test_card_error_carries_sw_and_names_it() -> None:
    err = CardError(SW.FILE_NOT_FOUND)
    assert err.sw == 0x6A82
    assert "FILE_NOT_FOUND" in str(err)
    assert str(CardError(SW.WRONG_DATA, "bad TLV")) == "bad TLV"
