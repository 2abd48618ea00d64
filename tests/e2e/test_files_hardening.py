"""Issue 8, defects 2, 4 and 6 as users meet them: through the real stack, and as a non-root user.

The non-root tests switch to an unused uid with ``setpriv`` (util-linux), run
vcard from this checkout's virtualenv (readable by everyone: nothing is
chmod'ed), and check that a runtime directory planted under /tmp or a foreign
pid file makes vcard refuse, with one line, and signal nothing; and that the
card state a plain user creates is private whatever the umask.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from other_user import python_for_other_users

from emulator.control.client.client import RequestFailed
from emulator.pytest_plugin import LiveCard, fail_or_skip

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SELECT_PIV = "00A4040009A00000030800001000"
VERIFY_WRONG = "0020008008" + "303030303030FFFF"


def _profile(tmp: Path, state: Path) -> Path:
    from importlib import resources

    text = resources.files("emulator.profiles").joinpath("default.toml").read_text()
    lines = [f'state_file = "{state}"' if line.startswith("state_file") else line for line in text.splitlines()]
    path = tmp / f"{state.stem}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _log_since(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


# -- through the real stack ------------------------------------------------------------------
def test_a_foreign_state_file_is_refused_in_one_line_and_left_alone(vcard: LiveCard, tmp_path: Path) -> None:
    foreign = tmp_path / "notes.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE notes (body TEXT)")
    db.execute("INSERT INTO notes VALUES ('keep me')")
    db.commit()
    db.close()
    before = foreign.read_bytes()
    with pytest.raises(RequestFailed) as err:
        try:
            vcard.stack.insert(1, profile=str(_profile(tmp_path, foreign)))
        finally:  # an accepted file must not leave slot 1 taken for the next test
            if vcard.stack.status().slots[1].present:
                vcard.stack.remove(1, wait=True)
    message = str(err.value)
    assert "not a vcard card" in message and "\n" not in message, message
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("notes")) == ["notes.sqlite", "notes.toml"]
    assert vcard.transmit(SELECT_PIV)[-2:] == b"\x90\x00"  # the other slot never noticed


def test_one_slots_broken_storage_answers_6581_and_spares_the_daemon(vcard: LiveCard, tmp_path: Path) -> None:
    """Make every file of slot 1's card immutable (the -shm too, if there is one: SIGBUS before the fix)."""
    chattr = shutil.which("chattr")
    if chattr is None:
        fail_or_skip("chattr (e2fsprogs) is missing")
    stack = vcard.stack
    state = tmp_path / "slot1.sqlite"
    stack.insert(1, profile=str(_profile(tmp_path, state)), wait=True)
    log_at = stack.paths.daemon_log.stat().st_size
    files = [p for p in (Path(f"{state}{s}") for s in ("", "-wal", "-shm")) if p.exists()]
    probe = subprocess.run([chattr, "+i", *map(str, files)], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this file system cannot make files immutable: {probe.stderr.strip()}")
    try:
        other = LiveCard(stack, 1, "")
        conn = other.connect()
        try:
            for apdu in (SELECT_PIV, VERIFY_WRONG, VERIFY_WRONG):
                _, sw1, sw2 = conn.transmit(list(bytes.fromhex(apdu)))
                if apdu == SELECT_PIV:
                    assert (sw1, sw2) == (0x90, 0x00)
                else:
                    assert (sw1, sw2) == (0x65, 0x81), f"{sw1:02X}{sw2:02X}"
        finally:
            with contextlib.suppress(Exception):
                conn.release()
        assert vcard.transmit(SELECT_PIV)[-2:] == b"\x90\x00"  # slot 0 and the daemon live on
        assert stack.status().running
    finally:
        subprocess.run([chattr, "-i", *map(str, files)], check=False)
        with contextlib.suppress(Exception):
            stack.remove(1, wait=True)
    logged = _log_since(stack.paths.daemon_log, log_at)
    assert "Traceback" not in logged
    failures = [line for line in logged.splitlines() if "write failed" in line]
    assert len(failures) == 1, logged  # one line for the run of failures


# -- as a non-root user ----------------------------------------------------------------------
@pytest.fixture
def user() -> Iterator[tuple[int, Path]]:
    """An unused uid and a home directory it owns (mode 0700)."""
    if os.geteuid() != 0:
        fail_or_skip("switching to another user needs root")
    if shutil.which("setpriv") is None:
        fail_or_skip("setpriv (util-linux) is missing")
    uid = random.SystemRandom().randrange(50_000, 60_000)
    home = Path(tempfile.mkdtemp(prefix=f"vcard-user-{uid}-"))
    os.chown(home, uid, uid)
    try:
        yield uid, home
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(f"/tmp/vcard-{uid}", ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(f"/tmp/vcard-{uid}")


def _as_user(uid: int, home: Path, args: list[str], *, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }  # no XDG_RUNTIME_DIR: the runtime directory is /tmp/vcard-UID
    setpriv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    return subprocess.run(
        [*setpriv, python_for_other_users(setpriv), *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(umask),
    )


def _vcard(uid: int, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _as_user(uid, home, ["-m", "emulator.control.client.cli", *args])


@pytest.fixture
def sleepers(user: tuple[int, Path]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two processes of the user that vcard must never signal."""
    uid, _ = user
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", "sleep", "120"]
    procs = [subprocess.Popen(cmd) for _ in range(2)]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def _plant(root: Path, sleepers: list[subprocess.Popen[bytes]]) -> None:
    stack = {"mode": "host", "pcscd_pid": sleepers[0].pid, "pcscd_socket": str(root / "x"), "owned": True}
    (root / "stack.json").write_text(json.dumps(stack))
    (root / "daemon.pid").write_text(f"{sleepers[1].pid}\n")


def _alive(procs: list[subprocess.Popen[bytes]]) -> bool:
    time.sleep(0.2)  # a SIGTERM would have landed by now; this only makes a failure visible sooner
    return all(p.poll() is None for p in procs)


@pytest.mark.parametrize("how", ["other-owner", "world-writable", "symlink"])
def test_a_planted_runtime_directory_is_refused_and_nothing_signalled(
    user: tuple[int, Path], sleepers: list[subprocess.Popen[bytes]], how: str
) -> None:
    uid, home = user
    root = Path(f"/tmp/vcard-{uid}")
    if how == "symlink":
        target = home / "elsewhere"
        target.mkdir(mode=0o700)
        os.chown(target, uid, uid)
        _plant(target, sleepers)
        for f in target.iterdir():
            os.chown(f, uid, uid)
        root.symlink_to(target)
    else:
        root.mkdir(mode=0o755)  # made by another user (here root) before the victim's first `vcard up`
        _plant(root, sleepers)
        if how == "world-writable":
            for p in (root, *root.iterdir()):
                os.chown(p, uid, uid)
            os.chmod(root, 0o777)
    out = _vcard(uid, home, "down")
    assert _alive(sleepers), "vcard down signalled a process named in a planted file"
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(root) in lines[0], out.stderr
    expected = {"other-owner": "owned by uid 0", "world-writable": "writable by others", "symlink": "is a symlink"}
    assert expected[how] in lines[0]


def test_pids_that_are_not_vcards_processes_are_never_signalled(
    user: tuple[int, Path], sleepers: list[subprocess.Popen[bytes]]
) -> None:
    """The user's own, private directory, but stale files naming other processes of the user."""
    uid, home = user
    root = Path(f"/tmp/vcard-{uid}")
    root.mkdir(mode=0o700)
    _plant(root, sleepers)
    for p in (root, *root.iterdir()):
        os.chown(p, uid, uid)
    out = _vcard(uid, home, "down")
    assert _alive(sleepers), "vcard down signalled a process it did not start"
    assert out.returncode == 0, out
    assert out.stderr.count("nothing was signalled") == 2, out.stderr
    assert "'sleep', not pcscd" in out.stderr


STATE_SCRIPT = """
import json, os, stat, sys
from emulator.factory import open_card
from emulator.profile import load_profile
from emulator.store import StateError
try:
    card, store = open_card(load_profile())
except StateError as exc:
    print(json.dumps({"refused": str(exc)})); sys.exit(0)
card.power_on()
card.transmit(bytes.fromhex("00A4040009A00000030800001000"))
card.transmit(bytes.fromhex("0020008008303030303030FFFF"))
path = str(store.path)
modes = {s: stat.S_IMODE(os.stat(path + s).st_mode) for s in ("", "-wal", "-shm") if os.path.exists(path + s)}
modes["dir"] = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
store.close()
print(json.dumps({"path": path, "modes": modes}))
"""


def _state(uid: int, home: Path) -> dict[str, object]:
    out = _as_user(uid, home, ["-c", STATE_SCRIPT])
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_users_card_state_is_private_and_doctor_flags_looser_modes(user: tuple[int, Path]) -> None:
    uid, home = user
    result = _state(uid, home)
    path = Path(str(result["path"]))
    assert path == home / ".local/share/vcard/default.sqlite"
    assert result["modes"] == {"": 0o600, "-wal": 0o600, "dir": 0o700}, result
    os.chmod(path, 0o644)
    os.chmod(path.parent, 0o755)
    out = _vcard(uid, home, "doctor")
    assert f"chmod 600 {path}" in out.stdout, out.stdout
    assert f"chmod 700 {path.parent}" in out.stdout, out.stdout
    assert out.returncode == 1


def test_a_read_only_card_or_directory_is_refused_at_insert(user: tuple[int, Path]) -> None:
    uid, home = user
    path = Path(str(_state(uid, home)["path"]))
    os.chmod(path, 0o400)
    before = path.read_bytes()
    refused = str(_state(uid, home).get("refused"))
    assert "cannot be written" in refused and str(path) in refused, refused
    assert path.read_bytes() == before
    path.unlink()
    os.chmod(path.parent, 0o500)
    refused = str(_state(uid, home).get("refused"))
    assert "cannot create state file" in refused and "writable" in refused, refused
    assert list(path.parent.iterdir()) == []


def test_a_planted_default_state_directory_is_refused(user: tuple[int, Path]) -> None:
    uid, home = user
    share = home / ".local" / "share"
    share.mkdir(parents=True)
    for p in (home / ".local", share):
        os.chown(p, uid, uid)
    (share / "vcard").mkdir(mode=0o755)  # root's, not the user's
    refused = str(_state(uid, home).get("refused"))
    assert "state directory" in refused and "owned by uid 0" in refused, refused


def test_the_virtualenv_is_usable_by_another_user(user: tuple[int, Path]) -> None:
    """Guard for the tests above: a failure here means the checkout is not readable, not a vcard bug."""
    uid, home = user
    out = _as_user(uid, home, ["-c", "import emulator, os; print(os.geteuid(), emulator.__file__)"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == str(uid)
    assert out.stdout.split()[1].endswith("emulator/__init__.py")  # the checkout's, or its readable copy
