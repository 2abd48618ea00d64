"""APDU traces through the real pcscd: events, redaction declared by the applets, reveal, stream, CLI, fixture."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emulator.control import messages
from emulator.pytest_plugin import LiveCard
from emulator.trace import ApduEvent, CardEvent

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]  # the report test runs a failing test in a subprocess

SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
VERIFY = bytes.fromhex("0020008008") + b"123456\xff\xff"
GET_CHUID = bytes.fromhex("00CB3FFF055C035FC102")


def apdus(events: list) -> list[ApduEvent]:
    return [e for e in events if isinstance(e, ApduEvent)]


def vcard_cli(card: LiveCard, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", str(card.stack.paths.root), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=check)


def test_every_command_is_an_event_with_names_and_timing(vcard: LiveCard) -> None:
    conn = vcard.connect()
    try:
        data, sw1, sw2 = conn.transmit(list(SELECT_PIV))
        assert (sw1, sw2) == (0x90, 0x00)
        conn.transmit(list(GET_CHUID))
        conn.transmit(list(VERIFY))
    finally:
        conn.release()
    events = vcard.trace()
    assert isinstance(events[0], CardEvent) and events[0].kind == "insert"  # the trace starts with the test
    assert any(isinstance(e, CardEvent) and e.kind == "power_on" for e in events)
    sel, chuid, verify = apdus(events)[-3:]
    assert (sel.ins_name, sel.applet, sel.sw, sel.sw_name) == ("SELECT", "piv", 0x9000, "OK")
    assert sel.command_data == SELECT_PIV[5:].hex().upper() and sel.resp_len == len(data)
    assert (chuid.ins_name, chuid.applet, chuid.channel, chuid.slot) == ("GET_DATA", "piv", 0, 0)
    assert chuid.response_data is not None and chuid.resp_len > 0  # the CHUID is not secret
    assert verify.ins_name == "VERIFY" and verify.sw == 0x9000 and verify.lc == 8
    assert all(e.duration_ms >= 0 and e.sm == "" for e in (sel, chuid, verify))
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def send(card: LiveCard, *commands: bytes) -> list[bytes]:
    """Commands in one connection (``LiveCard.transmit`` opens one per command)."""
    conn = card.connect()
    try:
        out = []
        for command in commands:
            data, sw1, sw2 = conn.transmit(list(command))
            out.append(bytes(data) + bytes((sw1, sw2)))
        return out
    finally:
        conn.release()


def test_pin_is_redacted_unless_revealed_and_the_reveal_is_logged(vcard: LiveCard) -> None:
    assert send(vcard, SELECT_PIV, VERIFY)[1] == b"\x90\x00"
    verify = [e for e in apdus(vcard.trace()) if e.ins_name == "VERIFY"][-1]
    assert verify.command_data is None and verify.redacted_fields == ("command_data",)
    assert "313233343536" not in json.dumps(messages.encode_event(verify))
    revealed = [e for e in apdus(vcard.trace(reveal=True)) if e.ins_name == "VERIFY"][-1]
    assert revealed.command_data == VERIFY[5:].hex().upper() and revealed.redacted_fields == ()
    log = vcard.stack.paths.daemon_log.read_text()
    assert f"uid {os.getuid()} asked for the trace with secrets revealed" in log


def test_cli_trace_table_json_last_and_reveal(vcard: LiveCard) -> None:
    send(vcard, SELECT_PIV, VERIFY)
    table = vcard_cli(vcard, "trace", "--slot", "0").stdout
    assert "VERIFY" in table and "[8 bytes redacted]" in table and "313233343536" not in table
    assert len(vcard_cli(vcard, "trace", "--json", "--last", "2").stdout.splitlines()) == 2
    lines = vcard_cli(vcard, "trace", "--json", "--last", "10").stdout.splitlines()
    objs = [json.loads(line) for line in lines if '"apdu"' in line]  # power events come and go
    assert objs[-1]["ins_name"] == "VERIFY" and objs[-1]["command_data"] is None
    shown = vcard_cli(vcard, "trace", "--json", "--reveal", "--last", "10")
    revealed = [json.loads(line) for line in shown.stdout.splitlines() if '"apdu"' in line]
    assert revealed[-1]["command_data"] == VERIFY[5:].hex().upper()
    assert "--reveal" in shown.stderr
    bad = vcard_cli(vcard, "trace", "--last", "x", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--last" in bad.stderr


def test_follow_streams_new_events_as_json_lines(vcard: LiveCard) -> None:
    cmd = [sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", str(vcard.stack.paths.root)]
    proc = subprocess.Popen([*cmd, "trace", "--follow", "--json"], stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        deadline = time.monotonic() + 20
        select = None
        while select is None and time.monotonic() < deadline:
            vcard.transmit(SELECT_PIV)  # again until the follower (slow to start on a busy machine) shows one
            with contextlib.suppress(queue.Empty):
                while True:
                    event = json.loads(lines.get(timeout=0.5))
                    if event.get("ins_name") == "SELECT":
                        select = event
                        break
        assert select is not None, "no SELECT streamed within 20 s"
        assert select["event"] == "apdu" and select["sw"] == 0x9000 and select["applet"] == "piv"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_stalled_subscriber_is_dropped_and_the_card_keeps_answering(vcard: LiveCard) -> None:
    """A subscriber that reads nothing never slows the card: its queue fills, it is dropped with a note."""
    stream = vcard.stack.subscribe(0)
    try:
        conn = vcard.connect()
        try:
            conn.transmit(list(SELECT_PIV))
            start = time.monotonic()
            for _ in range(3000):  # more events than a subscriber buffer (4096) and its socket hold
                conn.transmit(list(GET_CHUID))
                conn.transmit(list(GET_CHUID))
            elapsed = time.monotonic() - start
        finally:
            conn.release()
        events = []
        while (event := stream.next_event(timeout=10)) is not None:
            events.append(event)
        # dropped: with a note when its buffer overflowed first, or when its socket stayed full for 5 s
        assert "was dropped" in vcard.stack.paths.daemon_log.read_text()
        assert events[-1].event != "note" or "dropped" in events[-1].text
        assert len(events) < 2 * 3000  # the stream ended before all events: the subscriber was cut off
        assert elapsed < 60  # the card was never held up by the stalled reader
    finally:
        stream.close()


def test_reset_is_seen_by_pcscd_and_traced(vcard: LiveCard) -> None:
    conn = vcard.connect()
    try:
        conn.transmit(list(SELECT_PIV))
        vcard.reset()
        from smartcard.Exceptions import CardConnectionException

        with pytest.raises(CardConnectionException):  # the other handle learns of the reset
            conn.transmit(list(GET_CHUID))
    finally:
        conn.release()
    assert any(isinstance(e, CardEvent) and e.kind == "reset" for e in vcard.trace())


def test_control_messages_are_strict(vcard: LiveCard) -> None:
    reply = vcard.stack.client.request("ping")
    assert reply["ok"] and reply["pid"] > 0
    assert vcard.stack.client.call(messages.Ping()).pid == reply["pid"]  # typed
    for raw, needle in [
        ({"v": 1, "op": "insert", "slot": "0"}, "field 'slot' of request 'insert' must be an integer"),
        ({"v": 1, "op": "insert", "slto": 0}, "unknown field 'slto'"),
        ({"op": "ping"}, "no protocol version"),
        ({"v": 2, "op": "ping"}, "protocol version 2"),
        ({"v": 1, "op": "nope"}, "unknown operation 'nope'"),
    ]:
        answer = _raw(vcard, raw)
        assert answer["ok"] is False and needle in answer["error"], answer


def _raw(card: LiveCard, message: dict) -> dict:
    import socket

    from emulator.control.protocol import recv_message, send_message

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(card.stack.paths.control_socket))
        send_message(sock, message)
        reply = recv_message(sock, bytearray())
    assert reply is not None
    return reply


def test_failing_test_report_shows_the_trace(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """The plugin adds a 'vcard trace' section to a failing test's report."""
    pytester.makepyfile(
        """
        def test_fails(vcard):
            conn = vcard.connect()
            conn.transmit(list(bytes.fromhex("00A4040009A00000030800001000")))
            conn.transmit(list(bytes.fromhex("0020008008313233343536FFFF")))
            conn.release()
            assert False, "on purpose"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "vcard trace (slot 0, secrets redacted)" in out
    assert "VERIFY" in out and "[8 bytes redacted]" in out and "313233343536" not in out.split("vcard trace")[1]


def test_trace_overhead_is_small_enough_to_leave_on(vcard: LiveCard) -> None:
    """Not a benchmark (bench/bench_trace.py is): only that a subscriber does not break round trips."""
    stream = vcard.stack.subscribe(0)
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(stream), daemon=True)
    reader.start()
    try:
        conn = vcard.connect()
        try:
            for _ in range(20):
                assert conn.transmit(list(SELECT_PIV))[1:] == (0x90, 0x00)
        finally:
            conn.release()
        deadline = time.monotonic() + 5
        while len([e for e in got if isinstance(e, ApduEvent)]) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len([e for e in got if isinstance(e, ApduEvent)]) >= 20
    finally:
        stream.close()
