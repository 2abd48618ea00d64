"""SCP02 card side against the published host-side vectors (gp-scp.md §4.5-4.7).

The card challenge is random for i=15, so it is forced through ``random``; the
sequence counter is the one the published card answered.
"""

from __future__ import annotations

import pytest

from emulator.gp.crypto import SCP02Derivation, scp02_session_key, tdes_ecb_encrypt
from emulator.gp.keys import SCPVersion, StaticKeys
from emulator.gp.levels import SecurityLevel
from emulator.gp.scp02 import SCP02Card
from emulator.gp.state import ChannelState
from emulator.iso7816 import CommandAPDU

h = bytes.fromhex

ISD_AID = h("A000000151000000")
DEFAULT_KEY = h("404142434445464748494A4B4C4D4E4F")


def des_keys(kvn: int, enc: bytes = DEFAULT_KEY, mac: bytes = DEFAULT_KEY, dek: bytes = DEFAULT_KEY) -> StaticKeys:
    return StaticKeys(kvn, enc, mac, dek, scp=SCPVersion.SCP02)


def forced(value: str):
    def random(n: int) -> bytes:
        assert n == 6
        return h(value)

    return random


def open_session(card: SCP02Card, iu: str, iu_resp: str, ext_auth: str) -> None:
    assert bytes(card.initialize_update(CommandAPDU.parse(h(iu)))) == h(iu_resp) + h("9000")
    assert card.state is ChannelState.CHALLENGED
    assert bytes(card.external_authenticate(CommandAPDU.parse(h(ext_auth)))) == h("9000")
    assert card.is_open


PYSIM_KEYS = des_keys(
    0x70,
    h("100102030405060708090A0B0C0D0E0F"),
    h("101102030405060708090A0B0C0D0E0F"),
    h("102102030405060708090A0B0C0D0E0F"),
)


def test_pysim_session_derives_published_session_keys_and_unwraps_four_commands() -> None:
    card = SCP02Card(PYSIM_KEYS, i=0x15, sd_aid=ISD_AID, sequence_counter=1, random=forced("6B4524ABEE7C"))
    open_session(
        card,
        "805020000840A62C37FA6304F800",
        "00000000000000000000700200016B4524ABEE7CF32EA3838BC148F3",
        "8482010010BA6961667737C5BCEBECE14C7D6A4376",
    )
    assert card.level == SecurityLevel.C_MAC | SecurityLevel.AUTHENTICATED
    for wrapped, plain in [
        ("84F220020814DB34FA4341DCA8", "80F22002"),
        ("84CA00660855ED7C5FF069512B00", "80CA006600"),
        ("84F22002124F0212345C054F9F70C58FC1B380C4228AF8", "80F220020A4F0212345C054F9F70C5"),
        ("84F280020A4F003B95F09317DE6A4E00", "80F28002024F0000"),
    ]:
        assert bytes(card.unwrap(CommandAPDU.parse(h(wrapped)))) == h(plain)


@pytest.mark.parametrize(
    ("constant", "expected"),
    [
        (SCP02Derivation.S_ENC, "1BA074B31F72A6C44FE8F5D9AFE4DA2F"),
        (SCP02Derivation.C_MAC, "29A69328E60494982632039DDD47A2F1"),
        (SCP02Derivation.R_MAC, "FDF8A06C38FA7A54123C80AB9087BF25"),
        (SCP02Derivation.DEK, "511DB767812597722109C867F9D7257A"),
    ],
)
def test_pysim_session_keys(constant: SCP02Derivation, expected: str) -> None:
    static = {
        SCP02Derivation.S_ENC: PYSIM_KEYS.enc,
        SCP02Derivation.C_MAC: PYSIM_KEYS.mac,
        SCP02Derivation.R_MAC: PYSIM_KEYS.mac,
        SCP02Derivation.DEK: PYSIM_KEYS.dek,
    }[constant]
    assert scp02_session_key(static, constant, h("0001")) == h(expected)


def test_pysim_psk_put_key_is_decrypted_with_the_session_dek() -> None:
    card = SCP02Card(PYSIM_KEYS, i=0x15, sd_aid=ISD_AID, sequence_counter=1, random=forced("6B4524ABEE7C"))
    open_session(
        card,
        "805020000840A62C37FA6304F800",
        "00000000000000000000700200016B4524ABEE7CF32EA3838BC148F3",
        "8482010010BA6961667737C5BCEBECE14C7D6A4376",
    )
    psk = h("303132333435363738393A3B3C3D3E3F")
    wrapped = h("15ABF1FE16CCC5AA13743394442942CD")
    assert tdes_ecb_encrypt(h("511DB767812597722109C867F9D7257A"), psk) == wrapped
    assert card.decrypt_key(wrapped) == psk


def test_oberthur_dump_session() -> None:
    card = SCP02Card(
        des_keys(0xFF),
        i=0x15,
        kdd=h("00008147580F3D2988D8"),
        sd_aid=h("A000000003000000"),
        sequence_counter=5,
        random=forced("BD1A6BE9D3D5"),
    )
    open_session(
        card,
        "8050000008796B87A024C3EF5700",
        "00008147580F3D2988D8FF020005BD1A6BE9D3D575BD9E5774FB6A25",
        "848201001095F3FA1D8578123B2A9DDB6C69EF918A",
    )
    assert bytes(card.unwrap(CommandAPDU.parse(h("84F280020A4F004ACBBBAD77F0346A00")))) == h("80F28002024F0000")


KAOH_KDD = "000074746E6E6E626262"


def test_kaoh_get_status_mac_only() -> None:
    card = SCP02Card(
        des_keys(0x01), i=0x15, kdd=h(KAOH_KDD), sd_aid=ISD_AID, sequence_counter=0x069F, random=forced("AA2A0591E733")
    )
    open_session(
        card,
        "8050000008D5AD539A60CA5E7200",
        f"{KAOH_KDD}0102069FAA2A0591E73367DD78794D04315E",
        "84820100107C799B3C771DBAE6BEF49310977617BA",
    )
    assert bytes(card.unwrap(CommandAPDU.parse(h("84F220020A4F00BB6E71C0EFCFCF0D00")))) == h("80F22002024F0000")


KAOH_INSTALL_MAC_ENC = [
    ("84E4008018BC146FA0403BE4BAD3BC089E4ABD8674DA7EFEA21047B85800", "80E400800A4F08D0D1D2D3D4D5010100"),
    ("84E4008018C2748C1669FAFC0E20C5253680388A4A49C9A6038D77B45700", "80E40080094F07D0D1D2D3D4D50100"),
    (
        "84E60200280839B761AA201C218FD6607C56803CFD2D098CBAA9946976EEFAE3F210038EB4965D6E04EDEF801700",
        "80E60200 1E 07D0D1D2D3D4D501 08A000000003000000 00 0AEF08C6020160C80207D0 00 00",
    ),
    (
        "84E80000F8562EFDC9F22082A5184831F1DA6A0F495C5DF0FD71E8014A2B94EA81069FB630346197CDF1C3BD9CDBDD9513BFE6FE7992730FCF2089019D1374DA1021BD74E2085B806B8DA57431FF008406E1C695F2E27E0C2A554E01047B9B36F4058CFC1C2FB8D0A45B01C626DF5CB2509436283BE22B9E7750B3B7F36E29E3C97C69533B35C2DBEF13904D06E96BEBB6FA38D3E7EB7EB9170F3004824F5A32278AE7CBC3E591BA0C79B090FBD8038B60AC5F83E4E250B32AD5B92768E775AA974A4FAFC81356FA333D5AB4FAF1A0056E08420AF95D18CA0DF726BA560C5C340CCA81A1BEA294AAFE3AED250EF6865AA2D3F11D058FDFE5EE7622AE19",
        None,
    ),
    (
        "84E88001787FFE538F755D612CEE738FA68E177E8E146E66EF2A840387F7086C1CA8659C9F985585E11001A12D4940CB3EF200DFEC9EC7FB59CADED4A7F82EDA5BE808552A3CD3B65D41F9F61A23E6FDA2C1BF2493F4929950FA62030FF023B34398247A2E01BBF949E819B5EEA117DC6E0D91D40D85ABDE0BC2A76D8600",
        None,
    ),
    (
        "84E60C00300839B761AA201C21EDAE7D003F76B62164B363AF56A2C7FE12AEF9FDC790DFC8FFE6B0346E9BF02674684247652F109A00",
        "80E60C00 27 07D0D1D2D3D4D501 08D0D1D2D3D4D50101 08D0D1D2D3D4D50101 0102 09C90100EF04C80207D0 00 00",
    ),
]


def test_kaoh_install_mac_enc_six_commands_unwrap_in_chain() -> None:
    card = SCP02Card(
        des_keys(0x01), i=0x15, kdd=h(KAOH_KDD), sd_aid=ISD_AID, sequence_counter=0x06A1, random=forced("5086BBEE58F4")
    )
    open_session(
        card,
        "8050000008EBAA9E53C696281B00",
        f"{KAOH_KDD}010206A15086BBEE58F467149061DA4B6EAE",
        "848203001005814C116071EB67D8BA9D9879454564",
    )
    for wrapped, plain in KAOH_INSTALL_MAC_ENC:
        cmd = card.unwrap(CommandAPDU.parse(h(wrapped)))
        if plain is not None:
            assert bytes(cmd) == h(plain)
        else:  # LOAD blocks: the plaintext is a CAP file not published in gp-scp.md
            assert (cmd.cla, cmd.ins) == (0x80, 0xE8)
    assert card.is_open
