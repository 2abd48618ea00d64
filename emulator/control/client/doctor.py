"""`vcard doctor`: check each part of the stack and say how to fix what is wrong."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emulator.control.stack.paths import private_dir_problem
from emulator.control.stack.pcscd import StackError, StackInfo, find_system_pcscd, pid_alive, read_pid
from emulator.control.stack.userns import userns_blockers
from emulator.profile import default_state_dir

if TYPE_CHECKING:
    from emulator.control.client.api import VCard

__all__ = ["Check", "run_doctor"]

VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_PORTS = (35963, 35964)


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    fix: str = ""
    warning: bool = False


def _tool(name: str, package: str) -> Check:
    found = shutil.which(name) or (Path(f"/usr/sbin/{name}").exists() and f"/usr/sbin/{name}")
    if found:
        return Check(True, f"{name} installed ({found})")
    return Check(False, f"{name} is not installed", f"apt-get install {package} (or run scripts/up)")


def _vpcd_config() -> Check:
    if not VPCD_DRIVER.exists():
        return Check(False, "vpcd driver missing", "apt-get install vsmartcard-vpcd (or run scripts/up)")
    unreadable = [str(p) for p in (VPCD_DRIVER, VPCD_CONF) if p.exists() and not os.access(p, os.R_OK)]
    if unreadable:  # a pcscd started without root (vcard up --user) reads them as you
        return Check(
            False, f"not readable by you: {', '.join(unreadable)}", f"as root: chmod a+r {' '.join(unreadable)}"
        )
    try:
        text = VPCD_CONF.read_text()
    except OSError:
        return Check(False, f"{VPCD_CONF} missing", "apt-get install --reinstall vsmartcard-vpcd")
    device = next((line.split()[1] for line in text.splitlines() if line.strip().startswith("DEVICENAME")), "")
    if device.startswith("/dev/null:"):
        return Check(True, f"vpcd in listen mode ({device}); vcard confines it to a network namespace")
    return Check(
        False,
        f"vpcd configured as {device!r}: reverse mode makes pcscd abort when no card process listens",
        f"set 'DEVICENAME /dev/null:0x8C7B' in {VPCD_CONF}",
    )


def _netns() -> Check:
    unshare = shutil.which("unshare")
    if unshare is None:
        return Check(False, "unshare missing", "apt-get install util-linux")
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True, text=True)
    if probe.returncode == 0:
        return Check(True, "network namespaces available (vpcd stays on loopback)")
    if os.geteuid() != 0:
        return Check(
            False,
            "this user cannot create a network namespace directly (that needs root)",
            "without root: vcard up --user (see the user namespace line)",
            warning=True,
        )
    return Check(
        False,
        "cannot create a network namespace (needs root or CAP_SYS_ADMIN)",
        "run as root, or in a container without other interfaces (docker: network_mode: none), "
        "or accept vpcd on 0.0.0.0 with: vcard up --vpcd-listen-any",
        warning=True,
    )


def _userns() -> Check:
    """``vcard up --user``: can this user make a user + network + mount namespace? If not, why and the fix."""
    blockers = userns_blockers()
    if not blockers:
        return Check(True, "user namespaces available: vcard up --user runs the stack without root")
    return Check(
        False,
        "user namespaces unavailable, vcard up --user cannot work: " + "; ".join(b.what for b in blockers),
        "; ".join(b.fix for b in blockers),
        warning=os.geteuid() == 0,  # root does not need them
    )


def _listening_ports() -> Check:
    """Nothing of vpcd's may listen on a non-loopback address of this namespace."""
    exposed = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state = parts[1], parts[3]
            addr, port = local.rsplit(":", 1)
            if state == "0A" and int(port, 16) in VPCD_PORTS and not _is_loopback(addr):
                exposed.append(int(port, 16))
    if exposed:
        return Check(
            False,
            f"vpcd listens on a non-loopback address here (ports {sorted(set(exposed))}): any host that reaches them can present a card",
            "stop that pcscd and let vcard start its own: vcard down; vcard up",
        )
    return Check(True, "no vpcd port listens on a non-loopback address in this namespace")


def _is_loopback(hex_addr: str) -> bool:
    if len(hex_addr) == 8:
        return hex_addr.endswith("7F")  # little-endian 127.x.x.x
    return hex_addr in ("00000000000000000000000001000000",) or (
        hex_addr.startswith("0000000000000000FFFF0000") and hex_addr.endswith("7F")
    )


def _runtime_dir(vc: VCard) -> Check:
    root = vc.paths.root
    problem = private_dir_problem(root)
    if problem is not None:
        what, _, fix = problem.partition("; ")
        return Check(False, what, fix)
    try:
        mode = stat.S_IMODE(root.stat().st_mode)
    except OSError:
        return Check(True, f"runtime directory {root} does not exist yet (vcard up creates it 0700)")
    if mode & 0o077:
        return Check(False, f"runtime directory {root} has mode {mode:o}, others can look inside", f"chmod 700 {root}")
    return Check(True, f"runtime directory {root} is yours alone (mode {mode:o})")


#: the files SQLite keeps beside a card's state file
STATE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _state_permissions(vc: VCard) -> list[Check]:
    """State files hold every secret of a card (keys, PIN, PUK): 0700 directories, 0600 files, ours."""
    dirs = {vc.state_dir or default_state_dir()}
    files: set[Path] = set()
    try:
        for slot in vc.status().slots:
            if slot.state_file:
                files.add(Path(slot.state_file))
                dirs.add(Path(slot.state_file).parent)
    except (OSError, StackError, ValueError, KeyError):
        pass
    for d in list(dirs):
        try:
            files.update(p for p in d.iterdir() if p.name.endswith(".sqlite"))
        except OSError:
            continue
    me = os.geteuid()
    checks: list[Check] = []
    for d in sorted(dirs):
        try:
            st = d.lstat()
        except OSError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid != me:
            checks.append(Check(False, f"state directory {d} is owned by uid {st.st_uid}, not you", f"chown {me} {d}"))
        elif mode & 0o077:
            checks.append(
                Check(False, f"state directory {d} has mode {mode:o}: others can reach card secrets", f"chmod 700 {d}")
            )
    for f in sorted(files):
        for extra in (Path(f"{f}{suffix}") for suffix in STATE_SUFFIXES):
            try:
                st = extra.lstat()
            except OSError:
                continue
            mode = stat.S_IMODE(st.st_mode)
            if st.st_uid != me:
                checks.append(
                    Check(False, f"state file {extra} is owned by uid {st.st_uid}, not you", f"chown {me} {extra}")
                )
            elif mode & 0o077:
                checks.append(
                    Check(
                        False,
                        f"state file {extra} has mode {mode:o}: others can read its keys and PINs",
                        f"chmod 600 {extra}",
                    )
                )
    if not checks:
        where = ", ".join(str(d) for d in sorted(dirs))
        checks.append(
            Check(True, f"card state private: {len(files)} state file(s) in {where}, mode 600 in 700 directories")
        )
    return checks


def _pcscd(vc: VCard) -> Check:
    try:
        info = StackInfo.load(vc.paths)
    except StackError as exc:
        return Check(False, str(exc), "see above")
    if info is not None and info.alive:
        return Check(True, f"pcscd running: pid {info.pcscd_pid}, mode {info.mode}, socket {info.pcscd_socket}")
    system = find_system_pcscd()
    if system is not None:
        return Check(
            True, f"a pcscd not started by vcard is running (pid {system}); vcard up attaches to it", warning=True
        )
    return Check(False, "pcscd is not running", "vcard up")


def _daemon(vc: VCard) -> Check:
    pid = read_pid(vc.paths.daemon_pid)
    if pid is None or not pid_alive(pid):
        return Check(False, "the vcard daemon is not running", "vcard up")
    sock = vc.paths.control_socket
    try:
        st = sock.stat()
    except OSError:
        return Check(False, f"daemon pid {pid} has no control socket {sock}", "vcard down; vcard up")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077 or st.st_uid != os.geteuid():
        return Check(False, f"control socket {sock} has mode {mode:o}, owner {st.st_uid}", f"chmod 600 {sock}")
    status = vc.status()
    unconnected = [s.slot for s in status.slots if s.present and not s.vpcd_connected]
    if unconnected:
        return Check(
            False,
            f"daemon pid {pid} is not connected to vpcd for slots {unconnected}",
            "is pcscd running with vsmartcard-vpcd? vcard down; vcard up",
        )
    return Check(True, f"daemon pid {pid}, control socket mode 600, every inserted card connected to vpcd")


def _pyscard() -> Check:
    try:
        import smartcard  # noqa: F401
    except ImportError:
        return Check(False, "pyscard is not importable", "run scripts/up (it installs the Python packages in .venv)")
    return Check(True, "pyscard importable")


def run_doctor(vc: VCard, *, out: Callable[[str], None] = print) -> bool:
    checks = [
        _tool("pcscd", "pcscd"),
        _vpcd_config(),
        _tool("ip", "iproute2"),
        _netns(),
        _userns(),
        _tool("pcsc_scan", "pcsc-tools"),
        _tool("opensc-tool", "opensc"),
        _pyscard(),
        _pcscd(vc),
        _daemon(vc),
        _listening_ports(),
        _runtime_dir(vc),
        *_state_permissions(vc),
    ]
    healthy = True
    for check in checks:
        mark = "ok  " if check.ok and not check.warning else "warn" if check.ok or check.warning else "FAIL"
        out(f"[{mark}] {check.what}")
        if check.fix and not check.ok:
            out(f"       fix: {check.fix}")
        healthy &= check.ok or check.warning
    return healthy
