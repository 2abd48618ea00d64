"""SCP02 R-MAC (GPCS Appendix E.4.5): security levels 11 and 13 when i has bit 20.

No public vector exists (gp-scp.md §3.6). The first R-MAC is recomputed here
from its definition with ``cryptography`` alone (retail MAC written out, not
the card's crypto module); then the card and minidriver's independently
written host run whole sessions against each other.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from emulator.gp.keys import SCPVersion, StaticKeys
from emulator.gp.scp02 import SCP02Card
from emulator.iso7816 import SW, CardError, CommandAPDU, ResponseAPDU

scp02 = pytest.importorskip("minidriver.scp02")
scpbase = pytest.importorskip("minidriver.scpbase")

h = bytes.fromhex
AID = h("A000000151000000")
KEY = h("404142434445464748494A4B4C4D4E4F")
GET_STATUS = h("80F24002024F0000")
ANSWER = h("E3114F08A0000003080000109F700107C50100")


def des_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    k = key + key[:8] if len(key) == 16 else key * 3
    enc = Cipher(TripleDES(k), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def retail(key: bytes, data: bytes, icv: bytes) -> bytes:
    padded = data + b"\x80" + bytes(-(len(data) + 1) % 8)
    chain = icv
    if len(padded) > 8:
        chain = des_cbc(key[:8], icv, padded[:-8])[-8:]
    return des_cbc(key, chain, padded[-8:])[-8:]


def pair(i: int = 0x35, counter: int = 0x0021) -> tuple[SCP02Card, object]:
    card = SCP02Card(StaticKeys(0x20, KEY, KEY, KEY, scp=SCPVersion.SCP02), i=i, sd_aid=AID, sequence_counter=counter)
    host = scp02.SCP02Host(scpbase.StaticKeys.same(KEY, kvn=0x20), i=i)
    iu = card.initialize_update(CommandAPDU.parse(host.initialize_update_apdu(0x20)))
    host.process_initialize_update_response(iu.data)
    return card, host


def test_first_r_mac_matches_its_definition() -> None:
    card, host = pair(0x35, 0x0021)
    assert card.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(0x11))).sw == SW.OK
    card.unwrap(CommandAPDU.parse(host.wrap(GET_STATUS)))
    out = card.wrap(ResponseAPDU(ANSWER))
    # R-MAC session key: 3DES-CBC(static MAC, 0, 0102 || counter || 00*12)
    r_mac_key = des_cbc(KEY, bytes(8), h("0102") + h("0021") + bytes(12))
    mac_input = h("80F24002") + h("02") + h("4F00") + bytes((len(ANSWER),)) + ANSWER + h("9000")
    assert out.data == ANSWER + retail(r_mac_key, mac_input, bytes(8))
    assert out.sw == SW.OK


@pytest.mark.parametrize("i", [0x35, 0x75, 0x25])
@pytest.mark.parametrize("level", [0x11, 0x13])
def test_card_and_independent_host_agree_over_a_session(i: int, level: int) -> None:
    card, host = pair(i)
    assert card.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(level))).sw == SW.OK
    commands = [GET_STATUS, h("80CA006600"), h("80E29000054F03A00000"), h("80F22002")]
    answers = [ANSWER, h("6603730100"), b"", b""]
    for plain, answer in zip(commands, answers, strict=True):
        assert bytes(card.unwrap(CommandAPDU.parse(host.wrap(plain)))) == plain
        protected = bytes(card.wrap(ResponseAPDU(answer)))
        assert len(protected) == len(answer) + 8 + 2
        assert host.unwrap(protected) == answer + h("9000")


def test_error_answers_go_bare_and_the_chain_holds() -> None:
    card, host = pair()
    card.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(0x13)))
    card.unwrap(CommandAPDU.parse(host.wrap(h("80CA00FE00"))))
    assert bytes(card.wrap(ResponseAPDU(sw=0x6A88))) == h("6A88")
    assert host.unwrap(h("6A88")) == h("6A88")
    card.unwrap(CommandAPDU.parse(host.wrap(GET_STATUS)))
    assert host.unwrap(bytes(card.wrap(ResponseAPDU(ANSWER)))) == ANSWER + h("9000")
    card.unwrap(CommandAPDU.parse(host.wrap(GET_STATUS)))
    warning = bytes(card.wrap(ResponseAPDU(ANSWER, 0x6310)))  # a warning carries the R-MAC too
    assert host.unwrap(warning) == ANSWER + h("6310")


def test_a_tampered_response_is_caught() -> None:
    card, host = pair()
    card.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(0x11)))
    card.unwrap(CommandAPDU.parse(host.wrap(GET_STATUS)))
    protected = bytearray(bytes(card.wrap(ResponseAPDU(ANSWER))))
    protected[0] ^= 0x01
    with pytest.raises(scpbase.IntegrityError):
        host.unwrap(bytes(protected))


@pytest.mark.parametrize("level", [0x11, 0x13])
def test_without_i_bit_20_the_card_refuses_r_mac_levels(level: int) -> None:
    card = SCP02Card(StaticKeys(0x20, KEY, KEY, KEY, scp=SCPVersion.SCP02), i=0x15, sd_aid=AID, sequence_counter=3)
    host = scp02.SCP02Host(scpbase.StaticKeys.same(KEY, kvn=0x20), i=0x35)  # a host that believes otherwise
    host.process_initialize_update_response(
        card.initialize_update(CommandAPDU.parse(host.initialize_update_apdu(0x20))).data
    )
    with pytest.raises(CardError) as info:
        card.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(level)))
    assert info.value.sw == SW.INCORRECT_P1P2


def test_levels_below_r_mac_leave_responses_alone() -> None:
    card, host = pair()
    card.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(0x03)))
    card.unwrap(CommandAPDU.parse(host.wrap(GET_STATUS)))
    assert bytes(card.wrap(ResponseAPDU(ANSWER))) == ANSWER + h("9000")


def test_level_10_r_macs_the_answers_to_plain_commands() -> None:
    card, host = pair()
    assert card.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(0x10))).sw == SW.OK
    for _ in range(2):
        wire = host.wrap(GET_STATUS)
        assert wire == GET_STATUS  # no C-MAC at level 10
        card.observe_plain(CommandAPDU.parse(wire))  # what the card runtime does with a plain command
        assert host.unwrap(bytes(card.wrap(ResponseAPDU(ANSWER)))) == ANSWER + h("9000")
