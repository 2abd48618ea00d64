"""The control socket's wire format: one JSON object per line, each way.

Request: ``{"v": 1, "op": "insert", "slot": 0, "profile": "default", "fresh": false}``.
Reply: ``{"v": 1, "ok": true, ...}`` or ``{"v": 1, "ok": false, "error": "one line for a human"}``.
What each object may hold is typed in :mod:`.messages`; this module only frames.
A ``subscribe`` request keeps the connection: event lines follow its reply.
"""

from __future__ import annotations

import json
import socket
from typing import Any

__all__ = ["MAX_LINE", "ProtocolError", "recv_message", "send_message"]

MAX_LINE = 1 << 20


class ProtocolError(Exception):
    pass


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, sort_keys=True).encode() + b"\n")


def recv_message(sock: socket.socket, buf: bytearray) -> dict[str, Any] | None:
    """Read one line (None at EOF before any byte); ``buf`` keeps leftovers."""
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            if buf:
                raise ProtocolError("connection closed in the middle of a message")
            return None
        buf += chunk
        if len(buf) > MAX_LINE:
            raise ProtocolError("message too long")
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    try:
        message = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message
