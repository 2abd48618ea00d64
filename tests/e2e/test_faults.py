"""Fault injection through the real pcscd; every kind checks the stored card state afterwards.

The state is read from the card's SQLite file with emulator.store once the
card is out of the slot (the daemon has closed it): the PIN and its retry
counter are what a real card would hold after the same misbehaviour.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from smartcard.Exceptions import CardConnectionException

from emulator.applets.piv.credentials import Credential
from emulator.control.client import pcsc
from emulator.pytest_plugin import LiveCard
from emulator.store import Store
from emulator.trace import ApduEvent, CardEvent, FaultEvent

pytestmark = pytest.mark.e2e

SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
GET_CHUID = bytes.fromhex("00CB3FFF055C035FC102")
OLD, NEW, WRONG = b"123456\xff\xff", b"654321\xff\xff", b"000000\xff\xff"
VERIFY_OLD = bytes.fromhex("0020008008") + OLD
VERIFY_WRONG = bytes.fromhex("0020008008") + WRONG
CHANGE = bytes.fromhex("0024008010") + OLD + NEW
WAIT = 10.0


def state_file(card: LiveCard) -> Path:
    return Path(card.profile).with_name("card.sqlite")


def stored_pin(card: LiveCard) -> Credential:
    """The PIN as the state file holds it; the card must be out (the daemon closed the file)."""
    if card.stack.status().slots[card.slot].present:
        card.remove(wait=True)
    store = Store(state_file(card))
    try:
        raw = store.get("piv", "pin")
    finally:
        store.close()
    assert raw is not None
    return Credential.from_bytes(raw)


class Conn:
    """One pyscard connection; ``send`` returns data + SW."""

    def __init__(self, card: LiveCard) -> None:
        self.conn = card.connect()

    def send(self, apdu: bytes) -> bytes:
        data, sw1, sw2 = self.conn.transmit(list(apdu))
        return bytes(data) + bytes((sw1, sw2))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the card may be gone
            self.conn.release()


def fault_events(card: LiveCard) -> list[FaultEvent]:
    return [e for e in card.trace() if isinstance(e, FaultEvent)]


def expect_pulled(card: LiveCard, conn: Conn, apdu: bytes) -> None:
    """The command's answer never comes: pyscard reports no valid response, pcscd the card gone."""
    with pytest.raises(CardConnectionException):
        conn.send(apdu)
    conn.close()
    pcsc.wait_for_card(card.reader, present=False, timeout=WAIT)
    assert not card.stack.status().slots[card.slot].present
    assert any(isinstance(e, CardEvent) and e.kind == "tear" for e in card.trace())


# -- sw -------------------------------------------------------------------------------------
def test_sw_fault_answers_instead_of_the_card_and_spends_no_try(vcard: LiveCard) -> None:
    info = vcard.fault("sw", ins=0x20, sw=0x6A82)
    assert info.kind == "sw" and info.remaining == 1
    conn = Conn(vcard)
    try:
        assert conn.send(SELECT_PIV)[-2:] == b"\x90\x00"
        assert conn.send(VERIFY_WRONG) == b"\x6a\x82"  # the card never saw it
        assert conn.send(bytes.fromhex("0020008000")) == b"\x63\xc3"  # all tries left
        assert conn.send(VERIFY_OLD) == b"\x90\x00"  # one-shot: spent
    finally:
        conn.close()
    hit = [e for e in vcard.trace() if isinstance(e, ApduEvent) and e.fault == info.id]
    assert len(hit) == 1 and hit[0].sw == 0x6A82 and hit[0].command_data is None  # still redacted
    assert [e.fault for e in fault_events(vcard)] == [info.id]
    assert vcard.stack.fault_list(0) == []
    cred = stored_pin(vcard)
    assert (cred.value, cred.remaining) == (OLD, 3)


def test_counted_sw_fault_skips_nth_and_fires_count_times(vcard: LiveCard) -> None:
    vcard.fault("sw", ins=0xCB, sw=0x6F00, skip=1, count=2)
    conn = Conn(vcard)
    try:
        conn.send(SELECT_PIV)
        sws = [conn.send(GET_CHUID)[-2:].hex() for _ in range(4)]
    finally:
        conn.close()
    assert sws == ["9000", "6f00", "6f00", "9000"]
    assert stored_pin(vcard).remaining == 3


# -- latency ----------------------------------------------------------------------------------
def test_latency_fault_delays_the_answer_and_the_command_runs(vcard: LiveCard) -> None:
    vcard.fault("latency", ins=0x20, delay_ms=300)
    conn = Conn(vcard)
    try:
        conn.send(SELECT_PIV)
        start = time.monotonic()
        assert conn.send(VERIFY_WRONG) == b"\x63\xc2"  # ran: a try spent
        assert time.monotonic() - start >= 0.3
    finally:
        conn.close()
    verify = [e for e in vcard.trace() if isinstance(e, ApduEvent) and e.ins_name == "VERIFY"][-1]
    assert verify.fault  # the trace says which fault shaped it
    assert stored_pin(vcard).remaining == 2


# -- mute -------------------------------------------------------------------------------------
def test_mute_card_blocks_the_host_then_is_pulled_and_nothing_ran(vcard: LiveCard) -> None:
    """pcscd/vpcd never time out a silent card: the transmit blocks until the daemon's bound pulls it."""
    vcard.fault("mute", ins=0x24, delay_ms=1500)
    conn = Conn(vcard)
    conn.send(SELECT_PIV)
    outcome: dict[str, Any] = {}

    def change() -> None:
        start = time.monotonic()
        try:
            outcome["reply"] = conn.send(CHANGE)
        except CardConnectionException as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - start

    worker = threading.Thread(target=change)
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive()  # still waiting for the mute card
    worker.join(timeout=WAIT)
    assert not worker.is_alive()
    assert "error" in outcome and outcome["seconds"] >= 1.5, outcome  # no answer, ever: an error
    conn.close()
    pcsc.wait_for_card(vcard.reader, present=False, timeout=WAIT)
    cred = stored_pin(vcard)
    assert (cred.value, cred.remaining) == (OLD, 3)  # the command never ran
    vcard.insert(wait=True)  # the slot works again
    conn = Conn(vcard)
    try:
        conn.send(SELECT_PIV)
        assert conn.send(VERIFY_OLD) == b"\x90\x00"
    finally:
        conn.close()


def test_remove_ends_a_mute_at_once(vcard: LiveCard) -> None:
    vcard.fault("mute", ins=0xCB, delay_ms=60_000)
    conn = Conn(vcard)
    conn.send(SELECT_PIV)
    errors: list[Exception] = []

    def read() -> None:
        try:
            conn.send(GET_CHUID)
        except CardConnectionException as exc:
            errors.append(exc)

    worker = threading.Thread(target=read)
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive()
    vcard.stack.remove(0, wait=True, timeout=WAIT)  # long before the 60 s bound
    worker.join(timeout=WAIT)
    assert not worker.is_alive() and errors
    conn.close()
    assert stored_pin(vcard).remaining == 3


# -- tear -------------------------------------------------------------------------------------
def test_tear_before_pin_change_leaves_the_old_pin(vcard: LiveCard) -> None:
    vcard.fault("tear", ins=0x24, when="before")
    conn = Conn(vcard)
    conn.send(SELECT_PIV)
    expect_pulled(vcard, conn, CHANGE)
    cred = stored_pin(vcard)
    assert (cred.value, cred.remaining) == (OLD, 3)


def test_tear_after_pin_change_keeps_the_new_pin(vcard: LiveCard) -> None:
    vcard.fault("tear", ins=0x24, when="after")
    conn = Conn(vcard)
    conn.send(SELECT_PIV)
    expect_pulled(vcard, conn, CHANGE)
    cred = stored_pin(vcard)
    assert (cred.value, cred.remaining) == (NEW, 3)  # committed before the link dropped
    change = [e for e in vcard.trace() if isinstance(e, ApduEvent) and e.ins_name == "CHANGE_REFERENCE_DATA"]
    assert change and change[-1].sw == 0x9000 and change[-1].fault  # the card answered; the host never heard


def test_tear_after_wrong_pin_keeps_the_decrement(vcard: LiveCard) -> None:
    vcard.fault("tear", ins=0x20, when="after")
    conn = Conn(vcard)
    conn.send(SELECT_PIV)
    expect_pulled(vcard, conn, VERIFY_WRONG)
    cred = stored_pin(vcard)
    assert (cred.value, cred.remaining) == (OLD, 2)


def test_tear_before_wrong_pin_spends_nothing(vcard: LiveCard) -> None:
    vcard.fault("tear", ins=0x20, when="before", skip=1)  # the second VERIFY
    conn = Conn(vcard)
    conn.send(SELECT_PIV)
    assert conn.send(VERIFY_WRONG) == b"\x63\xc2"
    expect_pulled(vcard, conn, VERIFY_WRONG)
    cred = stored_pin(vcard)
    assert (cred.value, cred.remaining) == (OLD, 2)


# -- ATR ----------------------------------------------------------------------------------------
def atr_of(card: LiveCard) -> bytes:
    conn = card.connect()
    try:
        return bytes(conn.getATR())
    finally:
        conn.release()


def test_slow_atr_delays_the_reset_and_the_card_is_intact(vcard: LiveCard) -> None:
    normal = atr_of(vcard)
    vcard.fault("slow-atr", delay_ms=800)
    start = time.monotonic()
    vcard.reset()
    assert time.monotonic() - start >= 0.8
    assert atr_of(vcard) == normal
    assert [e.kind for e in fault_events(vcard)] == ["slow-atr"]
    assert stored_pin(vcard).value == OLD


def with_tck(atr: bytes) -> bytes:
    tck = 0
    for b in atr[1:]:
        tck ^= b
    return atr + bytes((tck,))


def test_other_atr_until_cleared_then_the_cards_own(vcard: LiveCard) -> None:
    """pcscd powers an idle card down, so a reset may be a power-on + reset: two ATRs; hence count=None."""
    normal = atr_of(vcard)
    other = normal[:-2] + b"x"  # "vcarx": the card's own ATR with its last historical byte changed
    other = with_tck(other)
    assert other != normal and len(other) == len(normal)
    vcard.fault("atr", atr=other, count=None)
    vcard.reset()
    assert atr_of(vcard) == other
    conn = Conn(vcard)
    try:
        assert conn.send(SELECT_PIV)[-2:] == b"\x90\x00"  # the card behind the other ATR still answers
    finally:
        conn.close()
    assert vcard.stack.fault_clear(0) == 1
    vcard.reset()
    assert atr_of(vcard) == normal
    assert stored_pin(vcard).remaining == 3


# -- CLI ------------------------------------------------------------------------------------------
def cli(card: LiveCard, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", str(card.stack.paths.root), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def test_cli_fault_add_list_clear_and_usage_errors(vcard: LiveCard) -> None:
    added = cli(vcard, "fault", "add", "sw", "6A82", "--ins", "CB", "--count", "2")
    assert added.returncode == 0 and "answer 6A82 on INS CB, 2x" in added.stdout
    assert cli(vcard, "fault", "add", "tear", "--ins", "24", "--when", "after").returncode == 0
    listed = cli(vcard, "fault", "list").stdout
    assert "f" in listed and "6A82" in listed and "tear" in listed
    conn = Conn(vcard)
    try:
        conn.send(SELECT_PIV)
        assert conn.send(GET_CHUID) == b"\x6a\x82"
    finally:
        conn.close()
    assert "fired 1, 1 left" in cli(vcard, "fault", "list", "--slot", "0").stdout
    assert cli(vcard, "fault", "clear").stdout.strip() == "cleared 2 faults"
    assert cli(vcard, "fault", "list").stdout.strip() == "no faults"
    for bad in (
        ["fault", "add", "sw"],  # needs a value
        ["fault", "add", "sw", "9"],
        ["fault", "add", "sw", "6A82", "--ins", "1FF"],
        ["fault", "add", "latency", "0"],
        ["fault", "add", "mute", "--when", "after"],
        ["fault", "add", "atr", "3B"],
        ["fault", "add", "bogus"],
    ):
        out = cli(vcard, *bad)
        assert out.returncode == 2 and out.stderr.startswith("vcard: ") and out.stderr.count("\n") == 1, (bad, out)
    assert cli(vcard, "fault", "clear", "f999").returncode == 1


# -- the README example, as written there ------------------------------------------------------------
def test_readme_example(vcard: LiveCard) -> None:
    select_piv = bytes.fromhex("00A4040009A00000030800001000")
    verify = bytes.fromhex("0020008008313233343536FFFF")  # the default profile's test PIN 123456

    vcard.fault("sw", ins=0x20, sw=0x6F00)  # the next VERIFY answers 6F00 (the card never sees it)
    vcard.fault("tear", ins=0x20, skip=1, when="after")  # the 2nd VERIFY runs, then the card is pulled
    conn = vcard.connect()
    conn.transmit(list(select_piv))
    assert conn.transmit(list(verify))[1:] == (0x6F, 0x00)
    with pytest.raises(CardConnectionException):  # no answer: the card is gone
        conn.transmit(list(verify))
    pcsc.wait_for_card(vcard.reader, present=False, timeout=5)

    trace = vcard.trace()
    assert [e.kind for e in trace if isinstance(e, FaultEvent)] == ["sw", "tear"]
    last = [e for e in trace if isinstance(e, ApduEvent) and e.ins_name == "VERIFY"][-1]
    assert last.sw == 0x9000 and last.command_data is None  # it ran on the card; the PIN is redacted
    vcard.insert(wait=True)  # and the card is back, PIN verified once: retries full
