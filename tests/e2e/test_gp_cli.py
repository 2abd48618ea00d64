"""`vcard keys list|put|delete` and the registry in `vcard status`, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from gp_e2e import connected, open_session

from emulator.control.client.api import VCard
from emulator.pytest_plugin import LiveCard
from minidriver.scp import StaticKeys

pytestmark = pytest.mark.e2e

VCARD = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "vcard")
NEW = {"enc": "11" * 16, "mac": "22" * 16, "dek": "33" * 16}


def run(stack: VCard, card: LiveCard, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [VCARD, "--runtime-dir", str(stack.paths.root), "--state-dir", str(stack.state_dir), *args]
    return subprocess.run(cmd, env=card.env, capture_output=True, text=True, timeout=60, check=False)


def no_keys_in(result: subprocess.CompletedProcess[str], *keys: str) -> None:
    for key in ("404142434445464748494a4b4c4d4e4f", *keys):
        assert key.lower() not in (result.stdout + result.stderr).lower()


def test_keys_list_shows_the_factory_key_set(vcard_stack: VCard, vcard: LiveCard) -> None:
    result = run(vcard_stack, vcard, "keys", "list")
    assert result.returncode == 0, result.stderr
    assert "SCP03 level 33, key set 0xFF" in result.stdout
    assert "key set 0xFF: SCP03 AES-128, keys 01 ENC, 02 MAC, 03 DEK" in result.stdout
    no_keys_in(result)


def test_keys_put_rotates_then_list_needs_the_new_keys(vcard_stack: VCard, vcard: LiveCard) -> None:
    put = run(
        vcard_stack,
        vcard,
        "keys",
        "put",
        "--kvn",
        "0x01",
        "--enc",
        NEW["enc"],
        "--mac",
        NEW["mac"],
        "--dek",
        NEW["dek"],
    )
    assert put.returncode == 0, put.stderr
    assert "added key set 0x01" in put.stdout and "key set 0x01: SCP03 AES-128" in put.stdout
    assert "0xFF" not in put.stdout.split("\n", 1)[1]  # the factory set is retired
    no_keys_in(put, *NEW.values())

    old = run(vcard_stack, vcard, "keys", "list")
    assert old.returncode == 1
    assert old.stderr.count("\n") == 1 and "card cryptogram mismatch" in old.stderr and "--auth-key" in old.stderr

    listed = run(
        vcard_stack,
        vcard,
        "keys",
        "list",
        "--auth-kvn",
        "1",
        "--auth-enc",
        NEW["enc"],
        "--auth-mac",
        NEW["mac"],
        "--auth-dek",
        NEW["dek"],
    )
    assert listed.returncode == 0, listed.stderr
    assert "key set 0x01" in listed.stdout
    no_keys_in(listed, *NEW.values())

    status = run(vcard_stack, vcard, "status")
    assert status.returncode == 0, status.stderr
    assert "slot 0 registry: needs issuer keys (vcard keys list --auth-key ...)" in status.stdout


def test_keys_files_replace_and_delete(vcard_stack: VCard, vcard: LiveCard, tmp_path: Path) -> None:
    first = tmp_path / "first.toml"
    first.write_text('kvn = 0x10\nenc = "{enc}"\nmac = "{mac}"\ndek = "{dek}"\n'.format(**NEW))
    first.chmod(0o600)
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"key": "44" * 32}))
    second.chmod(0o600)

    assert run(vcard_stack, vcard, "keys", "put", "--keys-file", str(first)).returncode == 0
    replaced = run(
        vcard_stack,
        vcard,
        "keys",
        "put",
        "--kvn",
        "0x11",
        "--replace",
        "0x10",
        "--keys-file",
        str(second),
        "--auth-keys-file",
        str(first),
        "--auth-kvn",
        "0x10",
    )
    assert replaced.returncode == 0, replaced.stderr
    assert "replaced key set 0x10 with key set 0x11" in replaced.stdout
    assert "key set 0x11: SCP03 AES-256" in replaced.stdout
    no_keys_in(replaced, *NEW.values(), "44" * 32)

    auth = ("--auth-keys-file", str(second))
    assert run(vcard_stack, vcard, "keys", "put", "--kvn", "0x12", "--keys-file", str(first), *auth).returncode == 0
    deleted = run(vcard_stack, vcard, "keys", "delete", "--kvn", "0x12", *auth)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted key set 0x12" in deleted.stdout and "0x12:" not in deleted.stdout

    missing = run(vcard_stack, vcard, "keys", "delete", "--kvn", "0x12", *auth)
    assert (missing.returncode, missing.stderr) == (
        1,
        "vcard: DELETE: the card has no key set 12: SW 6A88 (REFERENCED_DATA_NOT_FOUND)\n",
    )

    # the card agrees, seen through the library
    keys = StaticKeys.same(bytes.fromhex("44" * 32), kvn=0x11)
    with connected(vcard) as transport:
        assert {k.kvn for k in open_session(transport, keys=keys, kvn=0x11).key_information() if k.kid < 0x10} == {0x11}


def test_status_shows_the_registry_with_factory_keys(vcard_stack: VCard, vcard: LiveCard) -> None:
    result = run(vcard_stack, vcard, "status")
    assert result.returncode == 0, result.stderr
    assert "slot 0 registry: ISD A000000151000000: card SECURED, privileges 9AFE80" in result.stdout
    assert "slot 0 registry: application A000000308000010000100: SELECTABLE" in result.stdout
    assert "slot 0 registry: load file A000000308: LOADED version 1.0, modules A00000030800001000" in result.stdout


def test_status_works_without_a_card(vcard_stack: VCard, vcard: LiveCard) -> None:
    vcard.remove(wait=True)
    result = run(vcard_stack, vcard, "status")
    assert result.returncode == 0, result.stderr
    assert "registry" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["put", "--kvn", "0x80", "--enc", "11" * 16, "--mac", "11" * 16, "--dek", "11" * 16],
            "--kvn must be 0x01-0x7F, got 0x80",
        ),
        (
            ["put", "--kvn", "0x01", "--enc", "11" * 15, "--mac", "11" * 16, "--dek", "11" * 16],
            "--enc must be 16, 24 or 32 bytes",
        ),
        (
            ["put", "--kvn", "0x01", "--enc", "zz" * 16, "--mac", "11" * 16, "--dek", "11" * 16],
            "--enc must be hex digits",
        ),
        (["put", "--kvn", "0x01", "--enc", "11" * 16], "the new key set needs --enc, --mac and --dek"),
        (["put", "--enc", "11" * 16, "--mac", "11" * 16, "--dek", "11" * 16], "--kvn is required"),
        (["put", "--kvn", "1", "--keys-file", "/nonexistent.toml"], "--keys-file: cannot read /nonexistent.toml"),
        (["list", "--auth-key", "11" * 16, "--auth-enc", "11" * 16], "give the authentication keys one way"),
        (["list", "--level", "00"], "--level must be one of 01 03 11 13 33, got 00"),
        (["delete", "--kvn", "0x100"], "--kvn must be 0x01-0xFF, got 0x100"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2(
    vcard_stack: VCard, vcard: LiveCard, args: list[str], message: str
) -> None:
    result = run(vcard_stack, vcard, "keys", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("vcard: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "1111111111" not in result.stderr and "zzzz" not in result.stderr
    assert result.stdout == ""


def test_world_readable_keys_file_is_warned_about(vcard_stack: VCard, vcard: LiveCard, tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text('key = "404142434445464748494A4B4C4D4E4F"\n')
    os.chmod(path, 0o644)
    result = run(vcard_stack, vcard, "keys", "list", "--auth-keys-file", str(path))
    assert result.returncode == 0, result.stderr
    assert "readable by other users" in result.stderr
