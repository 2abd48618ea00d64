"""The foundation end to end: real pcscd + vpcd + daemon + pyscard and PC/SC tools."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulator.control.client import pcsc
from emulator.control.stack.pcscd import pid_alive, read_pid
from emulator.pytest_plugin import LiveCard

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
SELECT_ISD = "00A4040008A000000151000000"
DEFAULT_ATR = bytes.fromhex("3B8B0180730000C0657663617264BE")


def run(args: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def test_card_is_seen_by_pcsc_scan_and_opensc(vcard: LiveCard) -> None:
    scan = run(["pcsc_scan", "-c", "-n"], vcard.env)
    assert vcard.reader in scan.stdout
    block = scan.stdout.split(vcard.reader, 1)[1].split("Reader ", 1)[0]
    assert "Card inserted" in block
    assert "3B 8B 01 80 73 00 00 C0 65 76 63 61 72 64 BE" in block
    listing = run(["opensc-tool", "-l"], vcard.env)
    line = next(li for li in listing.stdout.splitlines() if vcard.reader in li)
    assert " Yes " in line
    atr = run(["opensc-tool", "-r", vcard.reader, "-a"], vcard.env)
    assert atr.stdout.strip().replace(":", "").upper() == DEFAULT_ATR.hex().upper()


def test_select_isd_and_get_data_through_pcscd(vcard: LiveCard) -> None:
    conn = vcard.connect()
    try:
        assert bytes(conn.getATR()) == DEFAULT_ATR
        data, sw1, sw2 = conn.transmit(list(bytes.fromhex(SELECT_ISD)))
        assert (sw1, sw2) == (0x90, 0x00)
        assert bytes(data[:12]) == bytes.fromhex("6F") + bytes([len(data) - 2]) + bytes.fromhex("8408A000000151000000")
        data, sw1, sw2 = conn.transmit([0x80, 0xCA, 0x9F, 0x7F, 0x00])
        assert (sw1, sw2) == (0x90, 0x00)
        assert bytes(data[:3]) == bytes.fromhex("9F7F2A") and len(data) == 45
        data, sw1, sw2 = conn.transmit([0x80, 0xCA, 0x00, 0x66, 0x00])
        assert (sw1, sw2) == (0x90, 0x00) and data[0] == 0x66
        _, sw1, sw2 = conn.transmit([0x80, 0xCA, 0x12, 0x34, 0x00])
        assert (sw1, sw2) == (0x6A, 0x88)
        _, sw1, sw2 = conn.transmit([0x80, 0x99, 0x00, 0x00])
        assert (sw1, sw2) == (0x6D, 0x00)
        _, sw1, sw2 = conn.transmit([0x00, 0xA4])
        assert (sw1, sw2) == (0x67, 0x00)
    finally:
        conn.release()


def test_remove_and_insert_are_observed_by_another_process(vcard: LiveCard) -> None:
    watcher = subprocess.Popen(
        [sys.executable, str(HERE / "watch_events.py"), vcard.reader, "2"],
        env=vcard.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split() == ["ready", "present"]
        t_remove = time.monotonic()
        vcard.remove(wait=False)
        t_insert_line = watcher.stdout.readline().split()
        assert t_insert_line[0] == "absent"
        vcard.insert(wait=False)
        line = watcher.stdout.readline().split()
        assert line[0] == "present"
        assert float(t_insert_line[1]) - t_remove < 2.0  # seen, not a timeout
    finally:
        watcher.wait(timeout=10)
    assert watcher.returncode == 0


def test_remove_wait_returns_when_pcscd_reports_it(vcard: LiveCard) -> None:
    vcard.remove(wait=True)
    assert not _present(vcard.reader)
    vcard.insert(wait=True)
    assert _present(vcard.reader)


def _present(reader: str) -> bool:
    return next(s.present for s in pcsc.reader_states() if s.name == reader)


def test_kill_9_of_the_daemon_leaves_pcscd_up_and_up_restores_the_card(vcard: LiveCard) -> None:
    stack = vcard.stack
    info = stack.stack
    assert info is not None and info.pcscd_pid is not None
    daemon = read_pid(stack.paths.daemon_pid)
    assert daemon is not None
    serial_before = vcard.transmit("80CA9F7F00")[13:17]
    os.kill(daemon, signal.SIGKILL)
    pcsc.wait_for_card(vcard.reader, present=False, timeout=5)  # applications see a pulled card
    assert pid_alive(info.pcscd_pid)
    assert vcard.reader in pcsc.list_readers()
    stack.up(private=True, insert=False)
    new_daemon = read_pid(stack.paths.daemon_pid)
    assert new_daemon not in (None, daemon)
    vcard.insert(wait=True)
    assert vcard.transmit("80CA9F7F00")[13:17] == serial_before  # same card state
    assert stack.stack is not None and stack.stack.pcscd_pid == info.pcscd_pid


def test_nothing_listens_on_a_non_loopback_address(vcard: LiveCard) -> None:
    info = vcard.stack.stack
    assert info is not None and info.pcscd_pid is not None
    host = run(["ss", "-ltnH"], vcard.env).stdout
    for line in host.splitlines():
        local = line.split()[3]
        assert not local.endswith((":35963", ":35964")), f"vpcd port open in the host namespace: {line}"
    if info.mode == "netns":
        ns = ["nsenter", f"--net=/proc/{info.pcscd_pid}/ns/net"]
        links = run([*ns, "ip", "-o", "link"], vcard.env).stdout.splitlines()
        assert [li.split(":")[1].strip() for li in links] == ["lo"]
    daemon_sockets = run(["ss", "-ltnpH"], vcard.env).stdout
    daemon = read_pid(vcard.stack.paths.daemon_pid)
    assert f"pid={daemon}," not in daemon_sockets
    mode = stat.S_IMODE(vcard.stack.paths.control_socket.stat().st_mode)
    assert mode == 0o600


def cli(vcard: LiveCard, *args: str) -> subprocess.CompletedProcess[str]:
    base = [sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", str(vcard.stack.paths.root)]
    return run([*base, *args], vcard.env)


def test_cli_insert_remove_status(vcard: LiveCard) -> None:
    out = cli(vcard, "remove", "--wait")
    assert out.returncode == 0 and "slot 0: card removed" in out.stdout
    status = cli(vcard, "status")
    assert status.returncode == 0
    assert f"slot 0: {vcard.reader}: empty" in status.stdout
    out = cli(vcard, "insert", "--profile", vcard.profile, "--wait")
    assert out.returncode == 0, out.stderr
    status = cli(vcard, "status")
    assert "card present" in status.stdout and "own network namespace" in status.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["insert", "--slot", "x"], "--slot must be a number"),
        (["frobnicate"], "invalid choice"),
        (["insert", "--slot", "7"], "--slot must be 0-1"),
        (["insert", "--slot", "1", "--profile", "/nonexistent/card.toml"], "cannot read profile"),
        (["insert", "--slot", "1", "--profile", "no-such-profile"], "no built-in profile"),
        (["remove", "--slot", "1"], "slot 1 is already empty"),
    ],
)
def test_cli_mistakes_get_one_line(vcard: LiveCard, args: list[str], needle: str) -> None:
    out = cli(vcard, *args)
    assert out.returncode in (1, 2)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vcard: ") and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_cli_without_daemon_says_what_to_do(tmp_path: Path, vcard: LiveCard) -> None:
    out = run([sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", str(tmp_path), "status"], vcard.env)
    assert out.returncode == 1
    assert "vcard up" in out.stdout + out.stderr


def test_doctor_is_happy_with_a_running_stack(vcard: LiveCard) -> None:
    out = cli(vcard, "doctor")
    assert out.returncode == 0, out.stdout
    assert "[FAIL]" not in out.stdout
    assert "daemon pid" in out.stdout


def test_fresh_insert_sets_old_state_aside(vcard: LiveCard) -> None:
    serial = vcard.transmit("80CA9F7F00")[13:17]
    vcard.remove(wait=True)
    reply = vcard.insert(fresh=True)
    assert reply["set_aside"] and Path(reply["set_aside"]).exists()
    assert vcard.transmit("80CA9F7F00")[13:17] != serial
