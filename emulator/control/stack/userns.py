"""The stack without root (``vcard up --user``): pcscd in a user + network + mount namespace.

An unprivileged user may create a user namespace and, inside it, network
and mount namespaces (user_namespaces(7)). vcard uses that as follows:

- ``unshare --user --map-user=UID --map-group=GID --keep-caps --net --mount``:
  the user keeps their own uid inside (not root), so pcscd and the daemon
  run as that user everywhere; ``--keep-caps`` lends the shell the
  namespace's capabilities for the two set-up steps below only.
- ``ip link set lo up``: the network namespace has only ``lo``; vpcd's
  listening ports (0.0.0.0:35963-35964 *inside*) are reachable from nowhere else.
- pcscd 1.9.9 ignores ``PCSCLITE_CSOCK_NAME`` (only clients read it): it
  always binds ``/run/pcscd/pcscd.comm`` and writes ``/run/pcscd/pcscd.pid``.
  So the user's private socket directory is bind-mounted on ``/run/pcscd`` in
  the private mount namespace; outside, clients find the socket there with
  ``PCSCLITE_CSOCK_NAME`` (``vcard env``). Where ``/run/pcscd`` does not exist
  (pcscd never ran, no systemd) and cannot be made without root, a tmpfs on
  ``/run`` (seen by this pcscd only) provides the mount point.
- ``setpriv`` drops every capability before pcscd starts: pcscd runs as the
  user, with none. Debian 12's pcscd is built without polkit (nothing to
  disable) and reads ``/etc/reader.conf.d`` and the vpcd driver, which are
  world-readable.

The daemon joins pcscd's user namespace, then its network namespace
(netns.enter_net_namespace). Installing the Debian packages still needs root,
once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "SYSCTLS",
    "Blocker",
    "UserNamespaceError",
    "diagnose",
    "read_sysctls",
    "spawn_pcscd",
    "userns_blockers",
    "userns_problem",
]

#: the knobs that switch unprivileged user namespaces off, and where they live
SYSCTLS: dict[str, Path] = {
    "kernel.unprivileged_userns_clone": Path("/proc/sys/kernel/unprivileged_userns_clone"),  # Debian < 11 kernels
    "user.max_user_namespaces": Path("/proc/sys/user/max_user_namespaces"),
    "kernel.apparmor_restrict_unprivileged_userns": Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
}
#: longest path a Unix socket address holds (sockaddr_un.sun_path is 108 bytes with the NUL)
MAX_SOCKET_PATH = 107


class UserNamespaceError(Exception):
    """pcscd cannot be started in a user namespace here; the message says why and what to do."""


@dataclass(frozen=True)
class Blocker:
    what: str
    fix: str


def diagnose(values: Mapping[str, str | None]) -> list[Blocker]:
    """What, among ``values`` (sysctl name -> its text, None if absent), forbids user namespaces."""

    def value(name: str) -> str | None:
        text = values.get(name)
        return None if text is None else text.strip()

    blockers = []
    if value("kernel.unprivileged_userns_clone") == "0":
        blockers.append(
            Blocker(
                "kernel.unprivileged_userns_clone = 0: the kernel gives user namespaces to root only",
                "as root: sysctl -w kernel.unprivileged_userns_clone=1 "
                "(to keep it: echo kernel.unprivileged_userns_clone=1 > /etc/sysctl.d/50-vcard-userns.conf)",
            )
        )
    if value("user.max_user_namespaces") == "0":
        blockers.append(
            Blocker(
                "user.max_user_namespaces = 0: no user namespace may be created",
                "as root: sysctl -w user.max_user_namespaces=15000 "
                "(to keep it: echo user.max_user_namespaces=15000 > /etc/sysctl.d/50-vcard-userns.conf)",
            )
        )
    if value("kernel.apparmor_restrict_unprivileged_userns") == "1":
        blockers.append(
            Blocker(
                "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)",
                "as root: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give /usr/bin/unshare "
                "an AppArmor profile with the 'userns,' rule",
            )
        )
    return blockers


def read_sysctls() -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for name, path in SYSCTLS.items():
        try:
            values[name] = path.read_text()
        except OSError:
            values[name] = None
    return values


def _unshare_args() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise UserNamespaceError("unshare is missing; as root, once: apt-get install util-linux")
    return [
        unshare,
        "--user",
        f"--map-user={os.geteuid()}",
        f"--map-group={os.getegid()}",
        "--keep-caps",
        "--net",
        "--mount",
        "--propagation",
        "private",
    ]


def userns_blockers() -> list[Blocker]:
    """Why this user cannot make a user + network + mount namespace (tried for real); [] if it can."""
    try:
        args = _unshare_args()
    except UserNamespaceError as exc:
        return [Blocker(str(exc), "apt-get install util-linux")]
    probe = subprocess.run([*args, "true"], capture_output=True, text=True)
    if probe.returncode == 0:
        return []
    said = (probe.stderr.strip().splitlines() or ["no reason given"])[-1]
    return diagnose(read_sysctls()) or [
        Blocker(
            f"cannot create a user namespace ({said})",
            "in a container, its seccomp profile may forbid it: run vcard as root there (the container "
            "is the isolation) or start the container with --security-opt seccomp=unconfined",
        )
    ]


def userns_problem() -> str | None:
    """None if this user can make a user + network + mount namespace, else one line: why, and the fix."""
    blockers = userns_blockers()
    return "; ".join(f"{b.what} (fix: {b.fix})" for b in blockers) if blockers else None


def _script(debug: bool) -> str:
    """The shell run inside the namespaces; $1 is the socket directory, $2 pcscd, $3 setpriv."""
    pcscd = '"$3" --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- "$2" --foreground'
    return (
        "set -e; ip link set lo up; "
        # keep a handle on $1 (cwd) before a tmpfs on /run could hide it (/run/user/UID/...);
        # --no-canonicalize: mount(8) would turn "." back into that hidden path
        'cd "$1"; '
        "if [ ! -d /run/pcscd ]; then mount -t tmpfs -o mode=755,size=1m vcard-run /run; mkdir /run/pcscd; fi; "
        "mount --no-canonicalize --bind . /run/pcscd; cd /; "
        f"exec {pcscd}{' --debug' if debug else ''}"
    )


def spawn_pcscd(pcscd: str, sock_dir: Path, log_file: BinaryIO, *, debug: bool) -> subprocess.Popen[bytes]:
    """Start pcscd in new user, network and mount namespaces, its socket in ``sock_dir``.

    Raises :class:`UserNamespaceError` if this machine forbids it (with the fix).
    """
    if len(str(sock_dir / "pcscd.comm").encode()) > MAX_SOCKET_PATH:
        raise UserNamespaceError(
            f"pcscd's socket path {sock_dir / 'pcscd.comm'} is longer than {MAX_SOCKET_PATH} bytes, "
            "which a Unix socket address cannot hold; choose a shorter runtime directory (--runtime-dir)"
        )
    problem = userns_problem()
    if problem is not None:
        raise UserNamespaceError(problem)
    ip = shutil.which("ip") or "/usr/sbin/ip"
    setpriv = shutil.which("setpriv")
    if not Path(ip).exists() or setpriv is None:
        raise UserNamespaceError("ip/setpriv are missing; as root, once: apt-get install iproute2 util-linux")
    env = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}
    env["PATH"] = f"{Path(ip).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    args = [*_unshare_args(), "--", "sh", "-c", _script(debug), "sh", str(sock_dir), pcscd, setpriv]
    return subprocess.Popen(args, stdout=log_file, stderr=log_file, env=env, start_new_session=True)
