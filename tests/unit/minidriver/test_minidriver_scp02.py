"""SCP02 host side against the published vectors of gp-scp.md §4.5-§4.7, plus behaviour tests."""

from __future__ import annotations

import pytest

from minidriver.scp import (
    AuthenticationError,
    ChannelState,
    SCP02Host,
    SCPError,
    SCPStateError,
    SecurityLevel,
    StaticKeys,
)

h = bytes.fromhex

OK = h("9000")
DEFAULT_KEYS = StaticKeys.same(h("404142434445464748494A4B4C4D4E4F"), kvn=0x01)

# --- §4.5 osmocom/pysim ----------------------------------------------------------

PYSIM_KEYS = StaticKeys(
    kvn=0x70,
    enc=h("100102030405060708090A0B0C0D0E0F"),
    mac=h("101102030405060708090A0B0C0D0E0F"),
    dek=h("102102030405060708090A0B0C0D0E0F"),
)
PYSIM_IU = h("805020000840A62C37FA6304F800")
PYSIM_IU_RESP = h("00000000000000000000 70 02 0001 6B4524ABEE7C F32EA3838BC148F3")
PYSIM_EA = h("8482010010BA6961667737C5BCEBECE14C7D6A4376")


def open_pysim() -> SCP02Host:
    host = SCP02Host(PYSIM_KEYS, i=0x15, host_challenge=PYSIM_IU[5:13])
    assert host.initialize_update_apdu(kvn=0x20) == PYSIM_IU
    info = host.process_initialize_update_response(PYSIM_IU_RESP)
    assert (info.kvn, info.sequence_counter, info.card_challenge) == (0x70, h("0001"), h("6B4524ABEE7C"))
    assert host.external_authenticate_apdu(SecurityLevel.C_MAC) == PYSIM_EA
    return host


def test_pysim_session_chains_encrypted_icv_over_four_commands() -> None:
    host = open_pysim()
    for plain, wrapped in (
        ("80F22002", "84F220020814DB34FA4341DCA8"),
        ("80CA006600", "84CA00660855ED7C5FF069512B00"),
        ("80F220020A4F0212345C054F9F70C5", "84F22002124F0212345C054F9F70C58FC1B380C4228AF8"),
        ("80F28002024F0000", "84F280020A4F003B95F09317DE6A4E00"),
    ):
        assert host.wrap(h(plain)) == h(wrapped)


def test_pysim_psk_is_wrapped_under_the_session_dek() -> None:
    host = open_pysim()
    assert host.dek_encrypt(h("303132333435363738393A3B3C3D3E3F")) == h("15ABF1FE16CCC5AA13743394442942CD")


# --- §4.6 Oberthur via GlobalPlatformPro ----------------------------------------------


def test_oberthur_session_with_factory_kvn_ff() -> None:
    iu = h("8050000008796B87A024C3EF5700")
    host = SCP02Host(DEFAULT_KEYS, host_challenge=iu[5:13])
    assert host.initialize_update_apdu() == iu
    info = host.process_initialize_update_response(h("00008147580F3D2988D8 FF 02 0005 BD1A6BE9D3D5 75BD9E5774FB6A25"))
    assert info.kvn == 0xFF
    assert host.external_authenticate_apdu(0x01) == h("848201001095F3FA1D8578123B2A9DDB6C69EF918A")
    host.process_external_authenticate_response(OK)
    assert host.wrap(h("80F28002024F0000")) == h("84F280020A4F004ACBBBAD77F0346A00")
    reply = h("E3114F08A0000000030000009F700101C5019E") + OK
    assert host.unwrap(reply) == reply


# --- §4.7 kaoh/globalplatform scp02Test.c ------------------------------------------------


def test_kaoh_get_status_mac_only() -> None:
    host = SCP02Host(DEFAULT_KEYS, host_challenge=h("D5AD539A60CA5E72"))
    host.initialize_update_apdu()
    host.process_initialize_update_response(h("000074746E6E6E626262 01 02 069F AA2A0591E733 67DD78794D04315E"))
    assert host.external_authenticate_apdu(0x01) == h("84820100107C799B3C771DBAE6BEF49310977617BA")
    assert host.wrap(h("80F22002024F0000")) == h("84F220020A4F00BB6E71C0EFCFCF0D00")


def test_kaoh_install_mac_enc_external_authenticate() -> None:
    # The doc gives only the EXTERNAL AUTHENTICATE of this session.
    host = SCP02Host(DEFAULT_KEYS, host_challenge=h("EBAA9E53C696281B"))
    host.initialize_update_apdu()
    host.process_initialize_update_response(h("000074746E6E6E626262 01 02 06A1 5086BBEE58F4 67149061DA4B6EAE"))
    assert host.external_authenticate_apdu(0x03) == h("848203001005814C116071EB67D8BA9D9879454564")
    assert host.level == SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION


# --- behaviour ---------------------------------------------------------------------------


def test_wrong_card_cryptogram_raises_and_closes() -> None:
    resp = bytearray(PYSIM_IU_RESP)
    resp[-1] ^= 0x01
    host = SCP02Host(PYSIM_KEYS, host_challenge=PYSIM_IU[5:13])
    host.initialize_update_apdu(kvn=0x20)
    with pytest.raises(AuthenticationError, match="card cryptogram"):
        host.process_initialize_update_response(bytes(resp))
    assert host.state is ChannelState.CLOSED


def test_scp03_response_is_refused() -> None:
    host = SCP02Host(DEFAULT_KEYS)
    host.initialize_update_apdu()
    with pytest.raises(SCPError, match="28 bytes"):
        host.process_initialize_update_response(h("00" * 10 + "300370" + "00" * 16))


def test_wrong_scp_identifier_is_refused() -> None:
    host = SCP02Host(DEFAULT_KEYS)
    host.initialize_update_apdu()
    with pytest.raises(SCPError, match="not SCP02"):
        host.process_initialize_update_response(h("00" * 10 + "0103" + "00" * 16))


@pytest.mark.parametrize("level", [0x11, 0x13, 0x33, 0x02])
def test_levels_without_an_scp02_implementation_are_refused(level: int) -> None:
    """33 and 02 are no SCP02 levels; 11 and 13 (R-MAC) need i bit 20, which i=15 lacks."""
    host = SCP02Host(PYSIM_KEYS, host_challenge=PYSIM_IU[5:13])
    host.initialize_update_apdu(kvn=0x20)
    host.process_initialize_update_response(PYSIM_IU_RESP)
    with pytest.raises((ValueError, SCPError)):
        host.external_authenticate_apdu(level)


@pytest.mark.parametrize("i", [0x04, 0x0A, 0x1A, 0x45, 0x70])
def test_unsupported_i_parameters_are_refused(i: int) -> None:
    with pytest.raises(ValueError):
        SCP02Host(DEFAULT_KEYS, i=i)


def test_aes_length_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SCP02Host(StaticKeys.same(bytes(32), kvn=1))


def test_calls_out_of_order_raise_state_error() -> None:
    host = SCP02Host(DEFAULT_KEYS)
    with pytest.raises(SCPStateError, match="IDLE"):
        host.wrap(h("80F22002"))
    with pytest.raises(SCPStateError, match="IDLE"):
        host.dek_encrypt(bytes(16))
    host.initialize_update_apdu()
    with pytest.raises(SCPStateError, match="CHALLENGED"):
        host.external_authenticate_apdu(0x01)


def test_unwrap_needs_a_wrapped_command_first() -> None:
    host = open_pysim()
    with pytest.raises(SCPStateError):
        host.unwrap(OK)


def test_refused_external_authenticate_closes_channel() -> None:
    host = open_pysim()
    with pytest.raises(AuthenticationError) as excinfo:
        host.process_external_authenticate_response(h("6300"))
    assert excinfo.value.sw == 0x6300
    assert host.state is ChannelState.CLOSED
    with pytest.raises(SCPStateError, match="CLOSED"):
        host.wrap(h("80F22002"))


def test_too_long_command_is_refused_without_advancing_the_icv() -> None:
    host = open_pysim()
    with pytest.raises(SCPError, match="too long"):
        host.wrap(h("80E20000F8") + bytes(248))
    assert host.wrap(h("80F22002")) == h("84F220020814DB34FA4341DCA8")


def test_longest_maced_command_fits() -> None:
    host = open_pysim()
    wrapped = host.wrap(h("80E20000F7") + bytes(247))
    assert wrapped[4] == 0xFF and len(wrapped) == 5 + 255
