"""`vcard status --json` against the real stack, and its exit codes (0 running, 1 not)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.pytest_plugin import LiveCard

pytestmark = pytest.mark.e2e


def status_json(runtime: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    cmd = [sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", str(runtime), "status", "--json"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.stderr == "", out.stderr
    return out.returncode, json.loads(out.stdout)


def test_status_json_of_a_running_stack(vcard: LiveCard) -> None:
    code, doc = status_json(vcard.stack.paths.root, vcard.env)
    assert code == 0
    assert doc["schema"] == 1 and doc["running"] is True
    assert doc["runtime_dir"] == str(vcard.stack.paths.root)
    daemon = doc["daemon"]
    assert isinstance(daemon, dict) and daemon["pid"] == vcard.stack.status().daemon_pid
    pcscd = doc["pcscd"]
    assert isinstance(pcscd, dict) and pcscd["alive"] is True and pcscd["owned"] is True
    assert pcscd["mode"] in ("netns", "host")
    slots = doc["slots"]
    assert isinstance(slots, list) and [s["slot"] for s in slots] == [0, 1]
    card = slots[0]
    assert card["present"] is True and card["reader"] == vcard.reader and card["vpcd_connected"] is True
    assert card["state_file"] == vcard.stack.status().slots[0].state_file
    vcard.remove(wait=True)
    code, doc = status_json(vcard.stack.paths.root, vcard.env)
    assert code == 0 and doc["slots"][0]["present"] is False  # type: ignore[index]


def test_status_json_when_nothing_runs(tmp_path: Path) -> None:
    code, doc = status_json(tmp_path / "run")
    assert code == 1
    assert doc == {
        "schema": 1,
        "runtime_dir": str(tmp_path / "run"),
        "running": False,
        "daemon": None,
        "pcscd": None,
        "slots": [],
    }
