"""Host-side ISO 7816-4 values: APDU encodings (short and extended), SW names, BER-TLV."""

from __future__ import annotations

from typing import Any

import pytest

from minidriver.iso7816 import (
    SW,
    ApduError,
    BadResponseError,
    CommandAPDU,
    ResponseAPDU,
    Tlv,
    describe_command,
    encode_tlv,
    find_tlv,
    parse_tlvs,
    retries_left,
    sw_name,
)

H = bytes.fromhex


@pytest.mark.parametrize(
    ("cmd", "wire"),
    [
        (CommandAPDU(0x00, 0xA4, 0x04, 0x00), "00A40400"),  # case 1
        (CommandAPDU(0x00, 0xFD, 0x00, 0x00, ne=256), "00FD000000"),  # case 2, Le 00 = 256
        (CommandAPDU(0x00, 0x20, 0x00, 0x80, H("31323334")), "00200080 04 31323334"),  # case 3
        (CommandAPDU(0x00, 0xCB, 0x3F, 0xFF, H("5C015F"), 256), "00CB3FFF 03 5C015F 00"),  # case 4
        (CommandAPDU(0x00, 0xCB, 0x3F, 0xFF, ne=65536), "00CB3FFF 00 0000"),  # case 2E
        (CommandAPDU(0x00, 0xDB, 0x3F, 0xFF, bytes(300)), "00DB3FFF 00012C" + "00" * 300),  # case 3E
        (CommandAPDU(0x00, 0xDB, 0x3F, 0xFF, bytes(256), 1000), "00DB3FFF 000100" + "00" * 256 + "03E8"),  # 4E
    ],
)
def test_command_encodes_short_when_it_fits_else_extended(cmd: CommandAPDU, wire: str) -> None:
    assert bytes(cmd) == H(wire)
    assert CommandAPDU.parse(H(wire)) == cmd


def test_forced_extended_encoding_of_a_small_command() -> None:
    cmd = CommandAPDU(0x00, 0xCB, 0x3F, 0xFF, H("5C01"), 256)
    assert cmd.encode(extended=True) == H("00CB3FFF 000002 5C01 0100")


def test_short_encoding_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="short APDU"):
        CommandAPDU(0x00, 0xDB, 0x3F, 0xFF, bytes(256)).encode(extended=False)


@pytest.mark.parametrize("field", ["cla", "ins", "p1", "p2"])
def test_command_fields_must_be_bytes(field: str) -> None:
    args: dict[str, Any] = {"cla": 0, "ins": 0, "p1": 0, "p2": 0, field: 0x100}
    with pytest.raises(ValueError, match=field):
        CommandAPDU(**args)


def test_command_repr_hides_data() -> None:
    assert "313233" not in repr(CommandAPDU(0x00, 0x20, 0x00, 0x80, b"123456\xff\xff"))


def test_parse_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError, match="Lc"):
        CommandAPDU.parse(H("00200080 05 3132"))


def test_response_split_and_check() -> None:
    resp = ResponseAPDU.from_bytes(H("0102 6A82"))
    assert (resp.data, resp.sw) == (H("0102"), SW.FILE_NOT_FOUND)
    with pytest.raises(ApduError) as info:
        resp.check("GET DATA")
    assert info.value.sw == 0x6A82
    assert str(info.value) == "GET DATA: SW 6A82 (FILE_NOT_FOUND)"
    with pytest.raises(BadResponseError):
        ResponseAPDU.from_bytes(b"\x90")


@pytest.mark.parametrize(
    ("sw", "name"),
    [
        (0x9000, "9000 (OK)"),
        (0x63C2, "63C2 (2 tries left)"),
        (0x6110, "6110 (more data)"),
        (0x6C20, "6C20 (wrong Le, use 20)"),
        (0x6A8B, "6A8B"),
    ],
)
def test_sw_names(sw: int, name: str) -> None:
    assert sw_name(sw) == name


def test_retries_left_only_for_63cx() -> None:
    assert retries_left(0x63C0) == 0
    assert retries_left(0x63CF) == 15
    assert retries_left(0x6300) is None
    assert retries_left(0x6983) is None


@pytest.mark.parametrize(
    ("tag", "value", "wire"),
    [
        (0x53, b"", "5300"),
        (0x5C, H("5FC102"), "5C03 5FC102"),
        (0x7F49, bytes(0x81), "7F49 8181" + "00" * 0x81),
        (0x70, bytes(0x1234), "70 821234" + "00" * 0x1234),
        (0x5FC102, H("01"), "5FC102 01 01"),
    ],
)
def test_tlv_round_trip(tag: int, value: bytes, wire: str) -> None:
    assert encode_tlv(tag, value) == H(wire)
    assert parse_tlvs(H(wire)) == [Tlv(tag, value)]
    assert bytes(Tlv(tag, value)) == H(wire)


def test_tlv_sequence_skips_padding_and_finds() -> None:
    data = H("7C 06 8200 8102 AABB") + H("00FF") + H("53 00")
    items = parse_tlvs(data)
    assert [t.tag for t in items] == [0x7C, 0x53]
    inner = find_tlv(items[0].value, 0x81)
    assert inner is not None and inner.value == H("AABB")
    assert find_tlv(items, 0x99) is None


@pytest.mark.parametrize("wire", ["53", "53 05 0102", "5F", "53 84 00000001 00", "53 82 01"])
def test_malformed_tlv_raises_bad_response(wire: str) -> None:
    with pytest.raises(BadResponseError):
        parse_tlvs(H(wire))


@pytest.mark.parametrize("ins", [0x20, 0x24, 0x2C, 0x87, 0xD8, 0xFE, 0xFF])
def test_traffic_line_redacts_secret_commands(ins: int) -> None:
    line = describe_command(CommandAPDU(0x00, ins, 0x00, 0x80, b"123456\xff\xff"))
    assert "313233" not in line and "redacted" in line


def test_traffic_line_redacts_everything_under_secure_messaging() -> None:
    assert "redacted" in describe_command(CommandAPDU(0x84, 0xCA, 0x00, 0x66, H("0102")))
    assert "redacted" in describe_command(CommandAPDU(0x00, 0xCB, 0x3F, 0xFF, H("5C01")), secure=True)
    assert "5C01" in describe_command(CommandAPDU(0x00, 0xCB, 0x3F, 0xFF, H("5C01")))
