"""Card side against minidriver's independently written host side (design.md; style.md §2.10).

Pinned to the pySim AES-192/256 sessions of gp-scp.md §4.1: there only the 4th
command (case3) is published, so the host wraps the unpublished ones and the
card must accept every one and the host must produce the published case3.
"""

from __future__ import annotations

import pytest

from emulator.gp.keys import SCPVersion, StaticKeys
from emulator.gp.scp02 import SCP02Card
from emulator.gp.scp03 import SCP03Card
from emulator.iso7816 import CommandAPDU, ResponseAPDU

scp03 = pytest.importorskip("minidriver.scp03")
scp02 = pytest.importorskip("minidriver.scp02")
scpbase = pytest.importorskip("minidriver.scpbase")

h = bytes.fromhex
ISD_R_AID = h("A0000005591010FFFFFFFF8900000100")
PLAIN = [h("80E2910006BF3E035C015A00"), h("80F22002"), h("80CA006600"), h("80F220020A4F0212345C054F9F70C5")]
EID_RESPONSE = h("BF3E125A1089882119900000000000000000000005")


def pysim_keys(n: int) -> tuple[bytes, bytes, bytes]:
    def pattern(start: int) -> bytes:
        base = bytes(range(start, start + 16))
        return (base * 2)[:n]

    return pattern(0x00), pattern(0x10), pattern(0x20)


@pytest.mark.parametrize(
    ("n", "kvn", "level", "counter", "host_challenge", "c3"),
    [
        (24, 0x31, 0x11, 3, "7396430B768B085B", "84F22002124F0212345C054F9F70C59A52BDDF3040368C"),
        (24, 0x31, 0x03, 1, "69C65DA8202BF19F", "84F220021806B076ED452CD1FA84F77F5C08A146AA77A9286757DEA791"),
        (24, 0x31, 0x33, 2, "9B3F2EEF0E8C9374", "84F2200218CC247F4761E6944277A4E0D6E32E44025B1E31537E2FC668"),
        (32, 0x32, 0x11, 3, "11666D57866C6F54", "84F22002124F0212345C054F9F70C5B6E15CC42404915E"),
        (32, 0x32, 0x03, 1, "C6066990FC426E1D", "84F22002183EBFEF2DA8B04AF2A85F491F299B76973DF76FF08A4031BE"),
        (32, 0x32, 0x33, 2, "97B2055FE58599FD", "84F2200218717222491556EC81A45F49CE48BE33320024801A1C4CB0E0"),
    ],
)
def test_pysim_fourth_command_with_independent_host(n, kvn, level, counter, host_challenge, c3) -> None:
    enc, mac, dek = pysim_keys(n)
    card = SCP03Card(StaticKeys(kvn, enc, mac, dek), i=0x70, sd_aid=ISD_R_AID, sequence_counter=counter)
    host = scp03.SCP03Host(scpbase.StaticKeys(kvn, enc, mac, dek), host_challenge=h(host_challenge), sd_aid=ISD_R_AID)
    iu = card.initialize_update(CommandAPDU.parse(host.initialize_update_apdu(kvn)))
    host.process_initialize_update_response(iu.data)
    assert card.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(level))).sw == 0x9000
    for index, plain in enumerate(PLAIN):
        wire = host.wrap(plain)
        if index == 3:
            assert wire == h(c3)
        assert bytes(card.unwrap(CommandAPDU.parse(wire))) == plain
        answer = EID_RESPONSE if index == 0 else b""
        assert host.unwrap(bytes(card.wrap(ResponseAPDU(answer)))) == answer + h("9000")


@pytest.mark.parametrize("i", [0x05, 0x15, 0x55])
@pytest.mark.parametrize("level", [0x00, 0x01, 0x03])
def test_scp02_pair_round_trip(i: int, level: int) -> None:
    key = h("404142434445464748494A4B4C4D4E4F")
    card = SCP02Card(StaticKeys(0x20, key, key, key, scp=SCPVersion.SCP02), i=i, sd_aid=ISD_R_AID, sequence_counter=7)
    host = scp02.SCP02Host(scpbase.StaticKeys.same(key, kvn=0x20), i=i)
    iu = card.initialize_update(CommandAPDU.parse(host.initialize_update_apdu(0x20)))
    host.process_initialize_update_response(iu.data)
    assert card.external_authenticate(CommandAPDU.parse(host.external_authenticate_apdu(level))).sw == 0x9000
    for plain in [*PLAIN, h("80E60C0000"), bytes([0x80, 0xE2, 0x80, 0x00, 200]) + bytes(range(200))]:
        wire = host.wrap(plain)
        if level == 0x00:
            assert wire == plain
            continue
        assert bytes(card.unwrap(CommandAPDU.parse(wire))) == plain
