"""Primitive vectors: AES-CMAC (RFC 4493 §4), KCVs, padding, the SCP03 KDF (gp-scp.md §4.1, §4.2, §4.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.gp.crypto import (
    SCP03Derivation,
    aes_cmac,
    aes_kcv,
    des_kcv,
    pad80,
    scp03_kdf,
    unpad80,
)

h = bytes.fromhex

RFC4493_KEY = h("2B7E151628AED2A6ABF7158809CF4F3C")
RFC4493_MSG = h(
    "6BC1BEE22E409F96E93D7E117393172A AE2D8A571E03AC9C9EB76FAC45AF8E51"
    "30C81C46A35CE411E5FBC1191A0A52EF F69F2445DF4F9B17AD2B417BE66C3710".replace(" ", "")
)
DEFAULT_KEY = h("404142434445464748494A4B4C4D4E4F")


@pytest.mark.parametrize(
    ("length", "mac"),
    [
        (0, "BB1D6929E95937287FA37D129B756746"),
        (16, "070A16B46B4D4144F79BDD9DD04A287C"),
        (40, "DFA66747DE9AE63030CA32611497C827"),
        (64, "51F0BEBF7E3B9D92FC49741779363CFE"),
    ],
)
def test_aes_cmac_rfc4493(length: int, mac: str) -> None:
    assert aes_cmac(RFC4493_KEY, RFC4493_MSG[:length]) == h(mac)


@pytest.mark.parametrize(
    ("key", "kcv"),
    [
        ("000102030405060708090A0B0C0D0E0F", "C35280"),
        ("101112131415161718191A1B1C1D1E1F", "013808"),
        ("202122232425262728292A2B2C2D2E2F", "840DE5"),
        ("404142434445464748494A4B4C4D4E4F", "504A77"),
    ],
)
def test_aes_kcv(key: str, kcv: str) -> None:
    assert aes_kcv(h(key)) == h(kcv)


def test_des_kcv_of_the_default_key() -> None:
    assert des_kcv(DEFAULT_KEY) == h("8BAF47")


@pytest.mark.parametrize(
    ("key", "constant", "context", "bits", "expected"),
    [
        # JCOP4 pseudo-random card challenge (gp-scp.md §4.2)
        (DEFAULT_KEY, SCP03Derivation.CARD_CHALLENGE, h("000436A000000151000000"), 64, "734ECDCA19E446A3"),
        # pySim AES128 SL11 session (gp-scp.md §4.1): S-MAC then the card cryptogram
        (
            h("101112131415161718191A1B1C1D1E1F"),
            SCP03Derivation.S_MAC,
            h("B13E5F938FC108C4") + h("3EB51047495B249F"),
            128,
            "8B2635556E987A6B84F43D9FFC197D3F",
        ),
        (
            h("8B2635556E987A6B84F43D9FFC197D3F"),
            SCP03Derivation.CARD_CRYPTOGRAM,
            h("B13E5F938FC108C4") + h("3EB51047495B249F"),
            64,
            "66C484C1D2EF1948",
        ),
        (
            h("8B2635556E987A6B84F43D9FFC197D3F"),
            SCP03Derivation.HOST_CRYPTOGRAM,
            h("B13E5F938FC108C4") + h("3EB51047495B249F"),
            64,
            "7D5F5826A993EBC8",
        ),
        (
            h("101112131415161718191A1B1C1D1E1F"),
            SCP03Derivation.S_RMAC,
            h("B13E5F938FC108C4") + h("3EB51047495B249F"),
            128,
            "3F6B2CE3B3ABD9A99BD4453AFA54CC7B",
        ),
        (
            h("000102030405060708090A0B0C0D0E0F"),
            SCP03Derivation.S_ENC,
            h("B13E5F938FC108C4") + h("3EB51047495B249F"),
            128,
            "C4E87149F2114DA66BB015A567D751F9",
        ),
        # kaoh mutual_auth (gp-scp.md §4.3): published session keys
        (
            h("F995D0A069335C7DF42E590317FFEA6D"),
            SCP03Derivation.S_ENC,
            h("9BD6BF878FB8E991") + h("3C80C2CC87EB3A35"),
            128,
            "D83EE38C9954C8078987A5E9EE6AB13C",
        ),
        (
            h("58563362EC5A4541ABCD32B34B1EAE7D"),
            SCP03Derivation.S_RMAC,
            h("9BD6BF878FB8E991") + h("3C80C2CC87EB3A35"),
            128,
            "0254C786E57ACA8982670C1C1A05FF12",
        ),
    ],
)
def test_scp03_kdf_reproduces_published_values(key, constant, context, bits, expected) -> None:
    assert scp03_kdf(key, constant, context, bits) == h(expected)


@given(st.binary(max_size=64), st.sampled_from([8, 16]))
def test_pad80_round_trips(data: bytes, block: int) -> None:
    padded = pad80(data, block)
    assert len(padded) % block == 0 and len(padded) > len(data)
    assert unpad80(padded, block) == data


@pytest.mark.parametrize("bad", ["", "00" * 16, "80" + "00" * 14 + "01", "80" + "00" * 31, "0102"])
def test_unpad80_rejects_malformed_padding(bad: str) -> None:
    with pytest.raises(ValueError):
        unpad80(h(bad), 16)
