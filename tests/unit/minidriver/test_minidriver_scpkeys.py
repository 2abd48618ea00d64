"""PUT KEY data, APDU and reply checks (gp-scp.md §1.6, KCVs of §4.1/§4.8, PSK wrap of §4.5)."""

from __future__ import annotations

import pytest

from minidriver import gpcrypto
from minidriver.scp import (
    AESKeyEncoding,
    SCP02Host,
    SCP03Host,
    SCPError,
    StaticKeys,
    check_put_key_reply,
    diversify_kdf3,
    put_key_apdu,
    put_key_data_aes,
)

h = bytes.fromhex

DEFAULT_KEY = h("404142434445464748494A4B4C4D4E4F")
PYSIM_AES128 = StaticKeys(
    kvn=0x30,
    enc=h("000102030405060708090A0B0C0D0E0F"),
    mac=h("101112131415161718191A1B1C1D1E1F"),
    dek=h("202122232425262728292A2B2C2D2E2F"),
)


def blocks(data: bytes) -> list[bytes]:
    """Split ``new KVN || key data blocks`` into the blocks (type, L, component, KCV)."""
    out, pos = [], 1
    while pos < len(data):
        length = data[pos + 1]
        end = pos + 2 + length + 1 + data[pos + 2 + length]
        out.append(data[pos:end])
        pos = end
    return out


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [(AESKeyEncoding.CIPHERTEXT, "8810"), (AESKeyEncoding.LENGTH_PREFIXED, "881110")],
)
def test_aes128_key_set_blocks_carry_ciphertext_and_kcv(encoding: AESKeyEncoding, prefix: str) -> None:
    new = StaticKeys.same(DEFAULT_KEY, kvn=0x01)
    cmd = SCP03Host(PYSIM_AES128).put_key(new, encoding=encoding)
    assert cmd.data[0] == 0x01
    parts = blocks(cmd.data)
    assert len(parts) == 3
    for part in parts:
        assert part.startswith(h(prefix))
        assert part.endswith(h("03 504A77"))
        ciphertext = part[len(h(prefix)) : len(h(prefix)) + 16]
        assert gpcrypto.aes_cbc_decrypt(PYSIM_AES128.dek, bytes(16), ciphertext) == DEFAULT_KEY
    assert cmd.expected_reply == h("01 504A77 504A77 504A77")


def test_aes_kcvs_of_pysim_key_set() -> None:
    cmd = put_key_data_aes(
        DEFAULT_KEY, StaticKeys(kvn=0x31, enc=PYSIM_AES128.enc, mac=PYSIM_AES128.mac, dek=PYSIM_AES128.dek)
    )
    assert cmd.kcvs == (h("C35280"), h("013808"), h("840DE5"))


@pytest.mark.parametrize("encoding", list(AESKeyEncoding))
def test_aes192_key_always_carries_its_clear_length(encoding: AESKeyEncoding) -> None:
    key = bytes(range(24))
    cmd = put_key_data_aes(PYSIM_AES128.dek, StaticKeys.same(key, kvn=0x02), encoding=encoding)
    for part in blocks(cmd.data):
        assert part[:3] == h("88 21 18")
        decrypted = gpcrypto.aes_cbc_decrypt(PYSIM_AES128.dek, bytes(16), part[3:35])
        assert decrypted[:24] == key


def test_aes256_ciphertext_encoding_is_two_blocks() -> None:
    cmd = put_key_data_aes(PYSIM_AES128.dek, StaticKeys.same(bytes(32), kvn=0x02))
    assert all(part[:2] == h("88 20") for part in blocks(cmd.data))


def test_scp02_put_key_wraps_under_session_dek() -> None:
    # Session of gp-scp.md §4.5; 3DES-ECB(S-DEK, 3031…3F) is the published PSK vector.
    keys = StaticKeys(
        kvn=0x70,
        enc=h("100102030405060708090A0B0C0D0E0F"),
        mac=h("101102030405060708090A0B0C0D0E0F"),
        dek=h("102102030405060708090A0B0C0D0E0F"),
    )
    host = SCP02Host(keys, host_challenge=h("40A62C37FA6304F8"))
    host.initialize_update_apdu(kvn=0x20)
    host.process_initialize_update_response(h("00000000000000000000 70 02 0001 6B4524ABEE7C F32EA3838BC148F3"))
    host.external_authenticate_apdu(0x01)
    new_key = h("303132333435363738393A3B3C3D3E3F")
    cmd = host.put_key(StaticKeys.same(new_key, kvn=0x21))
    kcv = gpcrypto.des_kcv(new_key)
    assert cmd.data == h("21") + (h("80 10 15ABF1FE16CCC5AA13743394442942CD 03") + kcv) * 3


def test_des_put_key_uses_des_kcv() -> None:
    host_keys = StaticKeys.same(DEFAULT_KEY, kvn=0x01)
    host = SCP02Host(host_keys, host_challenge=h("796B87A024C3EF57"))
    host.initialize_update_apdu()
    host.process_initialize_update_response(h("00008147580F3D2988D8 FF 02 0005 BD1A6BE9D3D5 75BD9E5774FB6A25"))
    host.external_authenticate_apdu(0x01)
    cmd = host.put_key(StaticKeys.same(DEFAULT_KEY, kvn=0x20))
    assert cmd.expected_reply == h("20 8BAF47 8BAF47 8BAF47")


def test_put_key_apdu_adds_new_key_set_with_several_keys() -> None:
    cmd = put_key_data_aes(PYSIM_AES128.dek, StaticKeys.same(DEFAULT_KEY, kvn=0x01))
    apdu = cmd.apdu()
    assert apdu[:5] == bytes([0x80, 0xD8, 0x00, 0x81, len(cmd.data)])
    assert apdu[5:-1] == cmd.data and apdu[-1] == 0x00
    assert put_key_apdu(cmd.data, replace_kvn=0x30)[2] == 0x30


def test_put_key_goes_through_the_secure_channel() -> None:
    host = SCP03Host(PYSIM_AES128, host_challenge=h("8E1552D0513C60F3"))
    host.initialize_update_apdu(kvn=0x30)
    host.process_initialize_update_response(h("0000000000000000000030037030760CD2C47C1DD395065FE5EAD8A9D7000001"))
    host.external_authenticate_apdu(0x03)
    wrapped = host.wrap(host.put_key(StaticKeys.same(DEFAULT_KEY, kvn=0x01)).apdu())
    assert wrapped[:4] == h("84D80081")
    assert wrapped[4] == 80 + 8  # 1 + 3 × 22 = 67 bytes, padded to 80, plus the C-MAC


def test_matching_put_key_reply_is_accepted() -> None:
    cmd = put_key_data_aes(PYSIM_AES128.dek, StaticKeys.same(DEFAULT_KEY, kvn=0x01))
    cmd.check_reply(h("01 504A77 504A77 504A77 9000"))


@pytest.mark.parametrize(
    ("reply", "sw"),
    [
        ("01 504A77 504A77 504A78 9000", 0x9000),
        ("9485", 0x9485),
        ("6A88", 0x6A88),
        ("02 504A77 504A77 504A77 9000", 0x9000),
    ],
)
def test_wrong_put_key_reply_raises(reply: str, sw: int) -> None:
    with pytest.raises(SCPError) as excinfo:
        check_put_key_reply(h(reply), h("01 504A77 504A77 504A77"))
    assert excinfo.value.sw == sw


@pytest.mark.parametrize("kvn", [0x00, 0x80, 0xFF])
def test_new_key_set_kvn_must_be_issuer_range(kvn: int) -> None:
    with pytest.raises(ValueError, match="KVN"):
        put_key_data_aes(PYSIM_AES128.dek, StaticKeys.same(DEFAULT_KEY, kvn=kvn))


def test_kdf3_diversified_key_set() -> None:
    master = h("8C72C72CF908411653018807950D82FBAD947562F0828A0B10B8B9606ABF3BCD")
    keys = diversify_kdf3(master, h("D9B1DE5D0362DEDCE4FB"), kvn=0x01)
    assert keys.enc == h("9AAC5D0B3601F89438A0D9D0B6B256CFB47E6462DFA5228D3420C4AC7C224781")
    assert len(keys.mac) == len(keys.dek) == 32 and len({keys.enc, keys.mac, keys.dek}) == 3
