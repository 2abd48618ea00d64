"""The demo's screen and transcript lines, from snapshots (sans-I/O)."""

from __future__ import annotations

import re

from emulator.demo.app import ApduRecord, Event, Phase, ReaderLine, Snapshot
from emulator.demo.view import format_event, render

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ATR = bytes.fromhex("3B8B0180730000C0657663617264BE")


def snapshot(**changes: object) -> Snapshot:
    base: dict[str, object] = {
        "reader": "Virtual PCD 00 00",
        "phase": Phase.UNLOCKED,
        "detail": "9A key proven: CN=test",
        "readers": (ReaderLine("Virtual PCD 00 00", True, ATR), ReaderLine("Virtual PCD 00 01", False, b"")),
        "apdus": tuple(
            ApduRecord(1.0 + i, "00 87 11 9A", "GENERAL AUTHENTICATE", 38, "9000 (OK)", 0.5) for i in range(10)
        ),
        "events": tuple(Event(0.1 * i, "sign", f"signature {i} verified (1.0 ms)") for i in range(100)),
        "signatures": 100,
        "signing": True,
    }
    base.update(changes)
    return Snapshot(**base)  # type: ignore[arg-type]


def test_screen_fits_the_terminal_and_shows_the_state() -> None:
    for width, height in ((80, 24), (100, 34), (40, 12)):
        lines = render(snapshot(), width, height)
        assert len(lines) == height
        assert all(len(ANSI.sub("", line)) <= max(40, width) for line in lines), width
    text = "\n".join(ANSI.sub("", line) for line in render(snapshot(), 100, 34))
    assert "SESSION UNLOCKED" in text and "signature loop running" in text
    assert "● Virtual PCD 00 00    card present  ATR 3B 8B 01 80 73 00 00 C0 65 76 63 61 72 64 BE  ← this app" in text
    assert "signature 99 verified" in text  # the newest events are the ones shown


def test_locked_screen_names_the_cause_and_plain_has_no_escapes() -> None:
    snap = snapshot(phase=Phase.LOCKED, detail="insert the card", lock_cause="pcscd reported the card removed")
    plain = render(snap, 80, 24, color=False)
    assert not any("\x1b" in line for line in plain)
    assert any("SESSION LOCKED: CARD REMOVED" in line for line in plain)
    assert any("last lock: pcscd reported the card removed" in line for line in plain)


def test_card_side_apdus_shown_while_current_app_side_otherwise() -> None:
    card = (ApduRecord(9.9, "00 20 00 80", "VERIFY", 8, "9000 (OK)", 0.2, note="piv, secret redacted"),)
    current = "\n".join(render(snapshot(card_apdus=card, card_trace=True), 120, 40, color=False))
    assert "as the card saw them" in current and "secret redacted" in current
    stale = (ApduRecord(1.0, "00 20 00 80", "VERIFY", 8, "9000 (OK)", 0.2, note="piv"),)
    behind = "\n".join(render(snapshot(card_apdus=stale, card_trace=True), 120, 40, color=False))
    assert "app side; command data hidden" in behind


def test_transcript_line_format() -> None:
    assert format_event(Event(3.4567, "state", "LOCKED (x)")) == "   3.457  state   LOCKED (x)"
