"""Namespace plumbing (Linux): enter pcscd's namespaces, list interfaces.

Python 3.11 has no ``os.setns``; libc's ``setns(2)`` through ctypes does the
same. It must run before the daemon starts any thread, because a namespace
belongs to the calling thread and is inherited by threads it creates (and
``setns`` into a user namespace refuses a multithreaded caller: EINVAL).

Without root (``vcard up --user``), pcscd's network namespace belongs to a
user namespace of this user's: joining it needs CAP_SYS_ADMIN *there*, which
a process gets by entering that user namespace first (user_namespaces(7):
its owner has every capability in it). The daemon then drops them all: it
needs none to connect to vpcd on loopback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
from pathlib import Path

__all__ = [
    "NamespaceError",
    "enter_net_namespace",
    "non_loopback_interfaces",
    "same_namespace",
    "same_net_namespace",
]

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
#: capset(2) header version for 64-bit capability sets (two data structs)
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class NamespaceError(OSError):
    pass


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(libc: ctypes.CDLL, pid: int, kind: str, flag: int) -> None:
    fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)
    try:
        if libc.setns(fd, flag) != 0:
            err = ctypes.get_errno()
            raise NamespaceError(err, f"setns into the {kind} namespace of pid {pid}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """Empty the effective, permitted and inheritable sets of the calling thread (capset(2))."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise NamespaceError(err, f"dropping capabilities: {os.strerror(err)}")


def enter_net_namespace(pid: int) -> None:
    """Move the calling thread into the network namespace of process ``pid``.

    If ``pid`` lives in another user namespace (a pcscd started without
    root), enter that one first, then the network namespace, then give up
    the capabilities that came with it.
    """
    libc = _libc()
    other_user = not same_namespace(pid, "user")
    if other_user:
        _setns(libc, pid, "user", CLONE_NEWUSER)
    _setns(libc, pid, "net", CLONE_NEWNET)
    if other_user:
        _drop_capabilities(libc)


def same_namespace(pid: int, kind: str) -> bool:
    """Whether process ``pid`` shares this process's ``kind`` namespace (net, user, mnt, ...)."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino == os.stat(f"/proc/self/ns/{kind}").st_ino
    except OSError:
        return False


def same_net_namespace(pid: int) -> bool:
    return same_namespace(pid, "net")


def non_loopback_interfaces() -> list[str]:
    """Interfaces of the current namespace other than ``lo`` (up or down)."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = sorted(p.name for p in Path("/sys/class/net").iterdir())
    return [n for n in names if n != "lo"]
