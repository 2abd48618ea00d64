"""BER-TLV (ISO/IEC 7816-4 §5.2): vectors, malformed input -> 6A80, and an encode/parse round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.iso7816 import (
    SW,
    TLV,
    CardError,
    encode_length,
    encode_tlv,
    find_tlv,
    iter_tlvs,
    parse_tlvs,
    tag_bytes,
)

h = bytes.fromhex


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, "00"),
        (0x7F, "7F"),
        (0x80, "81 80"),
        (0xFF, "81 FF"),
        (0x100, "82 01 00"),
        (0xFFFF, "82 FF FF"),
        (0x10000, "83 01 00 00"),
        (0xFFFFFF, "83 FF FF FF"),
    ],
)
def test_encode_length(n: int, encoded: str) -> None:
    assert encode_length(n) == h(encoded)


def test_encode_length_beyond_three_bytes_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_length(0x1000000)


@pytest.mark.parametrize(
    ("tag", "encoded"),
    [(0x00, "00"), (0x42, "42"), (0x9F7F, "9F 7F"), (0x5FC105, "5F C1 05")],
)
def test_tag_bytes(tag: int, encoded: str) -> None:
    assert tag_bytes(tag) == h(encoded)


@pytest.mark.parametrize(
    ("tag", "value", "encoded"),
    [
        (0x42, h("42"), "42 01 42"),
        (0x53, b"", "53 00"),
        (0x9F7F, h("4790"), "9F7F 02 4790"),
        (0x5FC105, h("70 00"), "5FC105 02 7000"),
        (0x70, b"\xab" * 0x80, "70 81 80" + "AB" * 0x80),
        (0x53, b"\xcd" * 0x100, "53 82 0100" + "CD" * 0x100),
        (0x53, b"\xef" * 0x10000, "53 83 010000" + "EF" * 0x10000),
    ],
)
def test_encode_and_parse_vectors(tag: int, value: bytes, encoded: str) -> None:
    raw = h(encoded)
    assert encode_tlv(tag, value) == raw
    assert bytes(TLV(tag, value)) == raw
    assert parse_tlvs(raw) == [TLV(tag, value)]


def test_nested_tlvs() -> None:
    # GP FCI: 6F { 84 AID, A5 { 73 {...}, 9F65 FF } }
    aid = h("A000000151000000")
    inner = encode_tlv(0x73, encode_tlv(0x06, h("2A864886FC6B01"))) + encode_tlv(0x9F65, b"\xff")
    fci = encode_tlv(0x6F, [encode_tlv(0x84, aid), encode_tlv(0xA5, inner)])
    assert fci == h("6F 1B 84 08 A000000151000000 A5 0F 73 09 06 07 2A864886FC6B01 9F65 01 FF")
    (top,) = parse_tlvs(fci)
    assert top.tag == 0x6F and top.constructed
    assert [c.tag for c in top.children()] == [0x84, 0xA5]
    proprietary = find_tlv(top.value, 0xA5)
    assert proprietary is not None and proprietary.constructed
    assert [(c.tag, c.value) for c in proprietary.children()] == [(0x73, h("06072A864886FC6B01")), (0x9F65, b"\xff")]
    assert find_tlv(top.children(), 0x84) == TLV(0x84, aid)
    assert find_tlv(fci, 0x84) is None  # one level only
    assert not TLV(0x84, aid).constructed


def test_padding_between_tlvs_is_skipped() -> None:
    raw = h("00 FF 01 01 AA 00 00 5C 01 7E FF FF")
    assert parse_tlvs(raw) == [TLV(0x01, h("AA")), TLV(0x5C, h("7E"))]
    assert parse_tlvs(h("00 FF 00")) == []
    assert parse_tlvs(b"") == []


def test_iter_tlvs_is_lazy() -> None:
    it = iter_tlvs(h("01 01 AA 02 05 00"))
    assert next(it) == TLV(0x01, h("AA"))
    with pytest.raises(CardError):
        next(it)


@pytest.mark.parametrize(
    "raw",
    [
        "9F",  # truncated two-byte tag
        "5F C1",  # truncated three-byte tag: C1 says more follows
        "5F C1 C1 C1 05 00",  # tag longer than three bytes
        "5F C1 C1 05 00",  # a four-byte tag is longer than three bytes as well
        "53",  # no length
        "5FC105",  # no length after a three-byte tag
        "53 81",  # truncated long length
        "53 82 01",
        "53 83 00 01",
        "53 80",  # indefinite length
        "53 84 00 00 00 01 AA",  # four length bytes
        "53 85 00 00 00 00 01 AA",
        "53 FF",
        "53 02 AA",  # truncated value
        "53 81 80" + "00" * 0x7F,
        "01 01 AA 53 03 AA BB",  # second TLV truncated
    ],
)
def test_malformed_is_wrong_data(raw: str) -> None:
    with pytest.raises(CardError) as info:
        parse_tlvs(h(raw))
    assert info.value.sw == SW.WRONG_DATA


def test_find_tlv_absent() -> None:
    assert find_tlv(h("01 01 AA"), 0x02) is None


def test_negative_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="tag"):
        tag_bytes(-1)


# Tags as ISO 7816-4 §5.2.2.1 allows them, minus 00/FF, which mark padding between TLVs.
_first_short = st.integers(0x01, 0xFE).filter(lambda b: b & 0x1F != 0x1F)
_first_long = st.sampled_from([0x1F, 0x3F, 0x5F, 0x7F, 0x9F, 0xBF, 0xDF])
TAGS = st.one_of(
    _first_short,
    st.builds(lambda a, b: a << 8 | b, _first_long, st.integers(0x1F, 0x7F)),
    st.builds(lambda a, b, c: a << 16 | b << 8 | c, _first_long, st.integers(0x81, 0xFF), st.integers(0x00, 0x7F)),
)
VALUES = st.binary(max_size=300)  # 81 and 82 lengths; 83 is in the vectors


@given(st.lists(st.tuples(TAGS, VALUES), max_size=5))
def test_round_trip(items: list[tuple[int, bytes]]) -> None:
    raw = b"".join(encode_tlv(tag, value) for tag, value in items)
    assert parse_tlvs(raw) == [TLV(tag, value) for tag, value in items]


@given(TAGS, st.lists(st.tuples(TAGS, st.binary(max_size=40)), max_size=4))
def test_nested_round_trip(outer: int, children: list[tuple[int, bytes]]) -> None:
    raw = encode_tlv(outer, [encode_tlv(t, v) for t, v in children])
    (top,) = parse_tlvs(raw)
    assert top.tag == outer
    assert [(c.tag, c.value) for c in top.children()] == children


@given(st.binary(max_size=200))
def test_parse_raises_only_wrong_data(raw: bytes) -> None:
    try:
        parse_tlvs(raw)
    except CardError as exc:
        assert exc.sw == SW.WRONG_DATA
