"""Low-level client of the daemon's control socket."""

from __future__ import annotations

import socket
from typing import Any

from .paths import RuntimePaths
from .protocol import ProtocolError, recv_message, send_message

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
        """One request, one reply; every way it can fail is one of this module's exceptions."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        where = self.paths.control_socket
        try:
            try:
                sock.connect(str(where))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonNotRunning(
                    f"the vcard daemon is not running at {self.paths.root} (start it: vcard up)"
                ) from exc
            except OSError as exc:  # not a directory, permission denied, name too long ...
                raise DaemonNotRunning(f"cannot reach the vcard daemon at {where}: {exc.strerror or exc}") from exc
            try:
                send_message(sock, {"op": op, **fields})
                reply = recv_message(sock, bytearray())
            except TimeoutError:
                raise RequestFailed(f"the daemon did not answer {op!r} within {self.timeout:g} s") from None
            except (OSError, ProtocolError) as exc:
                raise RequestFailed(f"the daemon broke off {op!r}: {exc}") from None
        finally:
            sock.close()
        if reply is None:
            raise RequestFailed("the daemon closed the connection without answering")
        if not reply.get("ok"):
            raise RequestFailed(str(reply.get("error", "request failed")))
        return reply
