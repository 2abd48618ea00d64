"""A card pulled mid-write: SIGKILL the daemon at random points of a write-heavy loop.

Each round changes the PIV PIN back and forth (CHANGE REFERENCE DATA writes the
PIN and its retry counter in one store transaction) through pcscd, kills the
daemon at a random moment, and then inspects a copy of the state file with the
card runtime: the PIN must be the last acknowledged one or the one in flight,
never anything else, and the counter must be full.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from emulator.control.stack.pcscd import pid_alive, read_pid
from emulator.factory import build_card
from emulator.profile import load_profile
from emulator.pytest_plugin import LiveCard
from emulator.store import Store

pytestmark = pytest.mark.e2e

ROUNDS = 50
SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
PINS = (b"123456", b"246810")


def pin_block(pin: bytes) -> bytes:
    return pin + b"\xff" * (8 - len(pin))


def working_pin(state: Path, profile_path: str, tmp: Path) -> bytes | None:
    """Which PIN the stored card accepts, checked on a copy (VERIFY writes counters)."""
    copy = tmp / "copy.sqlite"
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(state) + suffix)
        dst = Path(str(copy) + suffix)
        if src.exists():
            shutil.copyfile(src, dst)
        elif dst.exists():
            dst.unlink()
    store = Store(copy)
    try:
        card = build_card(load_profile(profile_path), store)
        card.power_on()
        assert card.transmit(SELECT_PIV)[-2:] == b"\x90\x00"
        # The try is committed before the PIN is compared (anti-tearing); a kill
        # between that write and the restoring one leaves it one short, never more.
        assert card.transmit(bytes.fromhex("0020008000")) in (b"\x63\xc3", b"\x63\xc2"), "retry counter torn"
        for pin in PINS:
            if card.transmit(bytes.fromhex("0020008008") + pin_block(pin)) == b"\x90\x00":
                return pin
        return None
    finally:
        store.close()


class Churn(threading.Thread):
    """Changes the PIN back and forth until told to stop or the link dies."""

    def __init__(self, conn: Any, pin: bytes) -> None:
        super().__init__()
        self.conn = conn
        self.acked = pin  #: the PIN the card confirmed last
        self.inflight = pin  #: the PIN being set when the daemon died
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            new = PINS[1] if self.acked == PINS[0] else PINS[0]
            self.inflight = new
            apdu = bytes.fromhex("0024008010") + pin_block(self.acked) + pin_block(new)
            try:
                _, sw1, sw2 = self.conn.transmit(list(apdu))
            except Exception:
                return
            if (sw1, sw2) != (0x90, 0x00):
                return
            self.acked = new


def wait_gone(pid: int) -> None:
    while pid_alive(pid):
        time.sleep(0.005)


def test_sigkill_mid_write_leaves_old_or_new_state(vcard: LiveCard, tmp_path: Path) -> None:
    stack = vcard.stack
    state = Path(stack.status().slots[0].state_file or "")
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    current = PINS[0]
    kills = 0
    for round_no in range(ROUNDS):
        conn = vcard.connect()
        _, sw1, sw2 = conn.transmit(list(SELECT_PIV))
        assert (sw1, sw2) == (0x90, 0x00)
        _, sw1, sw2 = conn.transmit(list(bytes.fromhex("0020008008") + pin_block(current)))
        assert (sw1, sw2) == (0x90, 0x00), f"round {round_no}: the stored PIN no longer verifies"
        churn = Churn(conn, current)
        churn.start()
        time.sleep(rng.uniform(0.0, 0.15))
        daemon = read_pid(stack.paths.daemon_pid)
        assert daemon is not None
        os.kill(daemon, signal.SIGKILL)
        kills += 1
        churn.halt.set()
        churn.join(timeout=10)
        with contextlib.suppress(Exception):
            conn.release()
        wait_gone(daemon)
        found = working_pin(state, vcard.profile, tmp_path)
        assert found in {churn.acked, churn.inflight}, (
            f"round {round_no}: stored PIN is neither the old nor the new one"
        )
        assert found is not None
        current = found
        stack.up(private=True, insert=False)
        vcard.insert(wait=True)
    assert kills >= ROUNDS
