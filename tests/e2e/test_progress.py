"""Progress of long steps: on stderr when it is a terminal, never with --quiet, never in a pipe."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emulator.control.client.api import VCard

pytestmark = pytest.mark.e2e


def insert_slot1(stack: VCard, *extra: str, tty: bool) -> tuple[int, str]:
    """`vcard insert --slot 1 --wait` with stderr on a pseudo-terminal (or a pipe); the card is pulled after."""
    cmd = [sys.executable, "-m", "emulator.control.client.cli", "--runtime-dir", str(stack.paths.root)]
    cmd += ["insert", "--slot", "1", "--wait", *extra]
    if tty:
        primary, secondary = os.openpty()
        try:
            run = subprocess.run(cmd, env=stack.env, stdout=subprocess.PIPE, stderr=secondary, timeout=60)
            os.close(secondary)
            secondary = -1
            err = b""
            while True:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # EIO: the terminal's other end is closed
                    break
                if not chunk:
                    break
                err += chunk
        finally:
            os.close(primary)
            if secondary != -1:
                os.close(secondary)
        text = err.decode()
    else:
        done = subprocess.run(cmd, env=stack.env, capture_output=True, text=True, timeout=60)
        run, text = done, done.stderr
    stack.remove(1, wait=True)
    return run.returncode, text


def test_progress_on_a_terminal_only(vcard_stack: VCard) -> None:
    if vcard_stack.status().slots[1].present:
        vcard_stack.remove(1, wait=True)
    code, err = insert_slot1(vcard_stack, tty=True)
    assert code == 0 and "waiting for pcscd to report the card in slot 1 ..." in err
    code, err = insert_slot1(vcard_stack, "--quiet", tty=True)
    assert code == 0 and err == ""
    code, err = insert_slot1(vcard_stack, tty=False)
    assert code == 0 and err == ""
