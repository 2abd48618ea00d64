"""The `vcard status --json` document: every key always there, values as the Status says (sans-I/O)."""

from __future__ import annotations

import json

from emulator.control.client.api import SlotStatus, Status
from emulator.control.client.status_json import SCHEMA_VERSION, status_document
from emulator.control.stack.pcscd import StackInfo

KEYS = {"schema", "runtime_dir", "running", "daemon", "pcscd", "slots"}
SLOT_KEYS = {"slot", "reader", "present", "profile", "state_file", "vpcd_connected"}


def test_not_running_has_every_key_with_nulls() -> None:
    doc = status_document(Status(None, None), "/run/vcard")
    assert set(doc) == KEYS
    assert doc == {
        "schema": SCHEMA_VERSION,
        "runtime_dir": "/run/vcard",
        "running": False,
        "daemon": None,
        "pcscd": None,
        "slots": [],
    }


def test_running_stack_with_one_card() -> None:
    info = StackInfo("netns", 1, "/run/vcard/pcscd/pcscd.comm", owned=True)  # pid 1 is alive
    slots = [
        SlotStatus(0, True, "default", "/var/lib/vcard/default.sqlite", True, "Virtual PCD 00 00"),
        SlotStatus(1, False, None, None, False, None),
    ]
    doc = status_document(Status(4242, info, slots), "/run/vcard")
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only
    assert doc["running"] is True and doc["daemon"] == {"pid": 4242}
    assert doc["pcscd"] == {
        "pid": 1,
        "mode": "netns",
        "socket": "/run/vcard/pcscd/pcscd.comm",
        "alive": info.alive,
        "owned": True,
    }
    assert [set(s) for s in doc["slots"]] == [SLOT_KEYS, SLOT_KEYS]
    assert doc["slots"][0] == {
        "slot": 0,
        "reader": "Virtual PCD 00 00",
        "present": True,
        "profile": "default",
        "state_file": "/var/lib/vcard/default.sqlite",
        "vpcd_connected": True,
    }
    assert doc["slots"][1]["present"] is False and doc["slots"][1]["reader"] is None
