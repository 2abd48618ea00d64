"""Helpers for the GlobalPlatform end-to-end tests (tests/e2e/test_gp_*.py).

Everything goes through the real pcscd + vpcd + daemon + pyscard stack of the
``vcard_stack``/``vcard`` fixtures, and the host side is
:mod:`minidriver.gp` on minidriver's host stack (never the card side's code).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from emulator.pytest_plugin import LiveCard
from minidriver.gp import DEFAULT_TEST_KEY, GPSession
from minidriver.iso7816 import CommandAPDU
from minidriver.pcsc import PcscConnection
from minidriver.protocol import SmartCardProtocol
from minidriver.scp import StaticKeys

h = bytes.fromhex
ISD_AID = h("A000000151000000")
PIV_AID = h("A000000308000010000100")
PIV_ELF_AID = h("A000000308")
TEST_KEYS = StaticKeys.same(DEFAULT_TEST_KEY, kvn=0xFF)
SCP02_KVN = 0x20

SCP02_KEYSET = f"""
[[isd.keysets]]
# TEST KEY: the GP default key as an SCP02 (3DES) key set
kvn = {SCP02_KVN:#04x}
scp = "02"
enc = "{DEFAULT_TEST_KEY.hex()}"
mac = "{DEFAULT_TEST_KEY.hex()}"
dek = "{DEFAULT_TEST_KEY.hex()}"
test_only = true
"""


def profile_text(state: Path, *, extra: str = "") -> str:
    """The built-in default profile with its state in ``state`` (as the plugin does), plus ``extra``."""
    text = resources.files("emulator.profiles").joinpath("default.toml").read_text()
    lines = [f'state_file = "{state}"' if line.startswith("state_file") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n" + extra


def write_scp02_profile(tmp_path: Path) -> Path:
    """A default card that also holds an SCP02 key set (KVN 20, test key)."""
    path = tmp_path / "scp02.toml"
    path.write_text(profile_text(tmp_path / "scp02.sqlite", extra=SCP02_KEYSET))
    data: dict[str, Any] = tomllib.loads(path.read_text())
    assert [int(k["kvn"]) for k in data["isd"]["keysets"]] == [0xFF, SCP02_KVN]
    return path


def insert_profile(card: LiveCard, path: Path) -> LiveCard:
    """Swap the ``vcard`` fixture's card for one built from ``path`` (slot 0; the fixture removes it)."""
    card.remove(wait=True)
    card.stack.insert(0, profile=str(path), wait=True)
    return LiveCard(card.stack, 0, str(path))


@contextmanager
def connected(card: LiveCard) -> Iterator[PcscConnection]:
    with PcscConnection(card.reader) as conn:
        yield conn


def open_session(transport: PcscConnection, *, keys: StaticKeys = TEST_KEYS, **kwargs: Any) -> GPSession:
    return GPSession.open(transport, keys, **kwargs)


def plain(transport: PcscConnection, apdu: str | bytes) -> tuple[bytes, int]:
    """One command in the clear (61xx collected); ``(data, SW)``."""
    raw = h(apdu.replace(" ", "")) if isinstance(apdu, str) else apdu
    resp = SmartCardProtocol(transport).transceive(CommandAPDU.parse(raw))
    return resp.data, resp.sw
