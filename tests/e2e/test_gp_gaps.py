"""The GP gaps of issue 13 through pcscd + vpcd + the daemon, with real clients.

* minidriver's host side (written apart from the card): SCP03 S16 mode, SCP02 R-MAC levels 10/11/13,
  DELETE by key identifier alone, GET DATA 67 / D3 / 2F00 / FF21, SET STATUS P1 60;
* yubikit, unchanged, on the ``yubikey-5.7`` persona: card recognition data with SCP11 and
  ``SecurityDomainSession.reset()`` (it blocks every key by failed authentications).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from gp_e2e import (
    ISD_AID,
    PIV_AID,
    SCP02_KEYSET,
    SCP02_KVN,
    connected,
    insert_profile,
    open_session,
    plain,
    profile_text,
)
from yubikit.core import Tlv
from yubikit.core.smartcard.scp import KeyRef, Scp03KeyParams, ScpKid, StaticKeys
from yubikit.securitydomain import SecurityDomainSession
from yubikit_e2e import yubikit_connection as yubikit

from emulator.pytest_plugin import LiveCard
from minidriver.gp import LifeCycleScope
from minidriver.gpobjects import StatusScope
from minidriver.iso7816 import ApduError
from minidriver.scp import StaticKeys as HostKeys
from minidriver.scpbase import AuthenticationError

pytestmark = pytest.mark.e2e

h = bytes.fromhex
NEW_KEY = bytes(range(0x60, 0x70))  # TEST KEY


def persona_card(card: LiveCard, tmp_path: Path, name: str) -> LiveCard:
    """The ``vcard`` fixture's card swapped for the built-in ``name`` profile, state in ``tmp_path``."""
    text = resources.files("emulator.profiles").joinpath(f"{name}.toml").read_text()
    state = tmp_path / f"{name}.sqlite"
    lines = [f'state_file = "{state}"' if line.startswith("state_file") else line for line in text.splitlines()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return insert_profile(card, path)


def write_profile(tmp_path: Path, name: str, *, replace: dict[str, str] | None = None, extra: str = "") -> Path:
    """The default profile with some ``[isd]`` lines replaced (``"i = 0x70"`` -> ``"i = 0x71"``)."""
    text = profile_text(tmp_path / f"{name}.sqlite", extra=extra)
    for old, new in (replace or {}).items():
        assert f"\n{old}\n" in text, old
        text = text.replace(f"\n{old}\n", f"\n{new}\n")
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


# -- SCP03 S16 (Amd D v1.2) -------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0x01, 0x03, 0x13, 0x33])
def test_scp03_s16_session_with_the_minidriver_host(vcard: LiveCard, tmp_path: Path, level: int) -> None:
    card = insert_profile(vcard, write_profile(tmp_path, "s16", replace={"i = 0x70": "i = 0x71"}))
    with connected(card) as transport:
        session = open_session(transport, level=level)  # S16 read from card data 66 (SCP03 i=71)
        assert (session.scp, session.i, session.level) == (0x03, 0x71, level)
        for _ in range(3):  # chained 16-byte C-MACs (and R-MACs from 13)
            assert [e.state for e in session.get_status(StatusScope.ISD)] == ["SECURED"]
        new = HostKeys.same(NEW_KEY, kvn=0x31)
        session.put_key(new)
        again = open_session(transport, keys=new, kvn=0x31, level=level)
        assert {k.kvn for k in again.key_information() if k.kid < 0x10} == {0x31}


def test_scp03_s16_card_refuses_an_s8_host(vcard: LiveCard, tmp_path: Path) -> None:
    card = insert_profile(vcard, write_profile(tmp_path, "s16", replace={"i = 0x70": "i = 0x71"}))
    with connected(card) as transport, pytest.raises(ApduError) as info:
        open_session(transport, s16=False)
    assert info.value.sw == 0x6700


# -- SCP02 R-MAC ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0x10, 0x11, 0x13])
def test_scp02_r_mac_levels_with_the_minidriver_host(vcard: LiveCard, tmp_path: Path, level: int) -> None:
    path = write_profile(tmp_path, "rmac", replace={"scp02_i = 0x15": "scp02_i = 0x35"}, extra=SCP02_KEYSET)
    card = insert_profile(vcard, path)
    with connected(card) as transport:
        session = open_session(transport, kvn=SCP02_KVN, level=level, scp02_i=0x35)
        assert (session.scp, session.level) == (0x02, level)
        for _ in range(3):  # each answer carries an R-MAC chained on the one before
            registry = session.registry()
            assert any(e.aid == PIV_AID for e in registry)
        assert session.get_data(0x00D3) == bytes((0xD3, 0x01, 0x80 | level))
        with pytest.raises(ApduError) as info:  # an error comes back bare; the session goes on
            session.get_data(0x00FE)
        assert info.value.sw == 0x6A88
        assert session.get_status(StatusScope.ISD)[0].state == "SECURED"


def test_scp02_r_mac_needs_the_i_bit(vcard: LiveCard, tmp_path: Path) -> None:
    card = insert_profile(vcard, write_profile(tmp_path, "norm", extra=SCP02_KEYSET))  # scp02_i = 15
    with connected(card) as transport, pytest.raises(AuthenticationError) as info:
        open_session(transport, kvn=SCP02_KVN, level=0x11, scp02_i=0x35)  # a host that believes otherwise
    assert info.value.sw == 0x6A86  # the card refuses level 11 without i bit 20


# -- DELETE by key identifier, GET DATA objects, SET STATUS 60 ----------------------------------------------
def test_delete_key_by_identifier_alone(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        session = open_session(transport)
        with pytest.raises(ApduError) as info:
            session.delete_key_id(0x01)  # the SCP11b key alone could not manage the card
        assert info.value.sw == 0x6985
        session = open_session(transport)
        with pytest.raises(ApduError) as info:
            session.delete_key_id(0x01, delete_last=True)  # P2 01 is a YubiKey extension
        assert info.value.sw == 0x6A86
        session = open_session(transport)
        session.delete_key_id(0x13)  # an SCP11 key by its KID, as before
        session.put_ec_key(0x11, 0x03, ec.generate_private_key(ec.SECP256R1()))  # SCP11a key pair
        session.put_ec_key(0x10, 0x03, ec.generate_private_key(ec.SECP256R1()).public_key())  # its OCE CA key
        session.delete_key_id(0x02)  # SCP11a could manage the card: every key set goes
        assert {(k.kid, k.kvn) for k in session.key_information()} == {(0x10, 0x03), (0x11, 0x03)}
        with pytest.raises(ApduError) as info:
            open_session(transport)
        assert info.value.sw == 0x6A88  # no key set left


def test_yubikit_delete_last_on_the_yubikey_persona(vcard: LiveCard, tmp_path: Path) -> None:
    yubikey = persona_card(vcard, tmp_path, "yubikey-5.7")
    with yubikit(yubikey) as conn:
        sd = SecurityDomainSession(conn)
        sd.authenticate(Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0xFF), keys=StaticKeys.default()))
        sd.delete_key(kvn=0xFF, delete_last=True)  # yubikit sends D2 FF with P2 01
        assert {(r.kid, r.kvn) for r in sd.get_key_information()} == {(0x13, 0x01)}


def test_get_data_67_d3_2f00_ff21_through_gpsession(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        assert plain(transport, "80CA00D300") == (h("D30100"), 0x9000)  # no session: level 00
        session = open_session(transport, level=0x33)
        scp03, scp11 = session.card_capabilities()
        assert (scp03.scp, scp03.i_values, scp03.aes_key_lengths) == (0x03, b"\x70", 0x07)
        assert (scp11.scp, scp11.i_values) == (0x11, h("000103"))
        assert session.security_level() == 0xB3  # AUTHENTICATED | R-ENC | R-MAC | C-DEC | C-MAC
        assert session.get_data(0x00D3) == h("D301B3")
        assert session.applications() == [PIV_AID]
        resources = session.card_resources()
        assert resources.applications == 1 and resources.free_nvm > 0 and resources.free_ram > 0
        session.set_status(LifeCycleScope.APPLICATION, 0x80, PIV_AID)  # locked: no longer listed
        assert session.applications() == []


def test_set_status_60_locks_the_card_and_its_applications(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        session = open_session(transport)
        session.set_status(LifeCycleScope.SD_AND_APPLICATIONS, 0x80, ISD_AID)
        assert plain(transport, "00A404000B" + PIV_AID.hex())[1] == 0x6A82
        assert plain(transport, "00A4040008" + ISD_AID.hex())[1] == 0x6283  # locked card: ISD only
        session = open_session(transport)
        assert session.get_status(StatusScope.APPLICATIONS)[0].locked
        session.set_status(LifeCycleScope.SD_AND_APPLICATIONS, 0x00, ISD_AID)
        assert plain(transport, "00A404000B" + PIV_AID.hex())[1] == 0x9000


# -- yubikit on the yubikey-5.7 persona ---------------------------------------------------------------------
def test_yubikit_card_recognition_lists_scp03_and_scp11(vcard: LiveCard, tmp_path: Path) -> None:
    yubikey = persona_card(vcard, tmp_path, "yubikey-5.7")
    with yubikit(yubikey) as conn:
        tlvs = Tlv.parse_list(SecurityDomainSession(conn).get_card_recognition_data())
        assert [t.tag for t in tlvs][:5] == [0x06, 0x60, 0x63, 0x64, 0x64]  # yubikit's device test
        protocols = [Tlv.unpack(0x06, t.value) for t in tlvs if t.tag == 0x64]
        assert protocols == [h("2A864886FC6B040370"), h("2A864886FC6B041100")]


def test_yubikit_reset_restores_the_factory_security_domain(vcard: LiveCard, tmp_path: Path) -> None:
    yubikey = persona_card(vcard, tmp_path, "yubikey-5.7")
    with yubikit(yubikey) as conn:
        sd = SecurityDomainSession(conn)
        factory_scp11b = sd.get_certificate_bundle(KeyRef(ScpKid.SCP11b, 0x01))[-1].public_key()
        sd.authenticate(Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0xFF), keys=StaticKeys.default()))
        custom = StaticKeys(os.urandom(16), os.urandom(16), os.urandom(16))
        sd.put_key(KeyRef(ScpKid.SCP03, 0x02), custom)  # retires the factory key set
        sd.generate_ec_key(KeyRef(ScpKid.SCP11b, 0x03))
        sd.generate_ec_key(KeyRef(ScpKid.SCP11a, 0x03))  # blocked by failed MUTUAL AUTHENTICATEs
        sd.put_key(KeyRef(0x10, 0x03), ec.generate_private_key(ec.SECP256R1()).public_key())  # by failed PSOs
        refs = {(r.kid, r.kvn) for r in sd.get_key_information()}
        assert refs == {(1, 2), (2, 2), (3, 2), (0x13, 1), (0x13, 3), (0x11, 3), (0x10, 3)}
    with yubikit(yubikey) as conn:
        sd = SecurityDomainSession(conn)
        sd.reset()  # blocks every key by failed authentications; the card resets itself
        info = sd.get_key_information()
        assert set(info) == {KeyRef(k, 0xFF) for k in (1, 2, 3)} | {KeyRef(ScpKid.SCP11b, 0x01)}
        fresh = sd.get_certificate_bundle(KeyRef(ScpKid.SCP11b, 0x01))[-1].public_key()
        assert fresh != factory_scp11b  # a new SCP11b key pair
        sd.authenticate(Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0xFF), keys=StaticKeys.default()))
        assert len(sd.get_data(0x66)) > 0  # a wrapped command in the new factory session
