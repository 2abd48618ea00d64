"""The CLI as a careless user drives it, against the real stack (issue 8, defects 3 and 7).

Every mistake is one line on stderr, exit 2 (usage) or 1 (operational), never a traceback or
exit 70, and nothing is done: no card inserted or removed, no state file written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path

import pytest

from emulator.control.client.api import VCard
from emulator.control.client.client import RequestFailed
from emulator.pytest_plugin import LiveCard

pytestmark = pytest.mark.e2e


def cli(vcard: LiveCard, *args: str, before: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    base = [sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", str(vcard.stack.paths.root), *before]
    return subprocess.run([*base, *args], env=vcard.env, capture_output=True, text=True, timeout=60)


def one_line(out: subprocess.CompletedProcess[str], code: int) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vcard: "), out.stderr
    return lines[0]


def profile_text(state: Path, **lines_: str) -> str:
    """The default profile with its state at ``state``; each line starting with a key is replaced by its value."""
    text = resources.files("emulator.profiles").joinpath("default.toml").read_text()
    lines = [f'state_file = "{state}"' if line.startswith("state_file") else line for line in text.splitlines()]
    for start, new in lines_.items():
        lines = [new if line.startswith(start) else line for line in lines]
    return "\n".join(lines) + "\n"


def slots(vcard: LiveCard) -> list[tuple[bool, str | None]]:
    return [(s.present, s.profile) for s in vcard.stack.status().slots]


# -- defect 7: --timeout ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "1e300", "-1"])
def test_bad_timeout_refused_before_the_card_moves(vcard: LiveCard, value: str) -> None:
    before = slots(vcard)
    line = one_line(cli(vcard, "remove", "--wait", f"--timeout={value}"), 2)
    assert "--timeout must be seconds" in line and repr(value) in line
    assert slots(vcard) == before  # the card is still in: nothing was done


# -- defect 7: --runtime-dir -----------------------------------------------------------------------
@pytest.mark.parametrize("command", ["status", "up", "down", "insert", "doctor"])
def test_runtime_dir_that_is_a_file_is_one_line_exit_2(vcard: LiveCard, command: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", "/etc/passwd", command],
        env=vcard.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert one_line(out, 2) == "vcard: --runtime-dir /etc/passwd is not a directory (see: vcard --help)"


# -- defect 7: --slot, one type everywhere -------------------------------------------------------
@pytest.mark.parametrize("value", ["2", "99", "0x10", "abc"])
@pytest.mark.parametrize("command", [["insert"], ["remove"], ["keys", "list"]], ids=" ".join)
def test_bad_slot_is_exit_2_naming_the_slots(vcard: LiveCard, command: list[str], value: str) -> None:
    before = slots(vcard)
    line = one_line(cli(vcard, *command, "--slot", value), 2)
    assert "--slot must be" in line and "0 or 1" in line
    assert slots(vcard) == before


# -- defect 7: up --profile on a running stack ----------------------------------------------------
def test_up_with_a_missing_profile_on_a_running_stack_is_an_error(vcard: LiveCard) -> None:
    line = one_line(cli(vcard, "up", "--private", "--profile", "nosuch"), 2)
    assert "no built-in profile 'nosuch'" in line
    line = one_line(cli(vcard, "up", "--private", "--profile", "/nonexistent/card.toml"), 2)
    assert "cannot read profile /nonexistent/card.toml" in line


def test_up_with_another_profile_on_a_running_stack_says_what_to_do(vcard: LiveCard, tmp_path: Path) -> None:
    other = tmp_path / "blue.toml"
    other.write_text(profile_text(tmp_path / "blue.sqlite", **{"name =": 'name = "blue"'}))
    line = one_line(cli(vcard, "up", "--private", "--profile", str(other)), 1)
    assert "slot 0 holds a card from profile default" in line and f"vcard insert --slot 0 --profile {other}" in line
    assert slots(vcard)[0] == (True, "default")
    same = cli(vcard, "up", "--private", "--profile", vcard.profile)  # the card that is in: nothing to say
    assert same.returncode == 0, same.stderr
    vcard.remove(wait=True)
    used = cli(vcard, "up", "--private", "--profile", str(other))  # slot 0 empty: the profile is used
    assert used.returncode == 0, used.stderr
    assert slots(vcard)[0] == (True, "blue")
    assert (tmp_path / "blue.sqlite").exists()


# -- defect 7: --state-dir with a running daemon is honoured ---------------------------------------
@pytest.mark.parametrize("where", ["before", "after"])
def test_state_dir_is_honoured_by_insert_on_a_running_daemon(vcard: LiveCard, tmp_path: Path, where: str) -> None:
    state = tmp_path / "elsewhere"
    option = ("--state-dir", str(state))
    args = ("insert", "--slot", "1", "--profile", "default", "--wait")
    out = cli(vcard, *args, before=option) if where == "before" else cli(vcard, *args, *option)
    try:
        assert out.returncode == 0, out.stderr
        assert f"state {state / 'default.sqlite'}" in out.stdout
        assert (state / "default.sqlite").exists()
        assert vcard.stack.status().slots[1].state_file == str(state / "default.sqlite")
    finally:
        vcard.stack.remove(1, wait=True)


# -- defect 3: a typo'd or wrong-typed profile writes nothing -------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"management_key =": f'managment_key = "{"00" * 24}"'},
            "unknown key 'managment_key' in [piv] (did you mean 'management_key'?)",
        ),
        ({"pin_retries = 3": 'pin_retries = "3"'}, "[piv] pin_retries must be an integer, got the string '3'"),
        ({'scp = "03"': 'scp = "07"'}, "[isd] scp must be one of '02', '03', got '07'"),
    ],
)
def test_bad_profile_is_one_line_naming_file_and_field_and_writes_nothing(
    vcard: LiveCard, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    state = tmp_path / "typo.sqlite"
    path = tmp_path / "typo.toml"
    path.write_text(profile_text(state, **change))
    line = one_line(cli(vcard, "insert", "--slot", "1", "--profile", str(path)), 2)
    assert line == f"vcard: {path}: {message}"
    assert not state.exists() and not Path(f"{state}-wal").exists()
    assert vcard.stack.status().slots[1].present is False


def test_the_daemon_refuses_a_bad_profile_before_writing_too(vcard: LiveCard, tmp_path: Path) -> None:
    """A client that skips the CLI's check (the raw control socket) gets the same answer."""
    state = tmp_path / "raw.sqlite"
    path = tmp_path / "raw.toml"
    path.write_text(profile_text(state, **{"pin_retries = 3": "pin_retires = 3"}))
    with pytest.raises(RequestFailed, match=r"unknown key 'pin_retires' in \[piv\]"):
        vcard.stack.client.request("insert", slot=1, profile=str(path))
    assert not state.exists()


# -- defect 7: a FIFO or a device as the profile never blocks the daemon ---------------------------
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_special_files_are_refused_and_the_daemon_keeps_serving(vcard: LiveCard, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "fifo.toml"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path = Path(kind)
    writer = threading.Thread(target=lambda: os.close(os.open(path, os.O_WRONLY)), daemon=True)
    if kind == "fifo":
        writer.start()  # frees a reader stuck in open() (what the old daemon did), so the test cannot hang
    try:
        line = one_line(cli(vcard, "insert", "--slot", "1", "--profile", str(path)), 2)
        assert "not a regular file" in line
        with pytest.raises(RequestFailed, match="not a regular file"):  # straight to the daemon
            vcard.stack.client.request("insert", slot=1, profile=str(path))
        assert vcard.stack.status().running
    finally:
        if kind == "fifo":
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            writer.join(timeout=10)


# -- the careless user: no traceback, no exit 70, anywhere ---------------------------------------
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["insert"], 1),  # slot 0 holds a card
        (["remove", "--slot", "1"], 1),  # already empty
        (["insert", "--slot", "1", "--profile", "/etc"], 2),
        (["insert", "--slot", "1", "--profile", "/etc/passwd"], 2),
        (["keys", "list", "--slot", "1"], 1),  # no card in slot 1
        (["keys", "delete", "--kvn", "zz"], 2),
        (["keys", "put", "--kvn", "1"], 2),
        (["status", "--bogus"], 2),
        (["insrt"], 2),
    ],
)
def test_careless_commands_get_one_line(vcard: LiveCard, args: list[str], code: int) -> None:
    one_line(cli(vcard, *args), code)


def test_api_checks_the_profile_before_asking_the_daemon(vcard_stack: VCard, tmp_path: Path) -> None:
    from emulator.profile import ProfileError

    path = tmp_path / "bad.toml"
    path.write_text('atr = "3B00"\nlogical_channels = 4.0\n')
    with pytest.raises(ProfileError, match=r"logical_channels must be an integer, got the float 4\.0"):
        vcard_stack.insert(1, profile=str(path))
    with pytest.raises(ProfileError, match="no built-in profile"):
        vcard_stack.up(private=True, profile="nosuch")


def test_up_says_when_trace_cannot_apply(vcard: LiveCard) -> None:
    out = cli(vcard, "up", "--private", "--trace")
    assert out.returncode == 0, out.stderr
    assert "--trace applies when it starts" in out.stderr
