"""Issue 12, "no root needed to use it": ``vcard up --user`` and the pytest plugin as a plain user.

Each test runs vcard as an unused uid (``setpriv``; or as the runner itself
when it is not root), with HOME and XDG_RUNTIME_DIR in a temporary directory
of that user's: pcscd and the daemon run in a user + network + mount
namespace of the user's, the socket lands in the user's runtime directory,
a PC/SC client of the user's (pyscard, opensc-tool) sees the card and its
removal, and ``vcard down`` leaves no process of the user's behind.

The checkout's interpreter may sit where another user cannot exec it (a
pyenv under /root, a checkout in a 0700 directory): then the user gets a
readable copy (tests/e2e/other_user.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from other_user import python_for_other_users

from emulator.pytest_plugin import fail_or_skip

pytestmark = pytest.mark.e2e

DEFAULT_ATR = "3b8b0180730000c0657663617264be"
VPCD_PORTS = (35963, 35964)


@dataclass(frozen=True)
class User:
    uid: int
    home: Path
    python: str

    @property
    def runtime(self) -> Path:
        return self.home / "run"

    @property
    def socket(self) -> Path:
        return self.runtime / "vcard" / "pcscd" / "pcscd.comm"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",  # no /usr/sbin: vcard must find pcscd and ip itself
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "TMPDIR": str(self.home / "tmp"),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if "CI" in os.environ:
            env["CI"] = os.environ["CI"]
        return {**env, **extra}

    def prefix(self) -> list[str]:
        if os.geteuid() != self.uid:
            return ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--"]
        return []

    def run(self, args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix(), *args], env=self.env(**extra), cwd=self.home, capture_output=True, text=True, timeout=120
        )

    def vcard(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.run([self.python, "-m", "emulator.control.client.cli", *args], **extra)


def _processes_of(uid: int) -> list[int]:
    """Live (not zombie) processes of ``uid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1 ").split()[0]) == uid and fields.get("State", "").strip()[:1] != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def user() -> Iterator[User]:
    """An unused uid (or the runner, when it is not root) with its own HOME and XDG_RUNTIME_DIR (0700)."""
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            fail_or_skip(f"{tool} (util-linux) is missing")
    uid = random.SystemRandom().randrange(50_000, 60_000) if os.geteuid() == 0 else os.geteuid()
    home = Path(tempfile.mkdtemp(prefix=f"vcard-nonroot-{uid}-"))
    for d in (home, home / "run", home / "tmp"):
        d.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(d, uid, uid)
    prefix = User(uid, home, "").prefix()
    u = User(uid, home, python_for_other_users(prefix, extra_probe=", xdist"))
    try:
        yield u
    finally:
        if os.geteuid() == 0:  # whatever a failing test left running: by pid, only this fresh uid's
            for pid in _processes_of(uid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        else:
            u.vcard("down")
        shutil.rmtree(home, ignore_errors=True)


def _ns(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _caps(pid: int) -> int:
    line = next(li for li in Path(f"/proc/{pid}/status").read_text().splitlines() if li.startswith("CapEff:"))
    return int(line.split()[1], 16)


WATCH = r"""
import json, subprocess, sys
from smartcard import scard

vcard = sys.argv[1:]
hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)
hr, readers = scard.SCardListReaders(ctx, [])
reader = "Virtual PCD 00 00"
hr, states = scard.SCardGetStatusChange(ctx, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
_, current, atr = states[0]
out = {"readers": readers, "present": bool(current & scard.SCARD_STATE_PRESENT), "atr": bytes(atr).hex(), "seen": []}
for command, want in (("remove", False), ("insert", True)):
    subprocess.run([*vcard, command], check=True, capture_output=True)  # no --wait: pcscd must tell us
    while True:  # the 20 s is a hang guard only; pcscd reports within one 400 ms poll
        hr, states = scard.SCardGetStatusChange(ctx, 20000, [(reader, current)])
        if hr != scard.SCARD_S_SUCCESS:
            out["seen"].append(scard.SCardGetErrorMessage(hr))
            break
        _, event, _ = states[0]
        current = event & ~scard.SCARD_STATE_CHANGED
        if bool(event & scard.SCARD_STATE_PRESENT) == want:
            out["seen"].append("present" if want else "empty")
            break
scard.SCardReleaseContext(ctx)
print(json.dumps(out))
"""


def test_vcard_up_user_runs_the_stack_without_root(user: User) -> None:
    up = user.vcard("up", "--user")
    assert up.returncode == 0, up.stderr
    assert "own user and network namespace" in up.stdout

    env = user.vcard("env")
    assert env.returncode == 0, env.stderr
    assert env.stdout.strip() == f"export PCSCLITE_CSOCK_NAME={user.socket}"
    status = json.loads(user.vcard("status", "--json").stdout)
    assert status["pcscd"]["mode"] == "userns" and status["pcscd"]["socket"] == str(user.socket)

    pcscd_pid = status["pcscd"]["pid"]
    daemon_pid = status["daemon"]["pid"]
    for pid in (pcscd_pid, daemon_pid):  # the user's own processes, with no capability left
        assert _processes_of(user.uid).count(pid) == 1
        assert _caps(pid) == 0
    # both in one user and network namespace that is not ours; that network has only lo
    assert _ns(pcscd_pid, "user") == _ns(daemon_pid, "user") != _ns(os.getpid(), "user")
    assert _ns(pcscd_pid, "net") == _ns(daemon_pid, "net") != _ns(os.getpid(), "net")
    interfaces = [li.split(":")[0].strip() for li in Path(f"/proc/{pcscd_pid}/net/dev").read_text().splitlines()[2:]]
    assert interfaces == ["lo"]
    listening = [
        int(li.split()[1].rsplit(":", 1)[1], 16)
        for li in Path(f"/proc/{pcscd_pid}/net/tcp").read_text().splitlines()[1:]
        if li.split()[3] == "0A"
    ]
    assert sorted(listening) == list(VPCD_PORTS)  # vpcd's, inside that namespace only

    # a pcsc_scan-like client of the user's, pointed at the socket by `vcard env`
    vcard_cmd = [user.python, "-m", "emulator.control.client.cli"]
    watch = user.run([user.python, "-c", WATCH, *vcard_cmd], PCSCLITE_CSOCK_NAME=str(user.socket))
    assert watch.returncode == 0, watch.stderr
    seen = json.loads(watch.stdout)
    assert seen["readers"] == ["Virtual PCD 00 00", "Virtual PCD 00 01"]
    assert seen["present"] and seen["atr"] == DEFAULT_ATR
    assert seen["seen"] == ["empty", "present"]
    listing = user.run(["opensc-tool", "-l"], PCSCLITE_CSOCK_NAME=str(user.socket))
    assert any("Virtual PCD 00 00" in li and " Yes " in li for li in listing.stdout.splitlines()), listing.stdout

    doctor = user.vcard("doctor")
    assert "[ok  ] user namespaces available" in doctor.stdout, doctor.stdout
    assert "mode userns" in doctor.stdout

    down = user.vcard("down")
    assert down.returncode == 0 and down.stdout.strip() == "stopped", down.stderr
    assert _processes_of(user.uid) == []
    assert not user.socket.exists()


SUITE = """
import os
import subprocess

SELECT_PIV = "00A4040009A00000030800001000"


def test_the_card_answers_without_root(vcard):
    assert os.geteuid() != 0
    assert vcard.stack.stack.mode == "userns"
    assert vcard.transmit(SELECT_PIV)[-2:] == b"\\x90\\x00"


def test_pull_and_put_back(vcard):
    vcard.remove(wait=True)
    assert not vcard.stack.status().slots[0].present
    vcard.insert(wait=True)
    assert vcard.transmit(SELECT_PIV)[-2:] == b"\\x90\\x00"


def test_a_pcsc_tool_reaches_it_with_env(vcard):
    out = subprocess.run(["opensc-tool", "-l"], env=vcard.env, capture_output=True, text=True)
    assert any(vcard.reader in line and " Yes " in line for line in out.stdout.splitlines()), out.stdout
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist-n2"])
def test_the_pytest_fixture_works_in_a_non_root_users_suite(user: User, workers: list[str]) -> None:
    """The user's own suite, as is and as a farm of two xdist workers (a user namespace each)."""
    suite = user.home / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "test_mine.py").write_text(SUITE)
    if os.geteuid() == 0:
        for p in (suite, suite / "pytest.ini", suite / "test_mine.py"):
            os.chown(p, user.uid, user.uid)
    options = ["-q", "-p", "no:cacheprovider", "--basetemp", str(user.home / "pt"), *workers]
    run = user.run([user.python, "-m", "pytest", *options, str(suite)])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout, run.stdout
    assert _processes_of(user.uid) == []  # the plugin stopped pcscd and the daemon by pid


@pytest.mark.parametrize("runtime_under_run", [False, True], ids=["runtime-in-home", "runtime-under-run"])
def test_without_run_pcscd_a_tmpfs_gives_the_mount_point(user: User, runtime_under_run: bool) -> None:
    """A machine where pcscd never ran (no /run/pcscd, which a user cannot create): simulated with a
    tmpfs on /run in a mount namespace of the test's (needs root). The user's runtime directory may
    itself be under /run (/run/user/UID): the tmpfs vcard puts on /run must not hide it."""
    if os.geteuid() != 0:
        pytest.skip("simulating a machine without /run/pcscd needs root")
    runtime = Path(f"/run/user/{user.uid}") if runtime_under_run else user.runtime
    socket = runtime / "vcard" / "pcscd" / "pcscd.comm"
    vcard = f"{user.python} -m emulator.control.client.cli"
    steps = f"{vcard} up --user && opensc-tool -l && {vcard} down"
    script = (
        "mount -t tmpfs vcard-test /run && test ! -e /run/pcscd && "
        f"mkdir -p {runtime} && chown {user.uid}:{user.uid} {runtime} && chmod 700 {runtime} && "
        f'exec "$@" sh -c "{steps}"'
    )
    run = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *user.prefix()],
        env=user.env(XDG_RUNTIME_DIR=str(runtime), PCSCLITE_CSOCK_NAME=str(socket)),
        cwd=user.home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"socket {socket}" in run.stdout
    assert any("Virtual PCD 00 00" in li and " Yes " in li for li in run.stdout.splitlines()), run.stdout
    assert run.stdout.rstrip().endswith("stopped")
    assert _processes_of(user.uid) == []


def test_doctor_and_up_explain_disabled_user_namespaces(user: User) -> None:
    """user.max_user_namespaces = 0 in a user namespace of the user's (the knob is per namespace)."""
    if os.statvfs("/proc/sys").f_flag & os.ST_RDONLY:
        # a container's /proc/sys is read-only: the knob cannot be turned to simulate a locked-down
        # machine (this is the simulation that is missing, not a component of the stack)
        pytest.skip("/proc/sys is read-only here (a container): cannot simulate disabled user namespaces")
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --inh-caps=-all --ambient-caps=-all -- "$@"'
    prefix = [
        "unshare",
        "--user",
        f"--map-user={user.uid}",
        f"--map-group={user.uid}",
        "--keep-caps",
        "sh",
        "-c",
        script,
        "sh",
        user.python,
        "-m",
        "emulator.control.client.cli",
    ]
    doctor = user.run([*prefix, "doctor"])
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    lines = doctor.stdout.splitlines()
    at = next(i for i, li in enumerate(lines) if "user namespaces unavailable" in li)
    assert lines[at].startswith("[FAIL]") and "user.max_user_namespaces = 0" in lines[at]
    assert "sysctl -w user.max_user_namespaces=15000" in lines[at + 1] and "fix:" in lines[at + 1]

    up = user.run([*prefix, "up", "--user"])
    assert up.returncode == 1
    assert up.stderr.count("\n") == 1 and "user.max_user_namespaces = 0" in up.stderr, up.stderr
    assert _processes_of(user.uid) == []
