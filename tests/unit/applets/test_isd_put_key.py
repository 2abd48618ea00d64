"""PUT KEY and DELETE key (GPCS §11.8, §11.2; gp-scp.md §1.6)."""

from __future__ import annotations

import pytest
from isd_helpers import DEFAULT_KEY, GPHost, h, isd_of, make_card, make_profile, scp03, scpbase, transmit

from emulator.card import VirtualCard
from emulator.gp.crypto import aes_cbc_encrypt, aes_kcv
from emulator.store import MemoryStore

NEW_KEYS = {
    16: (
        h("000102030405060708090A0B0C0D0E0F"),
        h("101112131415161718191A1B1C1D1E1F"),
        h("202122232425262728292A2B2C2D2E2F"),
    ),
    24: (bytes(range(24)), bytes(range(24, 48)), bytes(range(48, 72))),
    32: (bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 96))),
}


@pytest.fixture
def card() -> VirtualCard:
    return make_card()


def new_keyset(kvn: int, length: int = 16) -> scpbase.StaticKeys:
    enc, mac, dek = NEW_KEYS[length]
    return scpbase.StaticKeys(kvn=kvn, enc=enc, mac=mac, dek=dek)


@pytest.mark.parametrize("length", [16, 24, 32])
@pytest.mark.parametrize("encoding", ["CIPHERTEXT", "LENGTH_PREFIXED"])
def test_put_key_adds_a_key_set_and_retires_the_factory_keys(card: VirtualCard, length: int, encoding: str) -> None:
    host = GPHost(card)
    host.open(0x03)
    new = new_keyset(0x30, length)
    put = host.host.put_key(new, encoding=scp03.AESKeyEncoding[encoding])
    resp = host.send(put.apdu())
    assert resp.sw == 0x9000
    assert resp.data == put.expected_reply
    assert [ks.kvn for ks in isd_of(card).keysets()] == [0x30]
    # old keys: the factory KVN is gone; P1 00 now picks the new set, whose cryptogram the old host rejects
    assert transmit(card, "8050FF0008010203040506070800").sw == 0x6A88
    enc, mac, dek = NEW_KEYS[length]
    rotated = GPHost(card, kvn=0x30, enc=enc, mac=mac, dek=dek)
    rotated.open(0x01)
    assert rotated.send("80F28002024F0000").sw == 0x9000
    stale = GPHost(card)
    iu = transmit(card, stale.host.initialize_update_apdu(0))
    with pytest.raises(scpbase.SCPError):
        stale.host.process_initialize_update_response(iu.data)


def test_put_key_replaces_an_existing_key_set(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert host.send(host.host.put_key(new_keyset(0x01)).apdu()).sw == 0x9000
    enc, mac, dek = NEW_KEYS[16]
    issuer = GPHost(card, kvn=0x01, enc=enc, mac=mac, dek=dek)
    issuer.open(0x03)
    replacement = scpbase.StaticKeys.same(DEFAULT_KEY, kvn=0x02)
    put = issuer.host.put_key(replacement)
    resp = issuer.send(put.apdu(replace_kvn=0x01))
    assert (resp.sw, resp.data) == (0x9000, put.expected_reply)
    assert [ks.kvn for ks in isd_of(card).keysets()] == [0x02]
    GPHost(card, kvn=0x02).open(0x01)


def test_put_key_wrong_kcv_answers_9485_and_changes_nothing(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    put = bytearray(host.host.put_key(new_keyset(0x30)).apdu())
    put[5 + 1 + 2 + 16 + 1] ^= 0x01  # first KCV byte of the ENC key block
    assert host.send(bytes(put)).sw == 0x9485
    assert [ks.kvn for ks in isd_of(card).keysets()] == [0xFF]
    assert host.send("80F28002024F0000").sw == 0x9000  # functional error: session still open


def test_put_key_replace_of_unknown_kvn_answers_6a88(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert host.send(host.host.put_key(new_keyset(0x30)).apdu(replace_kvn=0x42)).sw == 0x6A88


def test_put_key_unknown_key_type_answers_9484(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    data = bytes([0x30]) + (bytes([0xA1, 0x10]) + bytes(16) + b"\x00") * 3
    assert host.send(bytes([0x80, 0xD8, 0x00, 0x81, len(data)]) + data + b"\x00").sw == 0x9484


def test_put_key_accepts_yubikit_style_key_blocks(card: VirtualCard) -> None:
    """``88 10 E(key) 03 KCV`` with AES-CBC under the static DEK, built by hand."""
    host = GPHost(card)
    host.open(0x01)
    data = b"\x31"
    for key in NEW_KEYS[16]:
        data += b"\x88\x10" + aes_cbc_encrypt(DEFAULT_KEY, bytes(16), key) + b"\x03" + aes_kcv(key)
    resp = host.send(bytes([0x80, 0xD8, 0x00, 0x81, len(data)]) + data + b"\x00")
    assert resp == type(resp)(b"\x31" + b"".join(aes_kcv(k) for k in NEW_KEYS[16]))


def test_put_key_is_one_store_write(card: VirtualCard) -> None:
    """Tear safety: the whole key set list is committed in one transaction (design.md, Card state)."""
    host = GPHost(card)
    host.open(0x01)
    store = isd_of(card).store.store
    writes: list[dict] = []
    original = store.write

    def recording(changes):
        writes.append(dict(changes))
        original(changes)

    store.write = recording
    assert host.send(host.host.put_key(new_keyset(0x30)).apdu()).sw == 0x9000
    assert len(writes) == 1 and set(writes[0]) == {("isd", "keysets")}


def test_scp02_put_key_is_decrypted_with_the_session_dek() -> None:
    des = {"scp": "02", "enc": DEFAULT_KEY.hex(), "mac": DEFAULT_KEY.hex(), "dek": DEFAULT_KEY.hex()}
    card = make_card(make_profile(keysets=[{"kvn": 0xFF, **des}], scp11b_kvn=0), MemoryStore())  # E0: SCP02 keys only
    host = GPHost(card, scp=2)
    host.open(0x01)
    new = scpbase.StaticKeys(kvn=0x20, enc=NEW_KEYS[16][0], mac=NEW_KEYS[16][1], dek=NEW_KEYS[16][2])
    put = host.host.put_key(new)
    resp = host.send(put.apdu())
    assert (resp.sw, resp.data) == (0x9000, put.expected_reply)
    rotated = GPHost(card, scp=2, kvn=0x20, enc=new.enc, mac=new.mac, dek=new.dek)
    rotated.open(0x03)
    assert rotated.send("80CA00E000").data == h("E012C00401208010C00402208010C00403208010")


def test_delete_key_set_and_refuse_the_last_one(card: VirtualCard) -> None:
    host = GPHost(card)
    host.open(0x01)
    assert host.send(host.host.put_key(new_keyset(0x30)).apdu()).sw == 0x9000
    enc, mac, dek = NEW_KEYS[16]
    issuer = GPHost(card, kvn=0x30, enc=enc, mac=mac, dek=dek)
    issuer.open(0x01)
    assert issuer.send(issuer.host.put_key(scpbase.StaticKeys.same(DEFAULT_KEY, kvn=0x31)).apdu()).sw == 0x9000
    assert issuer.send("80E4000003D20131").data == b"\x00"
    assert issuer.send("80E4000003D20131").sw == 0x6A88
    assert issuer.send("80E4000006D00101D20130").sw == 0x6985  # the last key set stays
    assert [ks.kvn for ks in isd_of(card).keysets()] == [0x30]
