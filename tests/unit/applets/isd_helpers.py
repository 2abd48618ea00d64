"""Helpers for ISD tests: profiles, whole cards, and a host that speaks SCP to them.

The host side is ``minidriver``'s independent SCP implementation (design.md:
"Host side and card side are written apart"); the tests skip if it is absent.
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from emulator.card import VirtualCard, applet_by_name
from emulator.factory import build_card
from emulator.iso7816 import ResponseAPDU
from emulator.profile import Profile
from emulator.store import MemoryStore, Store

scp03 = pytest.importorskip("minidriver.scp03")
scp02 = pytest.importorskip("minidriver.scp02")
scpbase = pytest.importorskip("minidriver.scpbase")

h = bytes.fromhex
ISD_AID = h("A000000151000000")
DEFAULT_KEY = h("404142434445464748494A4B4C4D4E4F")
PIV_AID = h("A000000308000010000100")


def default_profile_data() -> dict[str, Any]:
    raw = resources.files("emulator.profiles").joinpath("default.toml").read_bytes()
    return tomllib.loads(raw.decode())


def make_profile(tmp: Path | None = None, *, applets: list[str] | None = None, **isd: Any) -> Profile:
    data = copy.deepcopy(default_profile_data())
    if applets is not None:
        data["applets"] = applets
    data["isd"].update(isd)
    return Profile.from_dict(data, source="test.toml", state_dir=tmp or Path("/nonexistent"))


def make_card(profile: Profile | None = None, store: Store | None = None) -> VirtualCard:
    card = build_card(profile or make_profile(), store or MemoryStore())
    card.power_on()
    return card


def isd_of(card: VirtualCard) -> Any:
    isd = applet_by_name(card, "isd")
    assert isd is not None
    return isd


def transmit(card: VirtualCard, apdu: bytes | str) -> ResponseAPDU:
    raw = h(apdu.replace(" ", "")) if isinstance(apdu, str) else apdu
    return ResponseAPDU.from_bytes(card.transmit(raw))


class GPHost:
    """An off-card entity with static keys: opens a secure channel and sends commands through it."""

    def __init__(
        self,
        card: VirtualCard,
        key: bytes = DEFAULT_KEY,
        *,
        kvn: int = 0,
        scp: int = 3,
        i02: int = 0x15,
        channel: int = 0,
        sd_aid: bytes | None = ISD_AID,
        enc: bytes | None = None,
        mac: bytes | None = None,
        dek: bytes | None = None,
        s16: bool = False,
    ) -> None:
        self.card = card
        self.kvn = kvn
        self.channel = channel
        keys = scpbase.StaticKeys(kvn=kvn, enc=enc or key, mac=mac or key, dek=dek or key)
        if scp == 3:
            self.host = scp03.SCP03Host(keys, sd_aid=sd_aid, channel=channel, s16=s16)
        else:
            self.host = scp02.SCP02Host(keys, i=i02, channel=channel)

    def open(self, level: int = 0x01) -> None:
        iu = transmit(self.card, self.host.initialize_update_apdu(self.kvn))
        assert iu.sw == 0x9000, f"INITIALIZE UPDATE: {iu.sw:04X}"
        self.host.process_initialize_update_response(iu.data)
        ea = transmit(self.card, self.host.external_authenticate_apdu(level))
        assert ea.sw == 0x9000, f"EXTERNAL AUTHENTICATE: {ea.sw:04X}"

    def send(self, apdu: bytes | str) -> ResponseAPDU:
        raw = h(apdu.replace(" ", "")) if isinstance(apdu, str) else apdu
        wire = self.card.transmit(self.host.wrap(raw))
        return ResponseAPDU.from_bytes(self.host.unwrap(wire))


@pytest.fixture
def card() -> VirtualCard:
    return make_card()


@pytest.fixture
def host(card: VirtualCard) -> GPHost:
    return GPHost(card)
