"""`vcard demo --script` end to end: the app locks when pcscd reports the card pulled, unlocks again after.

The demo runs as a user runs it (a subprocess, no terminal: plain event lines);
a second PC/SC client (watch_events.py) watches the same reader, so the test
can check the app locked at the moment pcscd reported the removal to everyone.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.control.client.api import VCard

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
POLL = 0.4  #: pcscd's presence poll (PCSCLITE_STATUS_POLL_RATE)


def vcard_cli(runtime: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", str(runtime), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def events(stdout: str) -> list[tuple[float, str, str]]:
    """The transcript: (seconds, kind, text) per event line."""
    out = []
    for line in stdout.splitlines():
        m = re.match(r"^\s*(\d+\.\d{3})  (\S+)\s+(.*)$", line)
        if m:
            out.append((float(m[1]), m[2], m[3]))
    return out


def index(evs: list[tuple[float, str, str]], kind: str, start: str, after: int = -1) -> int:
    for i, (_, k, text) in enumerate(evs):
        if i > after and k == kind and text.startswith(start):
            return i
    raise AssertionError(f"no {kind} event {start!r} after #{after} in {evs}")


def test_script_locks_on_removal_and_unlocks_after_reinsert(vcard_stack: VCard) -> None:
    slot = 1
    for s in vcard_stack.status().slots:  # an earlier test may have left a card behind
        if s.present:
            vcard_stack.remove(s.slot, wait=True)
    vcard_stack.up(private=True, insert=False)
    reader = vcard_stack.reader_name(slot)
    watcher = subprocess.Popen(
        [sys.executable, str(HERE / "watch_events.py"), reader, "2"],
        env=vcard_stack.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith("ready absent")
        run = vcard_cli(
            vcard_stack.paths.root, "demo", "--script", "--pace", "0", "--slot", str(slot), env=vcard_stack.env
        )
        seen, _ = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
    assert run.returncode == 0, (run.stdout, run.stderr)
    evs = events(run.stdout)
    # insert -> PIN -> unlocked (the 9A signature verified with the certificate's key)
    first_pin = index(evs, "state", "PIN_REQUIRED")
    unlocked = index(evs, "state", "UNLOCKED", first_pin)
    assert evs[unlocked - 1][2].startswith("challenge signed by the 9A key and verified")
    # pulled while the signature loop ran: the loop ends because the session locked
    loop = index(evs, "info", "signature loop started", unlocked)
    pull = index(evs, "script", "pulling the card now", loop)
    assert sum(1 for _, k, t in evs[loop:pull] if k == "sign" and t.endswith("ms)") and "verified" in t) >= 3
    removed = index(evs, "card", f"pcscd: card removed in {reader}", pull)
    locked = index(evs, "state", "LOCKED", pull)
    assert removed < locked
    assert "pcscd reported the card removed" in evs[locked][2]  # the watcher locked it, not a failed transmit
    index(evs, "info", "signature loop ended", pull)  # by the lock, or by a transmit the pull failed first
    assert not any(k == "state" and t.startswith("UNLOCKED") for _, k, t in evs[pull:locked])
    # re-inserted: the same card asks for the PIN again and unlocks
    again = index(evs, "state", "PIN_REQUIRED", locked)
    unlocked2 = index(evs, "state", "UNLOCKED", again)
    index(evs, "sign", "signature", unlocked2)
    # the app locked when pcscd reported the removal to another client, not a poll later
    absent = [float(line.split()[1]) for line in seen.splitlines() if line.startswith("absent")]
    assert absent, seen
    locked_at = float(re.search(r"locked_monotonic=(\d+\.\d+)", run.stdout)[1])  # type: ignore[index]
    latency = float(re.search(r"lock_latency_s=(\d+\.\d+)", run.stdout)[1])  # type: ignore[index]
    print(f"lock latency from the pull: {latency:.3f} s; after the other client saw it: {locked_at - absent[0]:+.3f} s")
    assert abs(locked_at - absent[0]) < POLL
    assert not vcard_stack.status().slots[slot].present  # the demo took its card out again


def test_script_starts_and_stops_its_own_stack(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    run = vcard_cli(runtime, "--state-dir", str(tmp_path / "state"), "demo", "--script", "--pace", "0")
    if run.returncode == 1 and "namespace" in run.stderr:
        from emulator.pytest_plugin import fail_or_skip

        fail_or_skip(f"cannot start a private stack: {run.stderr.strip()}")
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert "demo: summary: inserted, unlocked, pulled mid-signature, locked, re-inserted, unlocked again" in run.stdout
    after = vcard_cli(runtime, "status")
    assert after.returncode == 1 and "daemon: not running" in after.stdout  # it stopped what it started
    assert not (runtime / "stack.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo", "--script", "--reader", "Some Reader"), "--reader is for the interactive demo"),
        (("demo",), "the interactive demo needs a terminal"),
        (("demo", "--script", "--pace", "-1"), "--pace must be seconds"),
    ],
)
def test_demo_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    run = vcard_cli(tmp_path / "run", *args)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
