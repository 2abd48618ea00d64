"""Issue 12, card farms with pytest-xdist: each worker gets its own private stack from the plugin.

A small generated suite runs with ``-n 2`` in a subprocess. Every test
records, from inside its worker, which stack served its card: the stack's
directory, pcscd's socket, pid and network namespace, the daemon's pid. Each
worker must have had exactly one stack of its own, none shared with the other
worker, and every test must pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.pytest_plugin import fail_or_skip

pytestmark = pytest.mark.e2e

TESTS = 8

SUITE = """
import json
import os
from pathlib import Path

import pytest

SELECT_PIV = "00A4040009A00000030800001000"
OUT = Path(os.environ["FARM_OUT"])


@pytest.mark.parametrize("n", range({tests}))
def test_card(vcard, n):
    assert vcard.transmit(SELECT_PIV)[-2:] == b"\\x90\\x00"
    if n % 4 == 3:  # some tests pull the card: their worker's pcscd must see it, nobody else's
        vcard.remove(wait=True)
        assert not vcard.stack.status().slots[vcard.slot].present
        vcard.insert(wait=True)
        assert vcard.transmit(SELECT_PIV)[-2:] == b"\\x90\\x00"
    info = vcard.stack.stack
    record = {{
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
        "root": str(vcard.stack.paths.root),
        "socket": info.pcscd_socket,
        "client_socket": os.environ.get("PCSCLITE_CSOCK_NAME"),
        "pcscd": info.pcscd_pid,
        "netns": os.readlink(f"/proc/{{info.pcscd_pid}}/ns/net"),
        "daemon": vcard.stack.status().daemon_pid,
        "reader": vcard.reader,
    }}
    (OUT / f"{{n}}.json").write_text(json.dumps(record))
"""


def test_each_xdist_worker_gets_its_own_stack(tmp_path: Path) -> None:
    try:
        import xdist  # noqa: F401
    except ImportError:
        fail_or_skip("pytest-xdist is not installed (pip install -e '.[test]', or scripts/setup)")
    suite = tmp_path / "suite"
    out = tmp_path / "out"
    suite.mkdir()
    out.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "test_farm.py").write_text(SUITE.format(tests=TESTS))
    env = {k: v for k, v in os.environ.items() if k not in ("PCSCLITE_CSOCK_NAME", "PYTEST_XDIST_WORKER")}
    env["FARM_OUT"] = str(out)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "bt")],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{TESTS} passed" in run.stdout, run.stdout

    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert len(records) == TESTS
    workers: dict[str, list[dict[str, object]]] = {}
    for r in records:
        workers.setdefault(str(r["worker"]), []).append(r)
    assert sorted(workers) == ["gw0", "gw1"]
    stacks = {}
    for name, rs in workers.items():
        (stack,) = {(r["root"], r["socket"], r["pcscd"], r["netns"], r["daemon"]) for r in rs}  # one per worker
        root, socket, _, _, _ = stack
        assert f"vcard-test-{name}-" in str(root)
        assert str(socket).startswith(str(root)) and {r["client_socket"] for r in rs} == {socket}
        assert {r["reader"] for r in rs} == {"Virtual PCD 00 00"}  # same name, another pcscd
        stacks[name] = stack
    for part in range(5):  # directory, socket, pcscd, its network namespace, daemon: nothing shared
        assert stacks["gw0"][part] != stacks["gw1"][part]
    for root, *_ in stacks.values():  # all passed: each worker's stack directory was removed
        assert not Path(str(root)).exists()


FAILING = """
import os
from pathlib import Path


def test_fails(vcard):
    Path(os.environ["FARM_OUT"], "root").write_text(str(vcard.stack.paths.root.parent))
    assert False, "on purpose"
"""


def test_a_failed_session_keeps_the_stack_directory_for_the_post_mortem(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "test_fails.py").write_text(FAILING)
    env = {k: v for k, v in os.environ.items() if k not in ("PCSCLITE_CSOCK_NAME", "PYTEST_XDIST_WORKER")}
    env["FARM_OUT"] = str(tmp_path)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "bt")]
    run = subprocess.run(args, cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout + run.stderr
    root = Path((tmp_path / "root").read_text())
    try:
        assert root.name.startswith("vcard-test-main-")
        assert (root / "run" / "daemon.log").is_file() and (root / "run" / "pcscd.log").is_file()
        assert not (root / "run" / "pcscd" / "pcscd.comm").exists()  # stopped all the same
    finally:
        shutil.rmtree(root, ignore_errors=True)
