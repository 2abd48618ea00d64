"""Where the running stack keeps its sockets, pid files and logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SYSTEM_PCSCD_DIR", "SYSTEM_PCSCD_SOCKET", "RuntimePaths", "default_runtime_dir", "pcscd_client_env"]

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
