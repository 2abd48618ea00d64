"""PIV over SCP03: INITIALIZE UPDATE / EXTERNAL AUTHENTICATE handed to the ISD's service.

The host side is minidriver's independent SCP03 code; these tests skip if it
is absent.
"""

from __future__ import annotations

import pytest
from piv_host import OK, Host, pin_block

from emulator.applets.base import CommandContext
from emulator.applets.piv import PIVApplet
from emulator.iso7816 import CardError, CommandAPDU, ResponseAPDU
from emulator.store import MemoryStore

scp03 = pytest.importorskip("minidriver.scp03")
scpbase = pytest.importorskip("minidriver.scpbase")

ISD_AID = bytes.fromhex("A000000151000000")
GP_TEST_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")


class SecureHost:
    def __init__(self, host: Host) -> None:
        self.card = host.card
        keys = scpbase.StaticKeys(kvn=0, enc=GP_TEST_KEY, mac=GP_TEST_KEY, dek=GP_TEST_KEY)
        self.scp = scp03.SCP03Host(keys, sd_aid=ISD_AID)

    def open(self, level: int) -> int:
        resp = self.card.transmit(self.scp.initialize_update_apdu(0))
        assert resp[-2:] == b"\x90\x00", resp.hex()
        self.scp.process_initialize_update_response(resp[:-2])
        return int.from_bytes(self.card.transmit(self.scp.external_authenticate_apdu(level))[-2:], "big")

    def send(self, apdu: bytes) -> tuple[bytes, int]:
        plain = self.scp.unwrap(self.card.transmit(self.scp.wrap(apdu)))
        return plain[:-2], int.from_bytes(plain[-2:], "big")


@pytest.mark.parametrize("level", [0x01, 0x33])
def test_piv_commands_inside_scp03_session(level: int) -> None:
    host = Host.fresh()
    secure = SecureHost(host)
    assert secure.open(level) == OK
    assert secure.send(bytes.fromhex("0020008008") + pin_block("123456")) == (b"", OK)
    out, sw = secure.send(bytes.fromhex("00CB3FFF055C035FC102"))
    assert sw == OK and out[0] == 0x53
    version, sw = secure.send(bytes.fromhex("00FD0000"))
    assert sw == OK and len(version) == 3


def test_plain_command_inside_cmac_session_is_refused() -> None:
    host = Host.fresh()
    secure = SecureHost(host)
    assert secure.open(0x01) == OK
    assert host.sw(0xFD, 0x00, 0x00) == 0x6982


def test_external_authenticate_without_initialize_update_is_6985() -> None:
    host = Host.fresh()
    assert host.sw(0x82, 0x01, 0x00, bytes(16), cla=0x84) in (0x6985, 0x6982)


class PendingSession:
    is_open = False


class FakeService:
    """Records what the applet hands over (the interface of emulator/gp/service.py)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes | None]] = []

    def initialize_update(self, cmd: CommandAPDU, ctx: CommandContext, *, sd_aid: bytes) -> ResponseAPDU:
        self.calls.append(("initialize_update", sd_aid))
        return ResponseAPDU(b"card-challenge")

    def external_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        self.calls.append(("external_authenticate", None))
        return ResponseAPDU()


def test_applet_delegates_to_the_service_with_the_isd_aid() -> None:
    service = FakeService()
    applet = PIVApplet.from_profile(MemoryStore().namespace("piv"), {}, secure_channel=service)
    ctx = CommandContext(channel=0)
    resp = applet.process(CommandAPDU(0x80, 0x50, 0x00, 0x00, bytes(8)), ctx)
    assert resp.data == b"card-challenge"
    assert service.calls == [("initialize_update", ISD_AID)]
    with pytest.raises(CardError) as err:
        applet.process(CommandAPDU(0x84, 0x82, 0x33, 0x00, bytes(16)), ctx)
    assert err.value.sw == 0x6985  # no session on the channel
    ctx.session = PendingSession()  # type: ignore[assignment]
    applet.process(CommandAPDU(0x84, 0x82, 0x33, 0x00, bytes(16)), ctx)
    assert service.calls[-1] == ("external_authenticate", None)


def test_applet_without_service_refuses_initialize_update() -> None:
    applet = PIVApplet.from_profile(MemoryStore().namespace("piv"), {"keys": []})
    with pytest.raises(CardError) as err:
        applet.process(CommandAPDU(0x80, 0x50, 0x00, 0x00, bytes(8)), CommandContext(channel=0))
    assert err.value.sw == 0x6D00
