"""Primitive vectors for minidriver.gpcrypto (gp-scp.md §4.8, §4.1 KCVs, §4.4, §3.2)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode
from hypothesis import given
from hypothesis import strategies as st

from minidriver import gpcrypto
from minidriver.gpcrypto import SCP02Constant

h = bytes.fromhex

RFC4493_KEY = h("2B7E151628AED2A6ABF7158809CF4F3C")
RFC4493_MSG = h(
    "6BC1BEE22E409F96E93D7E117393172A AE2D8A571E03AC9C9EB76FAC45AF8E51"
    "30C81C46A35CE411E5FBC1191A0A52EF F69F2445DF4F9B17AD2B417BE66C3710"
)
DEFAULT_KEY = h("404142434445464748494A4B4C4D4E4F")


@pytest.mark.parametrize(
    ("length", "tag"),
    [
        (0, "BB1D6929E95937287FA37D129B756746"),
        (16, "070A16B46B4D4144F79BDD9DD04A287C"),
        (40, "DFA66747DE9AE63030CA32611497C827"),
        (64, "51F0BEBF7E3B9D92FC49741779363CFE"),
    ],
)
def test_aes_cmac_matches_rfc4493(length: int, tag: str) -> None:
    assert gpcrypto.aes_cmac(RFC4493_KEY, RFC4493_MSG[:length]) == h(tag)


@pytest.mark.parametrize(
    ("key", "kcv"),
    [
        ("000102030405060708090A0B0C0D0E0F", "C35280"),
        ("101112131415161718191A1B1C1D1E1F", "013808"),
        ("202122232425262728292A2B2C2D2E2F", "840DE5"),
        ("404142434445464748494A4B4C4D4E4F", "504A77"),
    ],
)
def test_aes_kcv_is_first_three_bytes_of_ecb_over_ones(key: str, kcv: str) -> None:
    assert gpcrypto.aes_kcv(h(key)) == h(kcv)


def test_des_kcv_of_default_key() -> None:
    assert gpcrypto.des_kcv(DEFAULT_KEY) == h("8BAF47")


def test_psk_kcv_is_sha1_prefix() -> None:
    assert gpcrypto.psk_kcv(h("303132333435363738393A3B3C3D3E3F")) == h("06125D")


@pytest.mark.parametrize(
    ("static", "constant", "seq", "session"),
    [
        # §4.5 pySim SCP02, sequence counter 0001
        ("100102030405060708090A0B0C0D0E0F", SCP02Constant.S_ENC, "0001", "1BA074B31F72A6C44FE8F5D9AFE4DA2F"),
        ("101102030405060708090A0B0C0D0E0F", SCP02Constant.C_MAC, "0001", "29A69328E60494982632039DDD47A2F1"),
        ("101102030405060708090A0B0C0D0E0F", SCP02Constant.R_MAC, "0001", "FDF8A06C38FA7A54123C80AB9087BF25"),
        ("102102030405060708090A0B0C0D0E0F", SCP02Constant.DEK, "0001", "511DB767812597722109C867F9D7257A"),
        # §4.6 Oberthur, sequence counter 0005
        ("404142434445464748494A4B4C4D4E4F", SCP02Constant.S_ENC, "0005", "114E70DD9FDAB543CE3BFCFD4C8531B8"),
        ("404142434445464748494A4B4C4D4E4F", SCP02Constant.C_MAC, "0005", "9BC7F172011D9C5D5758BBA497E7B9E6"),
        ("404142434445464748494A4B4C4D4E4F", SCP02Constant.DEK, "0005", "6A69ED15FB7C010631B1FF9B02868E3B"),
    ],
)
def test_scp02_session_keys_match_published(static: str, constant: SCP02Constant, seq: str, session: str) -> None:
    assert gpcrypto.scp02_session_key(h(static), constant, h(seq)) == h(session)


PYSIM_ENC, PYSIM_MAC = "000102030405060708090A0B0C0D0E0F", "101112131415161718191A1B1C1D1E1F"
KAOH_ENC, KAOH_MAC = "F995D0A069335C7DF42E590317FFEA6D", "58563362EC5A4541ABCD32B34B1EAE7D"
PYSIM_128_11 = "B13E5F938FC108C4 3EB51047495B249F"  # §4.1 AES128 SL 11: host || card challenge
KAOH_DELETE = "B2BDE1A2DC66BD56 C40932A6FEFEAEB2"  # §4.3 delete_application
KAOH_MUTUAL = "9BD6BF878FB8E991 3C80C2CC87EB3A35"  # §4.3 mutual_auth


@pytest.mark.parametrize(
    ("static", "constant", "context", "session"),
    [
        (PYSIM_ENC, 0x04, PYSIM_128_11, "C4E87149F2114DA66BB015A567D751F9"),
        (PYSIM_MAC, 0x06, PYSIM_128_11, "8B2635556E987A6B84F43D9FFC197D3F"),
        (PYSIM_MAC, 0x07, PYSIM_128_11, "3F6B2CE3B3ABD9A99BD4453AFA54CC7B"),
        (KAOH_ENC, 0x04, KAOH_DELETE, "9B841BB63D1087484FF7F16802017243"),
        (KAOH_MAC, 0x06, KAOH_DELETE, "8117FE5ADED74AC0DAABE9FB81DBDB67"),
        (KAOH_MAC, 0x07, KAOH_DELETE, "4521D75E4D6F60DBFB8AB4EE254EF6F1"),
        (KAOH_ENC, 0x04, KAOH_MUTUAL, "D83EE38C9954C8078987A5E9EE6AB13C"),
        (KAOH_MAC, 0x06, KAOH_MUTUAL, "6FF37716E0413065E8DFD08BF1E9EC5E"),
        (KAOH_MAC, 0x07, KAOH_MUTUAL, "0254C786E57ACA8982670C1C1A05FF12"),
    ],
)
def test_scp03_kdf_gives_published_session_keys(static: str, constant: int, context: str, session: str) -> None:
    assert gpcrypto.scp03_kdf(h(static), constant, h(context), 128) == h(session)


def test_scp03_kdf_gives_jcop4_pseudo_random_challenge() -> None:
    # §4.2: KDF(static ENC, 02, 000436 || A000000151000000, 64)
    context = h("000436") + h("A000000151000000")
    assert gpcrypto.scp03_kdf(DEFAULT_KEY, 0x02, context, 64) == h("734ECDCA19E446A3")


def test_kdf3_diversification_matches_globalplatformpro() -> None:
    master = h("8C72C72CF908411653018807950D82FBAD947562F0828A0B10B8B9606ABF3BCD")
    enc = gpcrypto.kdf3_diversify(master, 1, h("D9B1DE5D0362DEDCE4FB"))
    assert enc == h("9AAC5D0B3601F89438A0D9D0B6B256CFB47E6462DFA5228D3420C4AC7C224781")


@given(
    key=st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    constant=st.integers(0, 255),
    context=st.binary(max_size=40),
    length_bits=st.sampled_from([64, 128, 192, 256]),
)
def test_scp03_kdf_agrees_with_cryptography_kbkdf_middle_fixed(
    key: bytes, constant: int, context: bytes, length_bits: int
) -> None:
    # gp-scp.md §2.3: the hand loop and pyca's SP 800-108 KBKDF must agree.
    fixed = bytes(11) + bytes([constant, 0]) + length_bits.to_bytes(2, "big") + context
    kdf = KBKDFCMAC(
        algorithm=algorithms.AES,
        mode=Mode.CounterMode,
        length=length_bits // 8,
        rlen=1,
        llen=None,
        location=CounterLocation.MiddleFixed,
        label=None,
        context=None,
        fixed=fixed,
        break_location=15,
    )
    assert gpcrypto.scp03_kdf(key, constant, context, length_bits) == kdf.derive(key)


@given(data=st.binary(max_size=64), block=st.sampled_from([8, 16]))
def test_pad80_always_pads_and_unpads_back(data: bytes, block: int) -> None:
    padded = gpcrypto.pad80(data, block)
    assert len(padded) % block == 0
    assert len(data) < len(padded) <= len(data) + block
    assert gpcrypto.unpad80(padded, block) == data


@pytest.mark.parametrize(
    "bad",
    ["", "00000000000000000000000000000000", "41414141414141414141414141414141", "80" + "00" * 31, "0180"],
)
def test_unpad80_rejects_malformed_padding(bad: str) -> None:
    with pytest.raises(ValueError):
        gpcrypto.unpad80(h(bad), 16)


def test_retail_mac_rejects_wrong_key_length() -> None:
    with pytest.raises(ValueError):
        gpcrypto.retail_mac(bytes(24), b"", bytes(8))
