"""Low-level client of the daemon's control socket."""

from __future__ import annotations

import socket
from typing import Any

from .paths import RuntimePaths
from .protocol import recv_message, send_message

__all__ = ["ControlClient", "DaemonNotRunning", "RequestFailed"]


class DaemonNotRunning(Exception):
    """No daemon answers on the control socket."""


class RequestFailed(Exception):
    """The daemon refused a request; the message is one line for the user."""


class ControlClient:
    def __init__(self, paths: RuntimePaths, *, timeout: float = 10.0) -> None:
        self.paths = paths
        self.timeout = timeout

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(str(self.paths.control_socket))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonNotRunning(
                    f"the vcard daemon is not running at {self.paths.root} (start it: vcard up)"
                ) from exc
            send_message(sock, {"op": op, **fields})
            reply = recv_message(sock, bytearray())
        finally:
            sock.close()
        if reply is None:
            raise RequestFailed("the daemon closed the connection without answering")
        if not reply.get("ok"):
            raise RequestFailed(str(reply.get("error", "request failed")))
        return reply
