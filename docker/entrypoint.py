#!/opt/vcard/bin/python
"""Entry point of the vcard container images (docker-compose.yml, examples/k8s/).

``vcard-entrypoint card``
    The card half of the three-container setup: pcscd runs in the ``pcscd``
    container, whose network namespace (only ``lo``) this container joins
    (compose: ``network_mode: service:pcscd``; Kubernetes: containers of one
    pod), and whose socket is on a shared volume at ``/run/pcscd``. Records
    that pcscd as an external stack (so ``vcard status``/``insert``/``remove``
    inside the container use it and ``vcard down`` never signals it), then
    runs the daemon in the foreground with a card from ``$VCARD_PROFILE``.

``vcard-entrypoint stack``
    One pcscd + daemon pair in one container (``card-stack``, the farm unit),
    with a card in each of vpcd's two slots (``VCARD_CARDS=1``: slot 0 only):
    claims the first free index N under ``$VCARD_FARM_DIR`` (a lock held for
    the container's life), starts pcscd with its socket at
    ``$VCARD_FARM_DIR/card-stack-N/pcscd.comm`` and the daemon with its state
    in ``$VCARD_FARM_STATE/card-stack-N``. pcscd 1.9.9 ignores
    ``PCSCLITE_CSOCK_NAME`` (only the client library reads it) and always
    makes ``/run/pcscd/pcscd.comm``, so this mode starts as root, replaces
    ``/run/pcscd`` with a symlink to the replica's directory, and drops to the
    ``vcard`` user before it starts anything. vpcd listens on 0.0.0.0 of the
    container's namespace, so the container must have only ``lo``
    (``network_mode: none``); it refuses otherwise.

Either way SIGTERM (``docker stop``) is a gentle removal of the card, and the
daemon's state (SQLite, one transaction per command) survives the container.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from emulator.control.stack.netns import non_loopback_interfaces
from emulator.control.stack.paths import SYSTEM_PCSCD_SOCKET, RuntimePaths
from emulator.control.stack.pcscd import StackInfo, process_start

DAEMON = [sys.executable, "-m", "emulator.control.daemon"]
FARM_MAX = 1000  #: indices tried before giving up


def _say(text: str) -> None:
    print(f"vcard-entrypoint: {text}", file=sys.stderr, flush=True)


def _wait_for(path: Path, seconds: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"vcard-entrypoint: pcscd exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"vcard-entrypoint: {path} did not appear within {seconds:g} s; is pcscd running?")
        time.sleep(0.05)


def _daemon_args(paths: RuntimePaths, state: Path, profile: str) -> list[str]:
    args = [*DAEMON, "--runtime-dir", str(paths.root), "--state-dir", str(state)]
    if profile:  # VCARD_PROFILE= (empty): start with both slots empty
        args += ["--insert", profile]
    return args


def card() -> None:
    paths = RuntimePaths.default()
    state = Path(os.environ.get("VCARD_STATE_DIR", "/var/lib/vcard"))
    state.mkdir(mode=0o700, parents=True, exist_ok=True)  # in a volume whose root is not ours (k8s)
    sock = Path(os.environ.get("PCSCLITE_CSOCK_NAME", str(SYSTEM_PCSCD_SOCKET)))
    _wait_for(sock, float(os.environ.get("VCARD_WAIT_PCSCD", "30")))
    StackInfo(mode="external", pcscd_pid=None, pcscd_socket=str(sock), owned=False).save(paths)
    os.execv(sys.executable, _daemon_args(paths, state, os.environ.get("VCARD_PROFILE", "default")))


def _claim_index(farm: Path) -> tuple[int, int]:
    """The first index whose lock nobody holds; the lock fd stays open (and held) for our life."""
    for n in range(1, FARM_MAX + 1):
        fd = os.open(farm / f"card-stack-{n}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return n, fd
    raise SystemExit(f"vcard-entrypoint: {FARM_MAX} card stacks already run on {farm}")


def _fill_slot1(paths: RuntimePaths, state: Path, profile: str) -> None:
    """vpcd's second slot ("Virtual PCD 00 01") gets a card from the same profile, with a state
    file of its own (a profile's state_file names one card): two cards per pcscd + daemon pair."""
    from importlib import resources

    from emulator.control.client.api import VCard

    if profile.endswith(".toml") or os.sep in profile:
        text = Path(profile).read_text()
    else:
        text = resources.files("emulator.profiles").joinpath(f"{profile}.toml").read_text()
    own = f'state_file = "{state / "slot1.sqlite"}"'
    lines = [own if line.startswith("state_file") else line for line in text.splitlines()]
    if own not in lines:  # a profile without state_file: a top-level key, before any table
        lines.insert(0, own)
    slot1 = state / "slot1.toml"
    slot1.unlink(missing_ok=True)
    with os.fdopen(os.open(slot1, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write("\n".join(lines) + "\n")
    vc = VCard(paths.root, state_dir=state)
    deadline = time.monotonic() + 10
    while not vc.status().running:
        if time.monotonic() > deadline:
            raise SystemExit("vcard-entrypoint: the daemon did not answer within 10 s")
        time.sleep(0.05)
    vc.insert(1, profile=str(slot1))


def stack() -> None:
    others = non_loopback_interfaces()
    if others:
        raise SystemExit(
            "vcard-entrypoint: vpcd would listen on 0.0.0.0 with interfaces "
            f"{', '.join(others)} up; run this container with network_mode: none"
        )
    if os.geteuid() != 0:
        raise SystemExit(
            "vcard-entrypoint: stack mode starts as root (user: root) to point /run/pcscd at the "
            "replica's socket directory, then runs everything as the vcard user"
        )
    user = pwd.getpwnam(os.environ.get("VCARD_USER", "vcard"))
    farm = Path(os.environ.get("VCARD_FARM_DIR", "/farm"))
    n, _lock = _claim_index(farm)
    name = f"card-stack-{n}"
    sock_dir = farm / name
    state = Path(os.environ.get("VCARD_FARM_STATE", "/var/lib/vcard")) / name
    for path, mode in ((sock_dir, 0o755), (state, 0o700)):
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        os.chown(path, user.pw_uid, user.pw_gid)
    sock = sock_dir / "pcscd.comm"
    for stale in (sock, sock_dir / "pcscd.pid"):
        stale.unlink(missing_ok=True)
    shutil.rmtree(SYSTEM_PCSCD_SOCKET.parent, ignore_errors=True)
    SYSTEM_PCSCD_SOCKET.parent.unlink(missing_ok=True)
    SYSTEM_PCSCD_SOCKET.parent.symlink_to(sock_dir)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    paths = RuntimePaths.default()
    _say(f"{name}: pcscd socket {sock}, state {state}")
    env = {**os.environ, "HOME": user.pw_dir, "USER": user.pw_name}
    pcscd = subprocess.Popen(["pcscd", "--foreground"], env=env)
    _wait_for(sock, 10, pcscd)
    StackInfo(
        mode="host", pcscd_pid=pcscd.pid, pcscd_socket=str(sock), owned=True, pcscd_start=process_start(pcscd.pid)
    ).save(paths)
    profile = os.environ.get("VCARD_PROFILE", "default")
    daemon = subprocess.Popen([*_daemon_args(paths, state, profile), "--fresh-pcscd"], env=env)

    if os.environ.get("VCARD_CARDS", "2") == "2" and profile:
        _fill_slot1(paths, state, profile)

    def stop(*_: object) -> None:
        daemon.terminate()  # the daemon first: a gentle removal needs pcscd's poll

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 1
    while True:
        if daemon.poll() is not None:
            status = daemon.returncode
            break
        if pcscd.poll() is not None:
            _say(f"pcscd exited with status {pcscd.returncode}; stopping the daemon")
            daemon.terminate()
            daemon.wait()
            break
        time.sleep(0.2)
    if pcscd.poll() is None:
        pcscd.terminate()
        pcscd.wait(10)
    sock.unlink(missing_ok=True)
    raise SystemExit(status)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "card"
    if mode == "card":
        card()
    elif mode == "stack":
        stack()
    else:  # anything else: run it (vcard, pcsc_scan, bash ...) with the image's environment
        os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
