"""Issue 8 through the real stack (pcscd + vpcd + daemon + PC/SC clients).

Defect 1: a 1-byte APDU used to wedge the reader (00/01/02), get the ATR as
its response (04) or drop the link (other bytes). Defect 5: a removal under
an APDU in flight gave the client a successful empty response. Defect 8: a
command chain left open by one application broke the next one's SELECT.

Every PC/SC call that could hang on the old code runs in a worker thread
with a generous bound, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from smartcard import scard

from emulator.control.client import pcsc
from emulator.control.stack.pcscd import pid_alive, read_pid
from emulator.pytest_plugin import LiveCard

pytestmark = pytest.mark.e2e

SELECT_ISD = bytes.fromhex("00A4040008A000000151000000")
SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
ATR = bytes.fromhex("3B8B0180730000C0657663617264BE")
#: no answer within this long is a hang (a correctness bound, not a performance target)
HANG_SECONDS = 10.0

T = TypeVar("T")


def bounded(call: Callable[[], T], seconds: float = HANG_SECONDS) -> T:
    """Run ``call`` in a thread; fail (instead of hanging) if it does not return."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"a PC/SC call did not return within {seconds:g} s: the reader is wedged", pytrace=False)
    if "error" in box:
        raise box["error"]
    return box["value"]


class Client:
    """One PC/SC application: its own context and card handle (raw scard, any disposition)."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        hr, self.ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        assert hr == scard.SCARD_S_SUCCESS
        hr, self.handle, _ = bounded(
            lambda: scard.SCardConnect(self.ctx, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T1)
        )
        assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)

    def transmit(self, apdu: bytes) -> tuple[int, bytes]:
        hr, resp = bounded(lambda: scard.SCardTransmit(self.handle, scard.SCARD_PCI_T1, list(apdu)))
        return hr & 0xFFFFFFFF, bytes(resp)

    def close(self, disposition: int = scard.SCARD_LEAVE_CARD) -> None:
        bounded(lambda: scard.SCardDisconnect(self.handle, disposition))
        scard.SCardReleaseContext(self.ctx)


def select_isd_ok(reader: str) -> None:
    """A second application can connect and use the card (nothing is wedged)."""
    client = Client(reader)
    try:
        hr, resp = client.transmit(SELECT_ISD)
        assert hr == scard.SCARD_S_SUCCESS and resp[-2:] == b"\x90\x00"
    finally:
        client.close()


# -- defect 1: 1-byte APDUs ------------------------------------------------------------
@pytest.mark.parametrize("byte", [0x00, 0x01, 0x02, 0x04, 0x03, 0x05, 0x80, 0xFF])
def test_one_byte_apdu_gets_6700_and_the_reader_stays_usable(vcard: LiveCard, byte: int) -> None:
    client = Client(vcard.reader)
    try:
        t0 = time.monotonic()
        hr, resp = client.transmit(bytes((byte,)))
        took = time.monotonic() - t0
        assert (hr, resp) == (scard.SCARD_S_SUCCESS, b"\x67\x00"), f"1-byte APDU {byte:02X}: {hr:08X} {resp.hex()}"
        assert took < HANG_SECONDS
        # the same application goes on (the link was not dropped, the card not reset)
        hr, resp = client.transmit(SELECT_ISD)
        assert hr == scard.SCARD_S_SUCCESS and resp[-2:] == b"\x90\x00"
        select_isd_ok(vcard.reader)  # and another one connects and works
    finally:
        client.close()


def test_two_and_three_byte_apdus_get_6700(vcard: LiveCard) -> None:
    client = Client(vcard.reader)
    try:
        for apdu in ("0000", "00A4", "0001", "00A404", "040404", "010101"):
            assert client.transmit(bytes.fromhex(apdu)) == (scard.SCARD_S_SUCCESS, b"\x67\x00"), apdu
    finally:
        client.close()


def test_04_is_never_answered_with_the_atr(vcard: LiveCard) -> None:
    client = Client(vcard.reader)
    try:
        for _ in range(5):
            hr, resp = client.transmit(b"\x04")
            assert hr == scard.SCARD_S_SUCCESS and resp != ATR and resp == b"\x67\x00"
    finally:
        client.close()
    conn = vcard.connect()
    try:
        assert bytes(conn.getATR()) == ATR  # power on still gets the real ATR
    finally:
        conn.release()


def test_power_off_by_disconnect_is_still_control(vcard: LiveCard) -> None:
    """SCardDisconnect(UNPOWER) sends 00 exactly like a 1-byte APDU 00: it must stay a power off."""
    client = Client(vcard.reader)
    assert client.transmit(SELECT_PIV)[1][-2:] == b"\x90\x00"
    assert client.transmit(bytes.fromhex("0020008008313233343536FFFF"))[1] == b"\x90\x00"
    client.close(scard.SCARD_UNPOWER_CARD)
    time.sleep(1.0)  # past the hold-back of a lone 00: had it been taken for an APDU, its
    # 6700 would sit in vpcd's stream and every later answer would come one request late
    client = Client(vcard.reader)
    try:
        assert client.transmit(SELECT_PIV)[1][-2:] == b"\x90\x00"
        assert client.transmit(bytes.fromhex("0020008000"))[1] == b"\x63\xc3"  # PIN status lost with the power
        assert client.transmit(SELECT_ISD)[1][:3] == bytes.fromhex("6F4184")
    finally:
        client.close()


def test_power_offs_by_many_applications_stay_in_step(vcard: LiveCard) -> None:
    """pyscard's default disconnect is SCARD_UNPOWER_CARD (a 00 on the wire) at any poll phase:
    every one must stay a power off, so every answer after it is the answer to its own command."""
    log = vcard.stack.paths.daemon_log
    before = log.read_text() if log.exists() else ""
    rng = random.Random(8)
    for _ in range(25):
        client = Client(vcard.reader)
        hr, resp = client.transmit(SELECT_ISD)
        assert hr == scard.SCARD_S_SUCCESS and resp[:3] == bytes.fromhex("6F4184"), resp.hex()
        hr, resp = client.transmit(bytes.fromhex("80CA9F7F00"))
        assert hr == scard.SCARD_S_SUCCESS and resp[:2] == b"\x9f\x7f" and resp[-2:] == b"\x90\x00", resp.hex()
        time.sleep(rng.uniform(0, 0.45))
        client.close(scard.SCARD_UNPOWER_CARD)
        time.sleep(rng.uniform(0, 0.3))
    after = log.read_text()[len(before) :] if log.exists() else ""
    assert "resynchronise" not in after and "1-byte APDU" not in after


def test_zero_byte_transmit_does_not_wedge_the_reader(vcard: LiveCard) -> None:
    """vpcd sends nothing for a 0-byte SCardTransmit and waits: the daemon's watchdog frees it.

    vpcd 0.8 turns the dropped link into a successful empty answer (its
    recvFromVICC); the point is that the call returns and the reader recovers.
    (pyscard cannot send 0 bytes, hence libpcsclite through ctypes.)
    """
    lib = ctypes.CDLL("libpcsclite.so.1")
    ctx, handle, proto = ctypes.c_long(), ctypes.c_long(), ctypes.c_ulong()
    assert lib.SCardEstablishContext(scard.SCARD_SCOPE_USER, None, None, ctypes.byref(ctx)) == 0
    rv = lib.SCardConnect(
        ctx,
        vcard.reader.encode(),
        scard.SCARD_SHARE_SHARED,
        scard.SCARD_PROTOCOL_T1,
        ctypes.byref(handle),
        ctypes.byref(proto),
    )
    assert rv == 0
    pci = (ctypes.c_ulong * 2)(scard.SCARD_PROTOCOL_T1, 2 * ctypes.sizeof(ctypes.c_ulong))
    send, recv, length = (ctypes.c_ubyte * 4)(), (ctypes.c_ubyte * 258)(), ctypes.c_ulong(258)
    try:
        bounded(lambda: lib.SCardTransmit(handle, pci, send, 0, None, recv, ctypes.byref(length)))
    finally:
        lib.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        lib.SCardReleaseContext(ctx)
    pcsc.wait_for_card(vcard.reader, present=True, timeout=HANG_SECONDS)
    bounded(lambda: select_isd_ok(vcard.reader))


# -- defect 5: removal and daemon stop under load -------------------------------------
class Load(threading.Thread):
    """One application transmitting SELECT in a loop, reconnecting after errors."""

    def __init__(self, reader: str) -> None:
        super().__init__(daemon=True)
        self.reader = reader
        self.halt = threading.Event()
        self.ok = 0
        self.empty = 0
        self.errors: dict[int, int] = {}
        self.other: list[bytes] = []

    def run(self) -> None:
        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        handle = None
        while not self.halt.is_set():
            if handle is None:
                hr, handle, _ = scard.SCardConnect(ctx, self.reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T1)
                if hr != scard.SCARD_S_SUCCESS:
                    handle = None
                    time.sleep(0.01)
                    continue
            hr, resp = scard.SCardTransmit(handle, scard.SCARD_PCI_T1, list(SELECT_ISD))
            if hr != scard.SCARD_S_SUCCESS:
                key = hr & 0xFFFFFFFF
                self.errors[key] = self.errors.get(key, 0) + 1
                scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
                handle = None
            elif not resp:
                self.empty += 1
            elif bytes(resp[-2:]) == b"\x90\x00":
                self.ok += 1
            else:
                self.other.append(bytes(resp))
        if handle is not None:
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(ctx)

    def stop(self) -> None:
        self.halt.set()
        self.join(HANG_SECONDS)
        assert not self.is_alive(), "the load thread hangs in PC/SC"


REMOVALS = 8


def test_remove_under_load_never_gives_an_empty_success(vcard: LiveCard) -> None:
    load = Load(vcard.reader)
    load.start()
    torn = []
    try:
        for _ in range(REMOVALS):
            time.sleep(0.2)
            torn.append(vcard.remove(wait=True).get("torn"))
            vcard.insert(wait=True)
        time.sleep(0.2)
    finally:
        load.stop()
    assert load.empty == 0, f"{load.empty} successful empty answers in {REMOVALS} removals under load"
    assert torn == [False] * REMOVALS  # gentle: each link ended at pcscd's presence poll
    assert not load.other
    assert load.ok > REMOVALS
    assert load.errors, "the application never saw the card go"
    assert set(load.errors) <= {scard.SCARD_W_REMOVED_CARD & 0xFFFFFFFF, scard.SCARD_E_NOT_TRANSACTED & 0xFFFFFFFF}


def test_sigterm_of_the_daemon_under_load_never_gives_an_empty_success(vcard: LiveCard) -> None:
    stack = vcard.stack
    for _ in range(3):
        load = Load(vcard.reader)
        load.start()
        try:
            time.sleep(0.3)
            daemon = read_pid(stack.paths.daemon_pid)
            assert daemon is not None
            os.kill(daemon, signal.SIGTERM)
            deadline = time.monotonic() + HANG_SECONDS
            while pid_alive(daemon) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not pid_alive(daemon)
            pcsc.wait_for_card(vcard.reader, present=False, timeout=HANG_SECONDS)
        finally:
            load.stop()
        assert load.empty == 0 and not load.other
        assert load.ok > 0
        stack.up(private=True, insert=False)
        vcard.insert(wait=True)


def test_tear_closes_the_link_at_once(vcard: LiveCard) -> None:
    """An explicit tear is still there (for tear tests); the card goes without waiting for a poll."""
    reply = vcard.stack.client.request("remove", slot=0, tear=True)
    assert reply["torn"] is True
    pcsc.wait_for_card(vcard.reader, present=False, timeout=HANG_SECONDS)
    vcard.insert(wait=True)
    select_isd_ok(vcard.reader)


# -- defect 8: a chain left open by another application --------------------------------
def test_chain_left_open_does_not_break_the_next_applications_select(vcard: LiveCard) -> None:
    first = Client(vcard.reader)
    assert first.transmit(SELECT_PIV)[1][-2:] == b"\x90\x00"
    assert first.transmit(bytes.fromhex("10DB3FFF055C035FC105"))[1] == b"\x90\x00"  # a chain, never finished
    first.close(scard.SCARD_LEAVE_CARD)  # the card stays powered: the chain is still open
    second = Client(vcard.reader)
    try:
        hr, resp = second.transmit(SELECT_ISD)
        assert hr == scard.SCARD_S_SUCCESS and resp[-2:] == b"\x90\x00", resp.hex()
    finally:
        second.close()
