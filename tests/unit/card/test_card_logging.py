"""Secrets stay out of logs: APDUs only at TRAFFIC, and even there redacted."""

from __future__ import annotations

import logging

import pytest

from emulator.factory import build_card
from emulator.logutil import TRAFFIC
from emulator.profile import load_profile
from emulator.store import MemoryStore

SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
PIN = "123456"
VERIFY = bytes.fromhex("0020008008") + PIN.encode() + b"\xff\xff"
CHANGE = bytes.fromhex("0024008010") + PIN.encode() + b"\xff\xff" + b"654321\xff\xff"
INIT_UPDATE = bytes.fromhex("8050000008" + "0102030405060708" + "00")


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG, TRAFFIC])
def test_no_pin_or_cryptogram_reaches_any_log_record(caplog: pytest.LogCaptureFixture, level: int) -> None:
    caplog.set_level(level)
    card = build_card(load_profile(), MemoryStore())
    card.power_on()
    assert card.transmit(SELECT_PIV)[-2:] == b"\x90\x00"
    assert card.transmit(VERIFY) == b"\x90\x00"
    assert card.transmit(CHANGE) == b"\x90\x00"
    card.transmit(bytes.fromhex("00A4040008A000000151000000"))
    iu = card.transmit(INIT_UPDATE)
    assert iu[-2:] == b"\x90\x00"
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (PIN, "654321", PIN.encode().hex(), "313233343536", iu[12:28].hex(), iu[12:28].hex(" ").upper()):
        assert secret.lower() not in text.lower()
    if level == TRAFFIC:
        # traffic is logged, the PIN is not (redaction declared in PIV's command table: tests/unit/card/test_trace_events.py)
        assert "=> ch0 VERIFY 00 20 00 80 [8 bytes redacted]" in text
