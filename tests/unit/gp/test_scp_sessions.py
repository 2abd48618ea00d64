"""Session state machine and tamper resistance of SCP03Card / SCP02Card (gp-scp.md §2.7, §3.7)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.gp.keys import SCPVersion, StaticKeys
from emulator.gp.scp02 import SCP02Card
from emulator.gp.scp03 import SCP03Card
from emulator.gp.state import ChannelState
from emulator.iso7816 import CardError, CommandAPDU, ResponseAPDU

h = bytes.fromhex

ISD_R_AID = h("A0000005591010FFFFFFFF8900000100")
PYSIM128 = StaticKeys(
    0x30,
    h("000102030405060708090A0B0C0D0E0F"),
    h("101112131415161718191A1B1C1D1E1F"),
    h("202122232425262728292A2B2C2D2E2F"),
)
DEFAULT_KEY = h("404142434445464748494A4B4C4D4E4F")

# pySim AES128 SL33 session (gp-scp.md §4.1) and its first wrapped command
SL33_IU = h("8050300008FDF38259A1E0DE4400")
SL33_EA = h("84823300108C36F96BCC00724A4E13AD591D7DA3F0")
SL33_EID = h("84E2910018267A85DFE4A98FCA6FB0527E0DFECCE4914E40401433C87F00")
# pySim SCP02 session (gp-scp.md §4.5) and a wrapped GET STATUS
SCP02_KEYS = StaticKeys(
    0x70,
    h("100102030405060708090A0B0C0D0E0F"),
    h("101102030405060708090A0B0C0D0E0F"),
    h("102102030405060708090A0B0C0D0E0F"),
    scp=SCPVersion.SCP02,
)
SCP02_IU = h("805020000840A62C37FA6304F800")
SCP02_EA = h("8482010010BA6961667737C5BCEBECE14C7D6A4376")
SCP02_CMD = h("84F22002124F0212345C054F9F70C58FC1B380C4228AF8")


def open_scp03() -> SCP03Card:
    card = SCP03Card(PYSIM128, i=0x70, sd_aid=ISD_R_AID, sequence_counter=3)
    card.initialize_update(CommandAPDU.parse(SL33_IU))
    card.external_authenticate(CommandAPDU.parse(SL33_EA))
    assert card.is_open
    return card


def open_scp02() -> SCP02Card:
    card = SCP02Card(SCP02_KEYS, i=0x15, sd_aid=ISD_R_AID, sequence_counter=1, random=lambda n: h("6B4524ABEE7C"))
    card.initialize_update(CommandAPDU.parse(SCP02_IU))
    card.external_authenticate(CommandAPDU.parse(SCP02_EA))
    assert card.is_open
    return card


def flip(raw: bytes, bit: int) -> bytes:
    out = bytearray(raw)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def flipped_command(raw: bytes, bit: int) -> CommandAPDU:
    """The command with one bit flipped; a CLA flip is applied after parsing (7816 rejects some classes)."""
    cmd = CommandAPDU.parse(raw)
    if bit < 8:
        return CommandAPDU(cmd.cla ^ (1 << bit), cmd.ins, cmd.p1, cmd.p2, cmd.data, cmd.ne)
    return CommandAPDU.parse(flip(raw, bit))


def protected_bits(raw: bytes) -> st.SearchStrategy[int]:
    """Every bit the C-MAC covers: CLA except the channel and SM bits, INS, P1, P2 and the data.

    The logical channel bits and the SM indication are cleared/forced before
    MACing (AmdD §6.2.4); Lc and Le are framing (a flipped Lc fails to parse).
    """
    cla_bits = [b for b in range(8) if b > 2]
    data_end = 5 + len(CommandAPDU.parse(raw).data)
    body_bits = list(range(8, 32)) + list(range(40, data_end * 8))
    return st.sampled_from(cla_bits + body_bits)


@settings(max_examples=150, deadline=None)
@given(protected_bits(SL33_EID))
def test_scp03_any_flipped_bit_is_rejected_with_6982_and_closes(bit: int) -> None:
    card = open_scp03()
    with pytest.raises(CardError) as err:
        card.unwrap(flipped_command(SL33_EID, bit))
    assert err.value.sw == 0x6982
    assert card.state is ChannelState.CLOSED and not card.is_open
    with pytest.raises(CardError):
        card.unwrap(CommandAPDU.parse(SL33_EID))  # the genuine command no longer passes


@settings(max_examples=150, deadline=None)
@given(protected_bits(SCP02_CMD))
def test_scp02_any_flipped_bit_is_rejected_with_6982_and_closes(bit: int) -> None:
    card = open_scp02()
    with pytest.raises(CardError) as err:
        card.unwrap(flipped_command(SCP02_CMD, bit))
    assert err.value.sw == 0x6982
    assert card.state is ChannelState.CLOSED


def test_replayed_command_is_rejected() -> None:
    card = open_scp03()
    card.unwrap(CommandAPDU.parse(SL33_EID))
    with pytest.raises(CardError) as err:
        card.unwrap(CommandAPDU.parse(SL33_EID))
    assert err.value.sw == 0x6982


def test_external_authenticate_before_initialize_update_is_6985() -> None:
    card = SCP03Card(PYSIM128, i=0x70, sd_aid=ISD_R_AID, sequence_counter=3)
    with pytest.raises(CardError) as err:
        card.external_authenticate(CommandAPDU.parse(SL33_EA))
    assert err.value.sw == 0x6985


def test_second_initialize_update_on_the_same_session_is_refused() -> None:
    card = SCP03Card(PYSIM128, i=0x70, sd_aid=ISD_R_AID, sequence_counter=3)
    card.initialize_update(CommandAPDU.parse(SL33_IU))
    with pytest.raises(CardError):
        card.initialize_update(CommandAPDU.parse(SL33_IU))


def test_wrong_host_cryptogram_is_6300_and_wipes() -> None:
    card = SCP03Card(PYSIM128, i=0x70, sd_aid=ISD_R_AID, sequence_counter=3)
    card.initialize_update(CommandAPDU.parse(SL33_IU))
    with pytest.raises(CardError) as err:
        card.external_authenticate(CommandAPDU.parse(flip(SL33_EA, 5 * 8)))
    assert err.value.sw == 0x6300
    assert card.state is ChannelState.CLOSED


@pytest.mark.parametrize(("i", "level"), [(0x10, 0x11), (0x30, 0x33), (0x00, 0x13)])
def test_r_mac_and_r_enc_need_the_i_parameter(i: int, level: int) -> None:
    card = SCP03Card(PYSIM128, i=i, sd_aid=ISD_R_AID, sequence_counter=3, random=lambda n: bytes(n))
    card.initialize_update(CommandAPDU.parse(SL33_IU))
    with pytest.raises(CardError) as err:
        card.external_authenticate(CommandAPDU(0x84, 0x82, level, 0x00, bytes(16)))
    assert err.value.sw == 0x6A86
    assert card.state is ChannelState.CLOSED


@pytest.mark.parametrize("level", [0x02, 0x10, 0x21, 0x31, 0x23])
def test_unsupported_levels_are_6a86(level: int) -> None:
    card = SCP03Card(PYSIM128, i=0x70, sd_aid=ISD_R_AID, sequence_counter=3)
    card.initialize_update(CommandAPDU.parse(SL33_IU))
    with pytest.raises(CardError) as err:
        card.external_authenticate(CommandAPDU(0x84, 0x82, level, 0x00, bytes(16)))
    assert err.value.sw == 0x6A86


def test_scp02_refuses_r_mac_levels() -> None:
    card = SCP02Card(SCP02_KEYS, i=0x15, sd_aid=ISD_R_AID, sequence_counter=1, random=lambda n: h("6B4524ABEE7C"))
    card.initialize_update(CommandAPDU.parse(SCP02_IU))
    with pytest.raises(CardError) as err:
        card.external_authenticate(CommandAPDU(0x84, 0x82, 0x11, 0x00, bytes(16)))
    assert err.value.sw == 0x6A86


def test_close_drops_the_session() -> None:
    card = open_scp03()
    card.close()
    assert card.state is ChannelState.CLOSED and not card.is_open
    assert int(card.level) == 0
    with pytest.raises(CardError) as err:
        card.unwrap(CommandAPDU.parse(SL33_EID))
    assert err.value.sw == 0x6982
    assert card.wrap(ResponseAPDU(b"x")) == ResponseAPDU(b"x")


def test_error_status_words_are_not_r_maced() -> None:
    card = open_scp03()
    card.unwrap(CommandAPDU.parse(SL33_EID))
    assert card.wrap(ResponseAPDU(sw=0x6A88)) == ResponseAPDU(sw=0x6A88)


def test_warnings_are_r_maced() -> None:
    card = open_scp03()
    card.unwrap(CommandAPDU.parse(SL33_EID))
    warning = card.wrap(ResponseAPDU(sw=0x6310))
    assert warning.sw == 0x6310 and len(warning.data) == 8


def test_answer_to_a_command_outside_secure_messaging_is_not_r_maced() -> None:
    card = open_scp03()
    assert card.wrap(ResponseAPDU(b"\x01")) == ResponseAPDU(b"\x01")


def test_level_00_session_refuses_secure_messaging() -> None:
    keys = StaticKeys(0x01, DEFAULT_KEY, DEFAULT_KEY, DEFAULT_KEY)
    card = SCP03Card(keys, i=0x00, sd_aid=ISD_R_AID, random=lambda n: bytes(n))
    card.initialize_update(CommandAPDU(0x80, 0x50, 0x00, 0x00, bytes(8)))
    card.state = ChannelState.OPEN  # level 00 (the handshake itself is covered by the vectors)
    with pytest.raises(CardError) as err:
        card.unwrap(CommandAPDU.parse(SL33_EID))
    assert err.value.sw == 0x6982
    assert card.state is ChannelState.CLOSED


@pytest.mark.parametrize("obj", [PYSIM128, SCP02_KEYS])
def test_reprs_never_show_key_bytes(obj: StaticKeys) -> None:
    for text in (repr(obj), repr(open_scp03()), repr(open_scp02())):
        for key in (obj.enc, obj.mac, obj.dek):
            assert key.hex() not in text.lower() and key.hex().upper() not in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"i": 0x10}, "sequence counter"),
        ({"i": 0x40}, "i-parameter"),
        ({"i": 0x71}, "i-parameter"),
        ({"kdd": b"\x00"}, "kdd"),
    ],
)
def test_scp03_constructor_validates(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SCP03Card(PYSIM128, sd_aid=ISD_R_AID, **kwargs)


def test_key_sets_must_match_the_protocol() -> None:
    with pytest.raises(ValueError):
        SCP02Card(PYSIM128, sd_aid=ISD_R_AID, sequence_counter=1)
    with pytest.raises(ValueError):
        SCP03Card(SCP02_KEYS, sd_aid=ISD_R_AID, sequence_counter=1)
    with pytest.raises(ValueError):
        StaticKeys(0x01, bytes(24), bytes(16), bytes(16), scp=SCPVersion.SCP02)
