"""The control socket's messages, typed: frozen dataclasses shared by the daemon and its clients.

Each request is one class with an ``op`` name; each has one reply class. On
the wire (protocol.py: one JSON object per line) a request is
``{"v": 1, "op": "insert", "slot": 0, ...}`` and a reply
``{"v": 1, "ok": true, ...}`` or ``{"v": 1, "ok": false, "error": "..."}``.
Decoding is strict both ways: an unknown op or field, a missing field or a
value of the wrong type is a :class:`MessageError` naming it, and a message
of another protocol version is refused with what to do.

``subscribe`` is the one request that keeps its connection: after the
:class:`SubscribeReply` the daemon sends trace events (emulator/trace.py),
one JSON object per line with an ``event`` key, until the client closes (or
falls too far behind; then a ``note`` event says so and the daemon closes).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, Union

from emulator.trace import EVENT_TYPES, ApduEvent, CardEvent, FaultEvent, NoteEvent, TraceEvent

__all__ = [
    "PROTOCOL_VERSION",
    "REPLIES",
    "REQUESTS",
    "FaultAdd",
    "FaultAddReply",
    "FaultClear",
    "FaultClearReply",
    "FaultInfo",
    "FaultList",
    "FaultListReply",
    "Insert",
    "InsertReply",
    "MessageError",
    "Ping",
    "PingReply",
    "Remove",
    "RemoveReply",
    "Renew",
    "RenewReply",
    "Reply",
    "Request",
    "Shutdown",
    "ShutdownReply",
    "SlotState",
    "Status",
    "StatusReply",
    "Subscribe",
    "SubscribeReply",
    "Trace",
    "TraceReply",
    "build",
    "decode_event",
    "decode_reply",
    "decode_request",
    "encode",
    "encode_error",
    "encode_event",
]

#: bumped when a message changes incompatibly; both ends must agree
PROTOCOL_VERSION = 1

T = TypeVar("T")


class MessageError(ValueError):
    """A message that does not fit its type; the text names the field."""


# -- requests -------------------------------------------------------------------------
@dataclass(frozen=True)
class Ping:
    op: ClassVar[str] = "ping"


@dataclass(frozen=True)
class Status:
    op: ClassVar[str] = "status"


@dataclass(frozen=True)
class Insert:
    op: ClassVar[str] = "insert"
    slot: int = 0
    profile: str | None = None
    fresh: bool = False
    state_dir: str | None = None


@dataclass(frozen=True)
class Remove:
    op: ClassVar[str] = "remove"
    slot: int = 0
    tear: bool = False


@dataclass(frozen=True)
class Renew:
    """A new card from ``profile`` in place of the slot's card, with no removal pcscd would see.

    The vpcd link stays; the host sees the new card after it resets it (the
    pytest fixture's fast fresh card). The state file must be another one.
    """

    op: ClassVar[str] = "renew"
    slot: int = 0
    profile: str | None = None
    state_dir: str | None = None


@dataclass(frozen=True)
class Shutdown:
    op: ClassVar[str] = "shutdown"


@dataclass(frozen=True)
class Trace:
    """The recent events the daemon still holds (its ring buffer), oldest first."""

    op: ClassVar[str] = "trace"
    slot: int | None = None  #: None: every slot
    last: int | None = None  #: the last N only
    after: int = 0  #: only events with a larger seq (e.g. since a test started)
    reveal: bool = False  #: secrets in clear; logged by the daemon with the peer's uid


@dataclass(frozen=True)
class Subscribe:
    """Keep the connection and stream events; the ``last`` recent ones first."""

    op: ClassVar[str] = "subscribe"
    slot: int | None = None
    last: int = 0
    reveal: bool = False


@dataclass(frozen=True)
class FaultAdd:
    """A fault for ``slot`` (emulator/faults.py says what each kind does)."""

    op: ClassVar[str] = "fault_add"
    kind: str
    slot: int = 0
    ins: int | None = None
    cla: int | None = None
    p1: int | None = None
    applet: str | None = None
    count: int | None = 1
    skip: int = 0
    sw: int | None = None
    delay_ms: int = 0
    atr: str | None = None  #: hex
    when: str = "before"


@dataclass(frozen=True)
class FaultList:
    op: ClassVar[str] = "fault_list"
    slot: int | None = None


@dataclass(frozen=True)
class FaultClear:
    op: ClassVar[str] = "fault_clear"
    slot: int | None = None
    id: str | None = None  #: None: every fault (of ``slot``, or of every slot)


Request = Union[Ping, Status, Insert, Remove, Renew, Shutdown, Trace, Subscribe, FaultAdd, FaultList, FaultClear]  # noqa: UP007
REQUESTS: dict[str, type[Any]] = {
    cls.op: cls
    for cls in (Ping, Status, Insert, Remove, Renew, Shutdown, Trace, Subscribe, FaultAdd, FaultList, FaultClear)
}


# -- replies --------------------------------------------------------------------------
@dataclass(frozen=True)
class PingReply:
    pid: int


@dataclass(frozen=True)
class SlotState:
    slot: int
    present: bool
    profile: str | None
    state_file: str | None
    vpcd_connected: bool
    vpcd_port: int


@dataclass(frozen=True)
class StatusReply:
    pid: int
    uptime: float
    slots: tuple[SlotState, ...]


@dataclass(frozen=True)
class InsertReply:
    slot: int
    profile: str
    state_file: str
    set_aside: str | None


@dataclass(frozen=True)
class RemoveReply:
    slot: int
    torn: bool


@dataclass(frozen=True)
class RenewReply:
    slot: int
    profile: str
    state_file: str


@dataclass(frozen=True)
class ShutdownReply:
    pid: int


@dataclass(frozen=True)
class TraceReply:
    events: tuple[TraceEvent, ...]
    last_seq: int  #: the newest seq the daemon has numbered (a start mark for ``after``)
    revealed: bool


@dataclass(frozen=True)
class SubscribeReply:
    slot: int | None
    revealed: bool


@dataclass(frozen=True)
class FaultInfo:
    id: str
    slot: int
    kind: str
    description: str
    fired: int
    remaining: int | None  #: firings left; None: until cleared


@dataclass(frozen=True)
class FaultAddReply:
    fault: FaultInfo


@dataclass(frozen=True)
class FaultListReply:
    faults: tuple[FaultInfo, ...]


@dataclass(frozen=True)
class FaultClearReply:
    cleared: int


Reply = Union[  # noqa: UP007
    PingReply,
    StatusReply,
    InsertReply,
    RemoveReply,
    RenewReply,
    ShutdownReply,
    TraceReply,
    SubscribeReply,
    FaultAddReply,
    FaultListReply,
    FaultClearReply,
]
REPLIES: dict[str, type[Any]] = {
    "ping": PingReply,
    "status": StatusReply,
    "insert": InsertReply,
    "remove": RemoveReply,
    "renew": RenewReply,
    "shutdown": ShutdownReply,
    "trace": TraceReply,
    "subscribe": SubscribeReply,
    "fault_add": FaultAddReply,
    "fault_list": FaultListReply,
    "fault_clear": FaultClearReply,
}


# -- encoding ---------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        kind = getattr(type(value), "event", None)
        if isinstance(kind, str):
            out["event"] = kind
        return out
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def encode(message: Any) -> dict[str, Any]:
    """A request or reply as the JSON object to send."""
    out: dict[str, Any] = {"v": PROTOCOL_VERSION}
    op = getattr(type(message), "op", None)
    if isinstance(op, str):
        out["op"] = op
    else:
        out["ok"] = True
    out.update(_plain(message))
    return out


def encode_error(text: str) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "ok": False, "error": text}


#: field names per event type: events are flat (tuples of strings at most), so no recursion is needed
_EVENT_FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in (ApduEvent, CardEvent, FaultEvent, NoteEvent)
}


def encode_event(event: TraceEvent) -> dict[str, Any]:
    """An event as the JSON object to send (``event`` names its type); tuples go out as lists."""
    out = {name: getattr(event, name) for name in _EVENT_FIELDS[type(event)]}
    out["event"] = event.event
    return out


# -- strict decoding -------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "an object"
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list"
    names = {int: "an integer", str: "a string", bool: "true or false", float: "a number"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if args and all(dataclasses.is_dataclass(a) and hasattr(a, "event") for a in args if a is not type(None)):
            return _event(value, where)
        for arg in args:
            try:
                return _convert(arg, value, where)
            except MessageError:
                continue
        raise MessageError(f"{where} must be {_type_name(tp)}, got {_json_type(value)}")
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list | tuple):  # JSON gives lists; an in-process message may hold tuples
            raise MessageError(f"{where} must be a list, got {_json_type(value)}")
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise MessageError(f"{where} must be an object, got {_json_type(value)}")
        return build(tp, value, where)
    if tp is type(None):
        if value is not None:
            raise MessageError(f"{where} must be null, got {_json_type(value)}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise MessageError(f"{where} must be true or false, got {_json_type(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MessageError(f"{where} must be an integer, got {_json_type(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MessageError(f"{where} must be a number, got {_json_type(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise MessageError(f"{where} must be a string, got {_json_type(value)}")
        return value
    raise TypeError(f"no decoder for {tp!r}")  # pragma: no cover - a message class uses an unsupported type


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__) + (
        f" {value!r}" if isinstance(value, bool | int | float | str) and len(repr(value)) < 40 else ""
    )


def build(cls: type[T], data: dict[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise MessageError(f"unknown field {unknown[0]!r} in {where}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise MessageError(f"missing field {name!r} in {where}")
            continue
        kwargs[name] = _convert(hints[name], data[name], f"field {name!r} of {where}")
    return cls(**kwargs)


def _event(value: Any, where: str) -> TraceEvent:
    if not isinstance(value, dict):
        raise MessageError(f"{where} must be an event object, got {_json_type(value)}")
    body = dict(value)
    kind = body.pop("event", None)
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageError(f"{where}: unknown event {kind!r}")
    event: TraceEvent = build(cls, body, f"{kind} event")
    return event


def _check_version(message: dict[str, Any]) -> None:
    version = message.get("v")
    if version != PROTOCOL_VERSION:
        said = "no protocol version" if version is None else f"protocol version {version!r}"
        raise MessageError(
            f"{said}; this end speaks version {PROTOCOL_VERSION} (the CLI and the daemon differ: vcard down, then vcard up)"
        )


def decode_request(message: dict[str, Any]) -> Request:
    _check_version(message)
    body = {k: v for k, v in message.items() if k not in ("v", "op")}
    op = message.get("op")
    cls = REQUESTS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise MessageError(f"unknown operation {op!r}")
    request: Request = build(cls, body, f"request {op!r}")
    return request


def decode_reply(op: str, message: dict[str, Any]) -> Reply | str:
    """The typed reply to ``op``, or the daemon's error text (a refused request)."""
    _check_version(message)
    ok = message.get("ok")
    if ok is False:
        error = message.get("error")
        if not isinstance(error, str) or set(message) - {"v", "ok", "error"}:
            raise MessageError("an error reply must be {v, ok: false, error: text}")
        return error
    if ok is not True:
        raise MessageError(f"field 'ok' of the reply to {op!r} must be true or false")
    body = {k: v for k, v in message.items() if k not in ("v", "ok")}
    reply: Reply = build(REPLIES[op], body, f"reply to {op!r}")
    return reply


def decode_event(message: dict[str, Any]) -> TraceEvent:
    return _event(message, "stream")
