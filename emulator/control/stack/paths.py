"""Where the running stack keeps its sockets, pid files and logs.

Without ``XDG_RUNTIME_DIR`` a user's runtime directory is a predictable path
under /tmp, which another user could create first and fill with their own
``stack.json``. So a runtime (or default state) directory is used only when
:func:`private_dir_problem` finds nothing wrong: a real directory (not a
symlink), owned by this user, writable by nobody else; vcard creates it 0700.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SYSTEM_PCSCD_DIR",
    "SYSTEM_PCSCD_SOCKET",
    "RuntimePaths",
    "default_runtime_dir",
    "ensure_private_dir",
    "pcscd_client_env",
    "private_dir_problem",
    "private_file_problem",
]

SYSTEM_PCSCD_DIR = Path("/run/pcscd")
#: where libpcsclite looks when PCSCLITE_CSOCK_NAME is not set
SYSTEM_PCSCD_SOCKET = SYSTEM_PCSCD_DIR / "pcscd.comm"


def pcscd_client_env(socket: str | Path | None) -> dict[str, str]:
    """What a PC/SC client's environment needs to reach the pcscd at ``socket``."""
    if socket is None or Path(socket) == SYSTEM_PCSCD_SOCKET:
        return {}
    return {"PCSCLITE_CSOCK_NAME": str(socket)}


def default_runtime_dir() -> Path:
    env = os.environ.get("VCARD_RUNTIME_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/vcard")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return Path(xdg) / "vcard" if xdg else Path(f"/tmp/vcard-{os.geteuid()}")


def private_dir_problem(path: Path, *, what: str = "runtime directory") -> str | None:
    """One line saying why ``path`` must not be trusted, or None if it is this user's alone."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{what} {path} cannot be checked ({exc.strerror}); choose another one"
    me = os.geteuid()
    fix = "remove it (it may have been planted by another user) or choose another one"
    if stat.S_ISLNK(st.st_mode):
        return f"{what} {path} is a symlink; {fix}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{what} {path} is not a directory; {fix}"
    if st.st_uid != me:
        return f"{what} {path} is owned by uid {st.st_uid}, not by you (uid {me}); {fix}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} {path} is writable by others (mode {stat.S_IMODE(st.st_mode):o}); run: chmod 700 {path}"
    return None


def private_file_problem(path: Path) -> str | None:
    """Why a file vcard reads from its runtime directory (stack.json, daemon.pid) is not its own."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path} cannot be checked ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file; remove it"
    if st.st_uid != os.geteuid():
        return f"{path} is owned by uid {st.st_uid}, not by you; remove it (it may have been planted)"
    return None


def ensure_private_dir(path: Path, *, what: str = "runtime directory") -> str | None:
    """Create ``path`` 0700 if missing (parents as usual); None if it is then safe, else the problem."""
    try:
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)  # whatever the umask; we just made it, nobody else can have it open
    except FileExistsError:
        pass
    except FileNotFoundError as missing:
        if path.parent.is_dir():
            # the parent exists and mkdir still says ENOENT (/proc, a dangling mount): retrying
            # would loop forever
            return f"cannot create {what} {path} ({missing.strerror}); choose another one"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"cannot create {what} {path} ({exc.strerror}); choose another one"
        return ensure_private_dir(path, what=what)
    except OSError as exc:
        return f"cannot create {what} {path} ({exc.strerror}); choose another one"
    return private_dir_problem(path, what=what)


@dataclass(frozen=True)
class RuntimePaths:
    root: Path

    @classmethod
    def default(cls) -> RuntimePaths:
        return cls(default_runtime_dir())

    @property
    def control_socket(self) -> Path:
        return self.root / "control.sock"

    @property
    def daemon_pid(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def pcscd_log(self) -> Path:
        return self.root / "pcscd.log"

    @property
    def stack_file(self) -> Path:
        """JSON: how pcscd was started (mode, pid, socket) by ``vcard up``."""
        return self.root / "stack.json"

    @property
    def private_pcscd_dir(self) -> Path:
        return self.root / "pcscd"
