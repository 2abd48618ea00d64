"""Low-level client of the daemon's control socket: typed requests, typed replies, event streams."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from typing import Any, TypeVar

from emulator.control import messages as m
from emulator.control.protocol import ProtocolError, recv_message, send_message
from emulator.control.stack.paths import RuntimePaths
from emulator.trace import TraceEvent

__all__ = ["ControlClient", "DaemonNotRunning", "EventStream", "RequestFailed"]

R = TypeVar("R")


class DaemonNotRunning(Exception):
    """No daemon answers on the control socket."""


class RequestFailed(Exception):
    """The daemon refused a request; the message is one line for the user."""


class ControlClient:
    def __init__(self, paths: RuntimePaths, *, timeout: float = 10.0) -> None:
        self.paths = paths
        self.timeout = timeout

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request by name, one reply as a dict (``{"ok": True, ...}``); see :meth:`call`."""
        cls = m.REQUESTS.get(op)
        if cls is None:
            raise RequestFailed(f"unknown operation {op!r}")
        try:
            request = m.build(cls, fields, f"request {op!r}")
        except m.MessageError as exc:
            raise RequestFailed(str(exc)) from None
        reply = self.call(request)
        return {"ok": True, **{f.name: _plain(getattr(reply, f.name)) for f in dataclasses.fields(reply)}}

    def call(self, request: m.Request) -> Any:
        """One typed request, its typed reply; every way it can fail is one of this module's exceptions."""
        sock = self._connect()
        try:
            return self._exchange(sock, request, bytearray())
        finally:
            sock.close()

    def subscribe(self, *, slot: int | None = None, last: int = 0, reveal: bool = False) -> EventStream:
        """Stream trace events until the stream is closed (use it as a context manager)."""
        sock = self._connect()
        buf = bytearray()
        try:
            reply = self._exchange(sock, m.Subscribe(slot=slot, last=last, reveal=reveal), buf)
        except BaseException:
            sock.close()
            raise
        return EventStream(sock, buf, reply)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        where = self.paths.control_socket
        try:
            sock.connect(str(where))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise DaemonNotRunning(
                f"the vcard daemon is not running at {self.paths.root} (start it: vcard up)"
            ) from exc
        except OSError as exc:  # not a directory, permission denied, name too long ...
            sock.close()
            raise DaemonNotRunning(f"cannot reach the vcard daemon at {where}: {exc.strerror or exc}") from exc
        return sock

    def _exchange(self, sock: socket.socket, request: m.Request, buf: bytearray) -> Any:
        op = type(request).op
        try:
            send_message(sock, m.encode(request))
            raw = recv_message(sock, buf)
        except TimeoutError:
            raise RequestFailed(f"the daemon did not answer {op!r} within {self.timeout:g} s") from None
        except (OSError, ProtocolError) as exc:
            raise RequestFailed(f"the daemon broke off {op!r}: {exc}") from None
        if raw is None:
            raise RequestFailed("the daemon closed the connection without answering")
        try:
            reply = m.decode_reply(op, raw)
        except m.MessageError as exc:
            raise RequestFailed(f"the daemon's reply to {op!r} is malformed: {exc}") from None
        if isinstance(reply, str):
            raise RequestFailed(reply)
        return reply


class EventStream:
    """Events of a subscription, as they come; iterate, or ``next_event(timeout)``."""

    def __init__(self, sock: socket.socket, buf: bytearray, reply: m.SubscribeReply) -> None:
        self.sock = sock
        self.buf = buf
        self.reply = reply
        self.closed = False

    def next_event(self, timeout: float | None = None) -> TraceEvent | None:
        """The next event; None at the end of the stream or when ``timeout`` passes first."""
        if self.closed:
            return None
        self.sock.settimeout(timeout)
        try:
            raw = recv_message(self.sock, self.buf)
        except TimeoutError:
            return None
        except (OSError, ProtocolError) as exc:
            self.close()
            raise RequestFailed(f"the event stream broke off: {exc}") from None
        if raw is None:
            self.close()
            return None
        try:
            return m.decode_event(raw)
        except m.MessageError as exc:
            self.close()
            raise RequestFailed(f"the daemon sent a malformed event: {exc}") from None

    def __iter__(self) -> Iterator[TraceEvent]:
        while (event := self.next_event(None)) is not None:
            yield event

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
