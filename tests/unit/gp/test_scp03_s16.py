"""SCP03 S16 mode (Amendment D v1.2, i-parameter b1): 16-byte challenges, cryptograms and MACs.

No public vector exists (gp-scp.md §2.1), so the card is checked three ways:
against a computation written here straight from the KDF definition on top of
``cryptography`` (not the card's crypto module), against minidriver's
independently written host side, and by its refusals (S8 lengths, wrong MACs).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

from emulator.gp.keys import StaticKeys
from emulator.gp.scp03 import SCP03Card
from emulator.iso7816 import SW, CardError, CommandAPDU, ResponseAPDU

scp03 = pytest.importorskip("minidriver.scp03")
scpbase = pytest.importorskip("minidriver.scpbase")

h = bytes.fromhex
AID = h("A000000151000000")
ENC, MAC, DEK = (
    h("000102030405060708090A0B0C0D0E0F"),
    h("101112131415161718191A1B1C1D1E1F"),
    h("202122232425262728292A2B2C2D2E2F"),
)
HOST_CHALLENGE = h("00112233445566778899AABBCCDDEEFF")
GET_STATUS = h("80F24002024F0000")
ANSWER = h("E3114F08A0000003080000109F700107C50100")


def cmac16(key: bytes, data: bytes) -> bytes:
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def kdf(key: bytes, constant: int, context: bytes, bits: int) -> bytes:
    """AmdD §4.1.5 written out again: 11 zero bytes, constant, 00, L, counter, context."""
    out = b""
    for counter in range(1, 1 + (bits + 127) // 128):
        out += cmac16(key, bytes(11) + bytes((constant, 0)) + bits.to_bytes(2, "big") + bytes((counter,)) + context)
    return out[: bits // 8]


def card(i: int = 0x71, counter: int | None = 5) -> SCP03Card:
    return SCP03Card(StaticKeys(0x30, ENC, MAC, DEK), i=i, sd_aid=AID, sequence_counter=counter)


def test_initialize_update_and_external_authenticate_match_an_independent_computation() -> None:
    c = card()
    resp = c.initialize_update(CommandAPDU.parse(h("8050300010") + HOST_CHALLENGE + h("00")))
    card_challenge = kdf(ENC, 0x02, h("000005") + AID, 128)  # pseudo-random, 16 bytes in S16
    context = HOST_CHALLENGE + card_challenge
    s_mac = kdf(MAC, 0x06, context, 128)
    expected = bytes(10) + h("300371") + card_challenge + kdf(s_mac, 0x00, context, 128) + h("000005")
    assert resp.data == expected and len(resp.data) == 10 + 3 + 32 + 3
    host_cryptogram = kdf(s_mac, 0x01, context, 128)
    header = h("8482010020")
    c_mac = cmac16(s_mac, bytes(16) + header + host_cryptogram)
    assert c.external_authenticate(CommandAPDU.parse(header + host_cryptogram + c_mac)).sw == SW.OK
    # the next C-MAC chains on the whole 16-byte value and is sent whole
    wire_header = h("84F2400212")
    mac2 = cmac16(s_mac, c_mac + wire_header + h("4F00"))
    plain = c.unwrap(CommandAPDU.parse(wire_header + h("4F00") + mac2 + h("00")))
    assert bytes(plain) == GET_STATUS


def test_an_eight_byte_mac_is_refused_in_s16() -> None:
    c = card()
    c.initialize_update(CommandAPDU.parse(h("8050300010") + HOST_CHALLENGE + h("00")))
    with pytest.raises(CardError) as info:
        c.external_authenticate(CommandAPDU.parse(h("8482010010") + bytes(16)))
    assert info.value.sw == SW.WRONG_LENGTH


@pytest.mark.parametrize("i", [0x71, 0x31])
def test_an_s8_host_challenge_is_refused_by_an_s16_card(i: int) -> None:
    with pytest.raises(CardError) as info:
        card(i).initialize_update(CommandAPDU.parse(h("8050300008") + HOST_CHALLENGE[:8] + h("00")))
    assert info.value.sw == SW.WRONG_LENGTH


CASES = [(0x71, 9), (0x61, None), (0x31, 3), (0x01, None), (0x11, 1)]


@pytest.mark.parametrize(
    ("i", "counter", "level"),
    [
        (i, counter, level)
        for i, counter in CASES
        for level in (0x01, 0x03, 0x13, 0x33)
        if not (level & 0x10 and not i & 0x20) and not (level & 0x20 and not i & 0x40)
    ],
)
def test_card_and_independent_host_agree(i: int, counter: int | None, level: int) -> None:
    c = card(i, counter)
    host = scp03.SCP03Host(scpbase.StaticKeys(0x30, ENC, MAC, DEK), sd_aid=AID, s16=True)
    iu = host.initialize_update_apdu(0x30)
    assert iu[4] == 16  # Lc: a 16-byte host challenge
    resp = c.initialize_update(CommandAPDU.parse(iu))
    info = host.process_initialize_update_response(resp.data)
    assert len(info.card_challenge) == len(info.card_cryptogram) == 16
    ea = host.external_authenticate_apdu(level)
    assert ea[4] == 32
    assert c.external_authenticate(CommandAPDU.parse(ea)).sw == SW.OK
    for _ in range(3):  # the chain and the counters move on
        wire = host.wrap(GET_STATUS)
        assert bytes(c.unwrap(CommandAPDU.parse(wire))) == GET_STATUS
        protected = bytes(c.wrap(ResponseAPDU(ANSWER)))
        if level & 0x10:
            assert len(protected) >= len(ANSWER) + 16 + 2  # a 16-byte R-MAC
        assert host.unwrap(protected) == ANSWER + h("9000")


def test_a_tampered_r_mac_is_caught_by_the_host() -> None:
    c = card(0x71, 2)
    host = scp03.SCP03Host(scpbase.StaticKeys(0x30, ENC, MAC, DEK), sd_aid=AID, s16=True)
    host.process_initialize_update_response(
        c.initialize_update(CommandAPDU.parse(host.initialize_update_apdu(0x30))).data
    )
    c.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(0x13)))
    c.unwrap(CommandAPDU.parse(host.wrap(GET_STATUS)))
    protected = bytearray(bytes(c.wrap(ResponseAPDU(ANSWER))))
    protected[-3] ^= 0x01  # last byte of the 16-byte R-MAC
    with pytest.raises(scpbase.IntegrityError):
        host.unwrap(bytes(protected))


@pytest.mark.parametrize(("host_s16", "card_i"), [(False, 0x71), (True, 0x70)])
def test_host_and_card_in_different_modes_fail_clearly(host_s16: bool, card_i: int) -> None:
    c = card(card_i, 4)
    host = scp03.SCP03Host(scpbase.StaticKeys(0x30, ENC, MAC, DEK), sd_aid=AID, s16=host_s16)
    iu = CommandAPDU.parse(host.initialize_update_apdu(0x30))
    if card_i & 0x01:
        with pytest.raises(CardError):  # an S16 card wants a 16-byte challenge
            c.initialize_update(iu)
        return
    resp = c.initialize_update(CommandAPDU(iu.cla, iu.ins, iu.p1, iu.p2, iu.data[:8], iu.ne))
    with pytest.raises(scpbase.SCPError, match="S8"):
        host.process_initialize_update_response(resp.data)


def test_unknown_i_bits_are_refused() -> None:
    with pytest.raises(ValueError):
        card(0x73)
    with pytest.raises(ValueError):
        card(0x41, None)  # R-ENC without R-MAC
