"""Personas: each switch of emulator/personas.py, seen on the wire of a whole card (sans-I/O)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from emulator.applets.piv.consts import VENDOR_INS
from emulator.card import VirtualCard
from emulator.factory import build_card
from emulator.iso7816 import find_tlv, parse_tlvs
from emulator.personas import PERSONAS, persona_named
from emulator.profile import Profile, ProfileError, builtin_profiles, load_profile
from emulator.store import MemoryStore

SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
SELECT_ISD = bytes.fromhex("00A4040008A000000151000000")
OK = b"\x90\x00"


def card_of(profile: str | Profile) -> VirtualCard:
    card = build_card(load_profile(profile) if isinstance(profile, str) else profile, MemoryStore())
    card.power_on()
    return card


def send(card: VirtualCard, apdu: str | bytes) -> tuple[bytes, int]:
    raw = card.transmit(bytes.fromhex(apdu) if isinstance(apdu, str) else apdu)
    return raw[:-2], int.from_bytes(raw[-2:], "big")


def profile_data(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("emulator.profiles").joinpath(f"{name}.toml").read_text())


# -- the table and the profiles --------------------------------------------------------------
def test_every_persona_ships_a_builtin_profile_of_its_name() -> None:
    assert set(PERSONAS) <= set(builtin_profiles())
    for name, persona in PERSONAS.items():
        profile = load_profile(name)
        assert profile.persona is persona and profile.name == name
        assert profile.state_file.name == f"{name}.sqlite"


def test_a_profile_without_persona_is_gp_standard() -> None:
    assert load_profile("default").persona is persona_named(None) is PERSONAS["gp-standard"]


def test_an_unknown_persona_is_refused_naming_the_choices() -> None:
    data = profile_data("default") | {"persona": "yubikey-5.8"}
    with pytest.raises(ProfileError, match=r"persona must be one of 'gp-standard', 'yubikey-5.7', 'piv-nist'"):
        Profile.from_dict(data, source="card.toml", state_dir=Path("/nonexistent"))


@pytest.mark.parametrize(
    ("persona", "version", "message"),
    [
        ("yubikey-5.7", "5.4.3", "[piv] version must be 5.7.0-5.7.255 with persona 'yubikey-5.7'"),
        ("piv-nist", "5.4.3", "[piv] version has no effect with persona 'piv-nist'"),
    ],
)
def test_a_version_the_persona_cannot_have_is_refused(persona: str, version: str, message: str) -> None:
    data = profile_data("default") | {"persona": persona}
    data["piv"] = dict(data["piv"], version=version)
    with pytest.raises(ProfileError, match=message.replace("[", r"\[").replace(".", r"\.")):
        Profile.from_dict(data, source="card.toml", state_dir=Path("/nonexistent"))


def test_a_yubikey_profile_may_name_another_5_7_firmware() -> None:
    data = profile_data("yubikey-5.7")
    data["piv"]["version"] = "5.7.4"
    card = card_of(Profile.from_dict(data, source="card.toml", state_dir=Path("/nonexistent")))
    send(card, SELECT_PIV)
    assert send(card, "00FD0000") == (bytes((5, 7, 4)), 0x9000)


# -- ISD: GET DATA E0 and 66 ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gp-standard", "piv-nist"])
def test_standard_personas_answer_the_gp_templates(name: str) -> None:
    card = card_of(name)
    send(card, SELECT_ISD)
    info, sw = send(card, "80CA00E000")
    assert sw == 0x9000 and parse_tlvs(info)[0].tag == 0xE0  # GPCS §11.3.3.1
    data, sw = send(card, "80CA006600")
    (card_data,) = parse_tlvs(data)
    assert card_data.tag == 0x66 and parse_tlvs(card_data.value)[0].tag == 0x73  # GPCS §H.2


def test_yubikey_answers_e0_as_bare_c0_entries_and_66_as_bare_73() -> None:
    standard, yubikey = card_of("gp-standard"), card_of("yubikey-5.7")
    for card in (standard, yubikey):
        send(card, SELECT_ISD)
    entries, sw = send(yubikey, "80CA00E000")
    assert sw == 0x9000 and {t.tag for t in parse_tlvs(entries)} == {0xC0}
    assert {t.value[:2] for t in parse_tlvs(entries)} >= {bytes((kid, 0xFF)) for kid in (1, 2, 3)}
    recognition, sw = send(yubikey, "80CA006600")
    (tlv73,) = parse_tlvs(recognition)
    assert sw == 0x9000 and tlv73.tag == 0x73
    oid = find_tlv(tlv73.value, 0x06)
    assert oid is not None and oid.value == bytes.fromhex("2A864886FC6B01")  # {globalPlatform 1}


# -- PIV ---------------------------------------------------------------------------------------
def test_piv_nist_answers_every_vendor_instruction_6d00_and_the_standard_ones() -> None:
    card = card_of("piv-nist")
    send(card, SELECT_PIV)
    for ins in sorted(VENDOR_INS):
        assert send(card, bytes((0x00, ins, 0x00, 0x9A)))[1] == 0x6D00, f"INS {ins:02X}"
    assert send(card, "00CB3FFF055C035FC102")[1] == 0x9000  # CHUID
    assert send(card, "00CB3FFF055C035FC105")[1] >> 8 == 0x61  # the profile's 9A certificate (61xx: more)
    assert send(card, "00CB3FFF055C035FFF01")[1] == 0x6A82  # no attestation certificate was made
    assert send(card, "0020008008313233343536FFFF")[1] == 0x9000


def _advertised(card: VirtualCard) -> list[int]:
    fci, _ = send(card, SELECT_PIV)
    template = find_tlv(parse_tlvs(fci)[0].value, 0xAC)
    assert template is not None
    return [t.value[0] for t in parse_tlvs(template.value) if t.tag == 0x80]


def test_select_advertises_the_persona_algorithms() -> None:
    assert _advertised(card_of("gp-standard")) == [0x03, 0x08, 0x0A, 0x0C, 0x06, 0x07, 0x05, 0x16, 0x11, 0x14]
    assert _advertised(card_of("yubikey-5.7"))[-2:] == [0xE0, 0xE1]
    assert _advertised(card_of("piv-nist")) == [0x03, 0x08, 0x0A, 0x0C, 0x06, 0x07, 0x11, 0x14]


def test_versions_and_default_management_keys() -> None:
    cases = {"gp-standard": ((5, 4, 3), 0x03), "yubikey-5.7": ((5, 7, 2), 0x0A)}
    for name, (version, mgmt_alg) in cases.items():
        card = card_of(name)
        send(card, SELECT_PIV)
        assert send(card, "00FD0000") == (bytes(version), 0x9000)
        meta, sw = send(card, "00F7009B")
        fields = {t.tag: t.value for t in parse_tlvs(meta)}
        assert sw == 0x9000 and fields[0x01] == bytes((mgmt_alg,)) and fields[0x05] == b"\x01"  # default key


def test_gp_standard_keeps_todays_answers() -> None:
    card = card_of("gp-standard")
    send(card, SELECT_PIV)
    assert send(card, "00F69C9A")[1] == 0x6D00  # MOVE KEY is a 5.7 instruction
    serial, sw = send(card, "00F80000")
    assert sw == 0x9000 and len(serial) == 4


def test_a_persona_without_get_version_cannot_name_a_version() -> None:
    from dataclasses import replace

    nist, yubikey = PERSONAS["piv-nist"], PERSONAS["yubikey-5.7"]
    with pytest.raises(ValueError, match="piv_version goes with the GET VERSION extension"):
        replace(nist, piv_version=(5, 4, 3))
    with pytest.raises(ValueError, match="piv_version goes with the GET VERSION extension"):
        replace(yubikey, piv_version=None)
    assert not nist.piv_attestation and yubikey.piv_attestation
