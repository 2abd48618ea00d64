"""The demo's terminal views: a live screen (ANSI redraw) on a terminal, plain lines elsewhere.

:class:`LiveView` redraws the whole screen from a :class:`~emulator.demo.app.Snapshot`
(alternate screen, cursor home, each line cleared): plain ANSI, so it works in
any terminal and in tmux, and ``tmux capture-pane -e`` keeps its colours.
:class:`PlainView` prints one line per event, for pipes, logs and tests::

      3.412  state   LOCKED (insert the card ...)
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
from typing import TextIO

from .app import Event, Phase, Snapshot

__all__ = ["LiveView", "PlainView", "format_event", "render"]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
PHASE_STYLE = {
    Phase.WAITING: "\x1b[30;43m",  # black on yellow
    Phase.PIN_REQUIRED: "\x1b[30;46m",  # black on cyan
    Phase.CHECKING: "\x1b[30;46m",
    Phase.UNLOCKED: "\x1b[30;42m",  # black on green
    Phase.LOCKED: "\x1b[97;41m",  # white on red
}
KIND_STYLE = {"state": BOLD, "card": "\x1b[33m", "sign": "\x1b[32m", "script": "\x1b[36m", "info": ""}
FRAME = 0.05  #: at most 20 redraws a second
STALE = 1.0  #: seconds the card-side trace may lag the app's own log before the view falls back to it


def format_event(ev: Event) -> str:
    """The transcript line of one event (what :class:`PlainView` prints)."""
    return f"{ev.at:8.3f}  {ev.kind:<6}  {ev.text}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def render(snap: Snapshot, width: int = 80, height: int = 24, *, color: bool = True) -> list[str]:
    """The screen as lines of at most ``width`` visible characters (ANSI styles when ``color``)."""

    def style(code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if color else text

    w = max(40, width)
    lines: list[str] = []
    title = "vcard demo · a PC/SC application beside the virtual card"
    clock = f"{snap.elapsed:6.1f} s"
    lines.append(style(BOLD, _fit(title, w - len(clock) - 1).ljust(w - len(clock)) + clock))
    lines.append(style(DIM, "─" * w))
    lines.append(style(BOLD, "Readers (as pcscd reports them)"))
    for r in snap.readers or ():
        mark = "●" if r.present else "○"
        atr = f"ATR {r.atr.hex(' ').upper()}" if r.present and r.atr else ""
        what = "card present" if r.present else "empty"
        mine = "  ← this app" if r.name == snap.reader else ""
        row = _fit(f"  {mark} {r.name:<20} {what:<13} {atr}{mine}", w)
        lines.append(style("\x1b[32m" if r.present else DIM, row) if color else row)
    lines.append("")
    banner = f"  {snap.phase.value.upper()}  "
    lines.append(style(BOLD, "Application") + "  " + style(PHASE_STYLE[snap.phase] + BOLD, banner))
    lines.append(_fit(f"  {snap.detail}", w))
    if snap.pin_entry is not None:
        lines.append(f"  PIN: {'*' * snap.pin_entry}_   (Enter: unlock)")
    sig = f"  signatures verified: {snap.signatures}" + ("   [signature loop running]" if snap.signing else "")
    lines.append(sig)
    if snap.lock_cause:
        lines.append(_fit(f"  last lock: {snap.lock_cause}", w))
    lines.append("")
    if _card_side_current(snap):
        lines.append(
            style(BOLD, "Last APDUs") + style(DIM, "  (as the card saw them: the daemon's trace, secrets redacted)")
        )
        apdus = snap.card_apdus
    else:
        lines.append(style(BOLD, "Last APDUs") + style(DIM, "  (app side; command data hidden)"))
        apdus = snap.apdus
    for a in apdus[-6:]:
        ok = a.sw.startswith(("9000", "61"))
        sw = style("\x1b[32m" if ok else "\x1b[31m", f"{_fit(a.sw, 18):<18}")
        head = f"  {a.header}  {_fit(a.name, 22):<22} Lc={a.lc:<3} "
        tail = f" {a.ms:5.1f} ms"
        room = w - len(head) - 18 - len(tail) - 1
        note = style(DIM, " " + _fit(a.note, room)) if a.note and room > 3 else ""
        lines.append(f"{head}{sw}{tail}{note}")
    lines.append("")
    lines.append(style(BOLD, "Events"))
    budget = max(3, height - len(lines) - 2)
    for ev in snap.events[-budget:]:
        text = _fit(format_event(ev), w)
        lines.append(style(KIND_STYLE.get(ev.kind, ""), text) if KIND_STYLE.get(ev.kind) and color else text)
    while len(lines) < height - 1:
        lines.append("")
    footer = f"script: {snap.script_step}" if snap.script_step else "keys: digits + Enter: PIN · s: sign loop · q: quit"
    lines.append(style(DIM, _fit(footer, w)))
    return [_fit_styled(line, w) for line in lines[:height]]


def _fit_styled(line: str, width: int) -> str:
    """A line that is too wide for the terminal loses its styles and is cut (never wraps the screen)."""
    plain = ANSI.sub("", line)
    return line if len(plain) <= width else _fit(plain, width)


def _card_side_current(snap: Snapshot) -> bool:
    """Show the card's side while its stream keeps up with the app (else the app's own log)."""
    if not snap.card_trace or not snap.card_apdus:
        return False
    return not snap.apdus or snap.card_apdus[-1].at >= snap.apdus[-1].at - STALE


class PlainView:
    """One line per event on ``out``; nothing is redrawn."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self._lock = threading.Lock()

    def on_event(self, ev: Event) -> None:
        with self._lock:
            print(format_event(ev), file=self.out, flush=True)

    def refresh(self, snap: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


class LiveView:
    """The full-screen view; :meth:`refresh` redraws (rate-limited by the caller's loop)."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self._lock = threading.Lock()
        self.out.write("\x1b[?1049h\x1b[?25l")  # alternate screen, cursor hidden
        self.out.flush()

    def on_event(self, ev: Event) -> None:
        pass

    def refresh(self, snap: Snapshot) -> None:
        size = shutil.get_terminal_size((80, 24))
        lines = render(snap, size.columns, size.lines)
        with self._lock:
            self.out.write("\x1b[H" + "".join(f"{line}\x1b[K\r\n" for line in lines[:-1]) + lines[-1] + "\x1b[K\x1b[J")
            self.out.flush()

    def close(self) -> None:
        with self._lock:
            self.out.write("\x1b[?25h\x1b[?1049l")  # cursor back, normal screen
            self.out.flush()
