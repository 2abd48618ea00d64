"""Network namespace plumbing (Linux): enter pcscd's namespace, list interfaces.

Python 3.11 has no ``os.setns``; libc's ``setns(2)`` through ctypes does the
same. It must run before the daemon starts any thread, because a namespace
belongs to the calling thread and is inherited by threads it creates.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
from pathlib import Path

__all__ = ["NamespaceError", "enter_net_namespace", "non_loopback_interfaces", "same_net_namespace"]

CLONE_NEWNET = 0x40000000


class NamespaceError(OSError):
    pass


def enter_net_namespace(pid: int) -> None:
    """Move the calling thread into the network namespace of process ``pid``."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NamespaceError(err, f"setns into the network namespace of pid {pid}: {os.strerror(err)}")
    finally:
        os.close(fd)


def same_net_namespace(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False


def non_loopback_interfaces() -> list[str]:
    """Interfaces of the current namespace other than ``lo`` (up or down)."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = sorted(p.name for p in Path("/sys/class/net").iterdir())
    return [n for n in names if n != "lo"]
