"""The CLI's argument parsing, sans-I/O: every mistake is exit 2 and one line, before anything is done.

The runtime directory of every test is an empty ``tmp_path``: a command that got past parsing
would answer "the daemon is not running" (exit 1), so exit 2 proves the refusal came first.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from emulator.control.client import cli, cli_args
from emulator.control.client.api import VCard
from emulator.profile import ProfileError


def vcard(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str]:
    code = cli.main(["--runtime-dir", str(tmp_path / "run"), *args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.err


def one_usage_line(code: int, err: str) -> str:
    assert code == cli.Exit.USAGE, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vcard: "), err
    return lines[0]


# -- --timeout -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e300", "-1", "0", "3601", "abc", ""])
@pytest.mark.parametrize("command", ["insert", "remove"])
def test_bad_timeout_is_a_usage_error_before_acting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, text: str
) -> None:
    line = one_usage_line(*vcard(capsys, tmp_path, command, "--wait", f"--timeout={text}"))
    assert f"--timeout must be seconds, more than 0 and at most 3600 (e.g. 5 or 0.5), got {text!r}" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("text", "value"), [("5", 5.0), ("0.5", 0.5), ("3600", 3600.0), ("1e-3", 0.001)])
def test_good_timeouts(text: str, value: float) -> None:
    assert cli_args.timeout(text) == value


def test_api_refuses_a_timeout_that_is_no_duration(tmp_path: Path) -> None:
    vc = VCard(tmp_path / "run")
    for bad in (math.nan, math.inf, -1.0, 0.0):
        with pytest.raises(ValueError, match="timeout must be a finite number of seconds above 0"):
            vc.insert(wait=True, timeout=bad)  # before the daemon is asked (it is not even running)
        with pytest.raises(ValueError, match="timeout must be"):
            vc.remove(wait=True, timeout=bad)


# -- --slot: one type for every subcommand -------------------------------------------------------
SLOT_COMMANDS = [["insert"], ["remove"], ["keys", "list"], ["keys", "delete", "--kvn", "1"], ["keys", "put"]]


@pytest.mark.parametrize("text", ["2", "99", "0x10", "abc", "-1", "1.0", " 1", "", "\u0661"])
@pytest.mark.parametrize("command", SLOT_COMMANDS, ids=" ".join)
def test_bad_slot_is_exit_2_naming_the_valid_slots(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str], text: str
) -> None:
    line = one_usage_line(*vcard(capsys, tmp_path, *command, "--slot", text))
    assert "--slot must be" in line and "0 or 1" in line
    assert "argument --slot: --slot" not in line  # said once


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("1", 1), ("00", 0)])
def test_good_slots(text: str, value: int) -> None:
    assert cli_args.slot(text) == value


def _actions(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """Every option of every (sub)command, with the command's prog."""
    found: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _actions(sub)
        else:
            found.append((parser.prog, action))
    return found


def test_every_slot_and_timeout_option_uses_the_shared_type() -> None:
    actions = _actions(cli.build_parser())
    slots = {prog: a for prog, a in actions if a.dest == "slot"}
    assert set(slots) >= {"vcard insert", "vcard remove", "vcard keys list", "vcard keys put", "vcard keys delete"}
    assert set(slots) >= {"vcard trace", "vcard fault add", "vcard fault list", "vcard fault clear"}
    # None: every slot (trace, fault list/clear)
    assert all(a.type is cli_args.slot and a.default in (0, None) for a in slots.values())
    timeouts = [a for _, a in actions if a.dest == "timeout"]
    assert len(timeouts) == 2 and all(a.type is cli_args.timeout for a in timeouts)


# -- directories ---------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["--runtime-dir", "--state-dir"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_file_as_a_directory_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, where: str
) -> None:
    args = [option, "/etc/passwd", "status"] if where == "before" else ["status", option, "/etc/passwd"]
    code = cli.main(args)
    line = one_usage_line(code, capsys.readouterr().err)
    assert f"{option} /etc/passwd is not a directory" in line
    code = cli.main([option, "/etc/passwd/sub", "status"])
    assert "goes through /etc/passwd, which is not a directory" in one_usage_line(code, capsys.readouterr().err)


def test_directories_are_made_absolute_and_may_not_exist_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_args.directory("--state-dir")("new/cards") == tmp_path / "new" / "cards"
    with pytest.raises(argparse.ArgumentTypeError, match="empty"):
        cli_args.directory("--state-dir")("")


def test_global_options_are_accepted_after_the_subcommand(tmp_path: Path) -> None:
    parser = cli.build_parser()
    after = parser.parse_args(["insert", "--state-dir", str(tmp_path), "-v", "--slot", "1"])
    before = parser.parse_args(["-v", "--state-dir", str(tmp_path), "insert", "--slot", "1"])
    assert vars(after) == vars(before)
    assert after.state_dir == tmp_path and after.verbose and after.slot == 1
    plain = parser.parse_args(["keys", "list"])
    assert plain.state_dir is None and plain.runtime_dir is None and not plain.verbose and plain.slot == 0
    assert parser.parse_args(["keys", "list", "--state-dir", str(tmp_path)]).state_dir == tmp_path


# -- profiles: checked before the daemon is asked -------------------------------------------------
def test_a_bad_profile_is_exit_2_before_the_daemon_is_asked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    card = tmp_path / "card.toml"
    card.write_text('atr = "3B00"\n[piv]\npin_retries = "3"\n')
    line = one_usage_line(*vcard(capsys, tmp_path, "insert", "--profile", str(card)))
    assert line == f"vcard: {card}: [piv] pin_retries must be an integer, got the string '3'"
    line = one_usage_line(*vcard(capsys, tmp_path, "insert", "--profile", "nosuch"))
    assert "no built-in profile 'nosuch'" in line
    with pytest.raises(ProfileError):
        VCard(tmp_path / "run").insert(profile=str(card))


def test_a_fifo_profile_is_refused_by_the_client(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "card.toml"
    os.mkfifo(fifo)
    line = one_usage_line(*vcard(capsys, tmp_path, "insert", "--profile", str(fifo)))
    assert line == f"vcard: cannot read profile {fifo}: it is a FIFO, not a regular file"


# -- the exit codes: one table -------------------------------------------------------------------
def test_one_table_of_exit_codes_documented_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    assert [int(c) for c in cli.Exit] == [0, 1, 2, 70]
    assert set(cli.EXIT_CODES) == set(cli.Exit)
    doc = cli.__doc__ or ""
    for code in cli.Exit:
        assert f"\n{int(code):<4}  " in doc
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for code, text in cli.EXIT_CODES.items():
        assert f"{int(code):<3} {text}" in out


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["insrt"],
        ["insert", "--slot"],
        ["insert", "--bogus"],
        ["keys"],
        ["keys", "lst"],
        ["up", "x"],
    ],
)
def test_careless_commands_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str]
) -> None:
    one_usage_line(*vcard(capsys, tmp_path, *args))


# -- key files: bounded regular files, like profiles ----------------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "/dev/null", "directory", "oversized"])
@pytest.mark.parametrize("option", ["--auth-keys-file", "--keys-file"])
def test_key_files_must_be_small_regular_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, kind: str
) -> None:
    import os
    import threading

    from emulator.control.client.cli_keys import MAX_KEYS_FILE

    path = tmp_path / "keys.toml"
    writer = None
    if kind == "fifo":
        os.mkfifo(path)
        writer = threading.Thread(target=lambda: os.close(os.open(path, os.O_WRONLY)), daemon=True)
        writer.start()  # frees a reader stuck in open() (the old code), so the test cannot hang
    elif kind == "directory":
        path.mkdir()
    elif kind == "oversized":
        path.write_text("#" * MAX_KEYS_FILE + '\nkey = "' + "40" * 16 + '"\n')
    else:
        path = Path(kind)
    command = ["keys", "list", option, str(path)] if option == "--auth-keys-file" else ["keys", "put", "--kvn", "1"]
    if option == "--keys-file":
        command += [option, str(path)]
    try:
        line = one_usage_line(*vcard(capsys, tmp_path, *command))
    finally:
        if writer is not None:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            writer.join(timeout=10)
    reason = {
        "fifo": "it is a FIFO, not a regular file",
        "/dev/null": "it is a character device, not a regular file",
        "directory": "it is a directory, not a regular file",
        "oversized": "larger than 64 KiB",
    }[kind]
    assert line == f"vcard: {option}: cannot read {path}: {reason}"
