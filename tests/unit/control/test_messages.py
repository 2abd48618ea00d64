"""Control messages: typed both ways, strict (unknown field / wrong type / other version = an error naming it)."""

from __future__ import annotations

import json

import pytest

from emulator.control import messages as m
from emulator.trace import ApduEvent, CardEvent, FaultEvent, NoteEvent


def roundtrip_request(request: m.Request) -> m.Request:
    return m.decode_request(json.loads(json.dumps(m.encode(request))))


@pytest.mark.parametrize(
    "request_",
    [
        m.Ping(),
        m.Status(),
        m.Insert(slot=1, profile="default", fresh=True, state_dir="/tmp/x"),
        m.Remove(slot=0, tear=True),
        m.Shutdown(),
        m.Trace(slot=None, last=5, after=3, reveal=True),
        m.Subscribe(slot=1, last=10),
        m.FaultAdd(kind="sw", ins=0xA4, sw=0x6A82, count=None),
        m.FaultList(),
        m.FaultClear(slot=0, id="f1"),
    ],
)
def test_every_request_survives_the_wire(request_: m.Request) -> None:
    wire = m.encode(request_)
    assert wire["v"] == m.PROTOCOL_VERSION and wire["op"] == type(request_).op
    assert roundtrip_request(request_) == request_


def test_replies_with_nested_values_and_events_survive_the_wire() -> None:
    status = m.StatusReply(1, 2.5, (m.SlotState(0, True, "default", "/s", True, 35963),))
    assert m.decode_reply("status", json.loads(json.dumps(m.encode(status)))) == status
    events = (
        ApduEvent(0, 0, "piv", 0, 0x20, 0, 0x80, "VERIFY", 0x9000, "OK", 8, 0, 0.1, "", None, "", ("command_data",)),
        CardEvent(0, "insert", seq=2, time=1.0),
        FaultEvent(1, "f1", "tear", "x"),
        NoteEvent(0, "dropped"),
    )
    reply = m.TraceReply(events, 9, False)
    back = m.decode_reply("trace", json.loads(json.dumps(m.encode(reply))))
    assert back == reply
    assert m.decode_event(m.encode_event(events[0])) == events[0]


@pytest.mark.parametrize(
    ("wire", "needle"),
    [
        ({"v": 1, "op": "insert", "slot": "0"}, "field 'slot' of request 'insert' must be an integer, got a string"),
        ({"v": 1, "op": "insert", "slot": True}, "must be an integer, got a boolean"),
        ({"v": 1, "op": "remove", "tear": 1}, "field 'tear' of request 'remove' must be true or false"),
        ({"v": 1, "op": "insert", "profil": "x"}, "unknown field 'profil' in request 'insert'"),
        ({"v": 1, "op": "fault_add"}, "missing field 'kind' in request 'fault_add'"),
        ({"v": 1, "op": "trace", "last": 1.5}, "field 'last' of request 'trace' must be an integer or null"),
        ({"v": 1, "op": "launch"}, "unknown operation 'launch'"),
        ({"v": 1}, "unknown operation None"),
        ({"op": "ping"}, "no protocol version"),
        ({"v": 2, "op": "ping"}, "protocol version 2"),
        ({"v": "1", "op": "ping"}, "protocol version '1'"),
    ],
)
def test_bad_requests_name_what_is_wrong(wire: dict, needle: str) -> None:
    with pytest.raises(m.MessageError) as info:
        m.decode_request(wire)
    assert needle in str(info.value)


def test_error_replies_and_malformed_replies() -> None:
    assert m.decode_reply("ping", m.encode_error("no such slot")) == "no such slot"
    with pytest.raises(m.MessageError, match="unknown field 'extra'"):
        m.decode_reply("ping", {"v": 1, "ok": True, "pid": 1, "extra": 0})
    with pytest.raises(m.MessageError, match="missing field 'pid'"):
        m.decode_reply("ping", {"v": 1, "ok": True})
    with pytest.raises(m.MessageError, match="'ok'"):
        m.decode_reply("ping", {"v": 1, "pid": 1})
    with pytest.raises(m.MessageError, match="unknown event 'bogus'"):
        m.decode_event({"event": "bogus", "slot": 0})
    with pytest.raises(m.MessageError, match="field 'kind' of card event must be a string"):
        m.decode_event({"event": "card", "slot": 0, "kind": 3})


def test_every_op_has_a_reply_type() -> None:
    assert set(m.REQUESTS) == set(m.REPLIES)
