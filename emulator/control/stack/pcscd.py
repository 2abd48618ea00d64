"""Starting and stopping the stack: pcscd (in its own network namespace) and the daemon.

Why a network namespace (README, "How vcard meets pcscd"): Debian's vpcd
listens on 0.0.0.0 when it listens, and in reverse mode it makes pcscd
abort whenever the card side is not there. So vcard runs pcscd in listen
mode inside a network namespace that has only a loopback interface. vpcd's
ports exist only there; the daemon joins that namespace to connect; pcscd's
Unix socket is a file and reaches every application on the host. A daemon
that dies leaves pcscd untouched, because in listen mode vpcd just waits for
the next connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from emulator.control.stack.netns import non_loopback_interfaces
from emulator.control.stack.paths import (
    SYSTEM_PCSCD_DIR,
    SYSTEM_PCSCD_SOCKET,
    RuntimePaths,
    ensure_private_dir,
    private_dir_problem,
    private_file_problem,
)
from emulator.control.stack.userns import UserNamespaceError, spawn_pcscd

__all__ = [
    "StackError",
    "StackInfo",
    "check_runtime_dir",
    "find_system_pcscd",
    "pid_alive",
    "start_daemon",
    "start_pcscd",
    "stop_daemon",
    "stop_pcscd",
]

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0
DAEMON_MODULE = "emulator.control.daemon"


class StackError(Exception):
    """The stack cannot start or stop; the message says what to do."""


def check_runtime_dir(paths: RuntimePaths, *, create: bool = False) -> None:
    """Refuse a runtime directory another user could have planted (paths.py); create it 0700."""
    problem = ensure_private_dir(paths.root) if create else private_dir_problem(paths.root)
    if problem is not None:
        raise StackError(problem)


@dataclass
class StackInfo:
    #: "netns": ours, isolated; "userns": ours, isolated, without root (vcard up --user);
    #: "host": ours, in this namespace; "external": someone else's
    mode: str
    pcscd_pid: int | None
    pcscd_socket: str
    owned: bool
    #: pcscd's start time (/proc/PID/stat field 22): a pid is signalled only if it is still that process
    pcscd_start: int | None = None

    def save(self, paths: RuntimePaths) -> None:
        check_runtime_dir(paths, create=True)
        tmp = paths.stack_file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(asdict(self)))
        os.replace(tmp, paths.stack_file)

    @classmethod
    def load(cls, paths: RuntimePaths) -> StackInfo | None:
        """The stack ``vcard up`` recorded; StackError if the directory or file is not this user's."""
        check_runtime_dir(paths)
        problem = private_file_problem(paths.stack_file)
        if problem is not None:
            raise StackError(problem)
        try:
            return cls(**json.loads(paths.stack_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @property
    def alive(self) -> bool:
        if self.pcscd_pid is None:
            return Path(self.pcscd_socket).exists()
        return pid_alive(self.pcscd_pid) and Path(self.pcscd_socket).exists()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name (field 3 onwards), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, proc(5) field 22): tells a reused pid apart."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def _process_uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _not_ours(
    pid: int, what: str, *, start: int | None, names: tuple[str, ...] | None, cmdline: tuple[str, ...] | None
) -> str | None:
    """Why ``pid`` is not the ``what`` vcard started (None: it is), checked before any signal."""
    uid = _process_uid(pid)
    if uid is None:
        return None if not pid_alive(pid) else f"pid {pid} cannot be inspected"
    if uid != os.geteuid():
        return f"pid {pid} belongs to uid {uid}, not to you"
    if start is not None and process_start(pid) != start:
        return f"pid {pid} is a newer process than the {what} vcard started (the pid was reused)"
    if names is not None:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            comm = "?"
        if comm not in names:
            return f"pid {pid} is {comm!r}, not {what}"
    if cmdline is not None:  # these arguments, in this order, somewhere in its command line
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            args = []
        n = len(cmdline)
        if not any(tuple(args[i : i + n]) == cmdline for i in range(len(args))):
            return f"pid {pid} is not a vcard {what} ({' '.join(cmdline)})"
    return None


def _daemon_args(paths: RuntimePaths) -> tuple[str, ...]:
    """What the command line of the daemon serving ``paths`` holds (see start_daemon)."""
    return ("-m", DAEMON_MODULE, "--runtime-dir", str(paths.root))


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def find_system_pcscd() -> int | None:
    """The pid of a pcscd serving /run/pcscd that vcard did not start, if any."""
    pid = read_pid(SYSTEM_PCSCD_DIR / "pcscd.pid")
    if pid is not None and pid_alive(pid) and SYSTEM_PCSCD_SOCKET.exists():
        return pid
    return None


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        raise StackError(f"{tool} is not installed; run scripts/up (or: apt-get install {package})")
    return path


def start_pcscd(paths: RuntimePaths, *, private: bool, listen_any: bool, user: bool = False) -> StackInfo:
    """Start pcscd with vpcd confined to loopback; see the module docstring.

    ``private``: pcscd's socket goes to the runtime directory instead of
    /run/pcscd (tests, benchmarks, a second stack beside a system pcscd);
    clients then need PCSCLITE_CSOCK_NAME. ``user``: no root needed, pcscd
    in a user namespace of this user's (userns.py); implies ``private``.
    """
    pcscd = _need("pcscd", "pcscd")
    if not Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists():
        raise StackError("vpcd is not installed; run scripts/up (or: apt-get install vsmartcard-vpcd)")
    check_runtime_dir(paths, create=True)
    private = private or user
    sock_dir = paths.private_pcscd_dir if private else SYSTEM_PCSCD_DIR
    sock_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(sock_dir, 0o755)
    for stale in ("pcscd.comm", "pcscd.pid"):
        (sock_dir / stale).unlink(missing_ok=True)
    log_file = open(paths.pcscd_log, "ab")  # noqa: SIM115 - handed to the child
    try:
        mode = "userns" if user else "netns"
        proc = (
            _spawn_user(pcscd, sock_dir, log_file)
            if user
            else _spawn_in_netns(pcscd, sock_dir if private else None, log_file)
        )
        if proc is None:
            if private:
                raise StackError(
                    "cannot create network and mount namespaces for a private pcscd (needs root or CAP_SYS_ADMIN); "
                    "without root: vcard up --user"
                )
            others = non_loopback_interfaces()
            if others and not listen_any:
                raise StackError(
                    "cannot create a network namespace (needs root or CAP_SYS_ADMIN), and vpcd would listen on "
                    f"0.0.0.0 with interfaces {', '.join(others)} up; run as root, or without root: vcard up --user "
                    "(or pass --vpcd-listen-any to accept that)"
                )
            if others:
                log.warning("vpcd listens on 0.0.0.0:35963-35964 (asked for with --vpcd-listen-any)")
            mode = "host"
            debug = ["--debug"] if os.environ.get("VCARD_PCSCD_DEBUG") else []
            proc = subprocess.Popen(
                [pcscd, "--foreground", *debug], stdout=log_file, stderr=log_file, start_new_session=True
            )
    finally:
        log_file.close()
    info = StackInfo(
        mode=mode,
        pcscd_pid=proc.pid,
        pcscd_socket=str(sock_dir / "pcscd.comm"),
        owned=True,
        pcscd_start=process_start(proc.pid),
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not Path(info.pcscd_socket).exists():
        if proc.poll() is not None:
            raise StackError(f"pcscd exited with status {proc.returncode}; see {paths.pcscd_log}")
        if time.monotonic() > deadline:
            stop_pcscd(info)
            raise StackError(
                f"pcscd did not create {info.pcscd_socket} within {START_TIMEOUT:g} s; see {paths.pcscd_log}"
            )
        time.sleep(0.02)
    info.save(paths)
    return info


def _spawn_user(pcscd: str, sock_dir: Path, log_file: BinaryIO) -> subprocess.Popen[bytes]:
    try:
        return spawn_pcscd(pcscd, sock_dir, log_file, debug=bool(os.environ.get("VCARD_PCSCD_DEBUG")))
    except UserNamespaceError as exc:
        raise StackError(f"cannot run pcscd without root: {exc}") from None


def _spawn_in_netns(pcscd: str, private_dir: Path | None, log_file: BinaryIO) -> subprocess.Popen[bytes] | None:
    """pcscd in a new network namespace (and mount namespace if private); None if not permitted."""
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None or not Path(ip).exists():
        raise StackError("unshare/ip are missing; run scripts/up (or: apt-get install util-linux iproute2)")
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        return None
    script = f'"{ip}" link set lo up && '
    args = [unshare, "--net"]
    if private_dir is not None:
        # Make the mounts private before the bind mount, so it can never propagate to the
        # host's namespace. `/` may not be a mount point (chroots): then the mount that
        # holds /run/pcscd is made private instead; if neither works, nothing is mounted.
        args += ["--mount", "--propagation", "unchanged"]
        # /run/pcscd may not exist yet on a machine where pcscd never ran (no systemd): the
        # bind mount needs a mount point, and an empty directory there is what pcscd makes anyway.
        script += (
            f"mkdir -p {SYSTEM_PCSCD_DIR} && "
            "{ mount --make-rprivate / 2>/dev/null || "
            f'mount --make-rprivate "$(findmnt -n -o TARGET --target {SYSTEM_PCSCD_DIR})"; }} && '
            f'mount --bind "$1" {SYSTEM_PCSCD_DIR} && '
        )
    script += f'exec "{pcscd}" --foreground' + (" --debug" if os.environ.get("VCARD_PCSCD_DEBUG") else "")
    args += ["--", "sh", "-c", script, "sh", str(private_dir or "")]
    return subprocess.Popen(args, stdout=log_file, stderr=log_file, start_new_session=True)


def stop_pcscd(info: StackInfo, *, timeout: float = 5.0) -> None:
    if not info.owned or info.pcscd_pid is None:
        return
    # The start time tells the pcscd vcard started from a reused pid; files saved
    # before it was recorded fall back to the process name.
    # sh/unshare/setpriv: before the exec
    names = ("pcscd",) if info.pcscd_start is None else ("pcscd", "unshare", "sh", "setpriv")
    problem = _not_ours(info.pcscd_pid, "pcscd", start=info.pcscd_start, names=names, cmdline=None)
    if problem is not None:
        log.warning("not stopping pcscd: %s; nothing was signalled", problem)
        return
    _terminate(info.pcscd_pid, timeout)
    if info.mode != "external":
        for leftover in ("pcscd.comm", "pcscd.pid"):
            (Path(info.pcscd_socket).parent / leftover).unlink(missing_ok=True)


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; by pid only, never by name."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    while not _wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait (reaping our own children) until ``pid`` has exited; False on timeout."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        _reap(pid)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def start_daemon(
    paths: RuntimePaths,
    info: StackInfo,
    *,
    state_dir: Path | None = None,
    verbose: bool = False,
    trace: bool = False,
    fresh_pcscd: bool = False,
) -> int:
    """Start the daemon detached; returns its pid once the control socket answers."""
    from emulator.control.client.client import ControlClient, DaemonNotRunning

    args = [sys.executable, *_daemon_args(paths)]
    if info.mode in ("netns", "userns") and info.pcscd_pid is not None:
        args += ["--netns-pid", str(info.pcscd_pid)]
    if state_dir is not None:
        args += ["--state-dir", str(state_dir)]
    if fresh_pcscd:
        args.append("--fresh-pcscd")
    if verbose:
        args.append("--verbose")
    if trace:
        args.append("--trace")
    check_runtime_dir(paths, create=True)
    with open(paths.daemon_log, "ab") as log_file:
        proc = subprocess.Popen(
            args, stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL, start_new_session=True
        )
    client = ControlClient(paths)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise StackError(f"the daemon exited with status {proc.returncode}; see {paths.daemon_log}")
        try:
            client.request("ping")
            return proc.pid
        except (DaemonNotRunning, OSError):
            pass
        if time.monotonic() > deadline:
            _terminate(proc.pid, 2)
            raise StackError(f"the daemon did not answer within {START_TIMEOUT:g} s; see {paths.daemon_log}")
        time.sleep(0.02)


def stop_daemon(paths: RuntimePaths, *, timeout: float = 5.0) -> bool:
    """Ask the daemon to stop (then SIGTERM/SIGKILL by pid); True if one was running."""
    from emulator.control.client.client import ControlClient, DaemonNotRunning

    check_runtime_dir(paths)
    problem = private_file_problem(paths.daemon_pid)
    if problem is not None:
        raise StackError(problem)
    pid = read_pid(paths.daemon_pid)
    with contextlib.suppress(DaemonNotRunning, OSError):
        ControlClient(paths).request("shutdown")
    if pid is not None and pid_alive(pid):
        problem = _not_ours(pid, "daemon", start=None, names=None, cmdline=_daemon_args(paths))
        if problem is not None:
            log.warning("not stopping the daemon named in %s: %s; nothing was signalled", paths.daemon_pid, problem)
            paths.daemon_pid.unlink(missing_ok=True)
            return False
    if pid is None or not pid_alive(pid):
        paths.control_socket.unlink(missing_ok=True)
        return pid is not None
    if not _wait_gone(pid, timeout):
        _terminate(pid, timeout)
    paths.control_socket.unlink(missing_ok=True)
    paths.daemon_pid.unlink(missing_ok=True)
    return True
