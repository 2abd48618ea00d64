"""Run the demo: the app, a view, and either the scripted show or the keyboard.

The main thread draws (at most every :data:`~emulator.demo.view.FRAME` s, only
when something changed) and reads keys; the show runs in its own thread; the
app has its watcher and signing threads.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator
from typing import Any, TextIO

from .app import DemoApp, Phase
from .cardside import CardSideTrace
from .script import DemoCard, ShowResult, play
from .view import FRAME, LiveView, PlainView

__all__ = ["run_interactive", "run_script"]

PIN_MAX = 8


def make_view(out: TextIO, *, plain: bool) -> LiveView | PlainView:
    if plain or not out.isatty() or os.environ.get("TERM") == "dumb":
        return PlainView(out)
    return LiveView(out)


class _Redraw:
    """Set by the app when something changed; the drawing loop waits on it."""

    def __init__(self) -> None:
        self.dirty = threading.Event()

    def __call__(self) -> None:
        self.dirty.set()


def _draw_loop(
    app: DemoApp, view: LiveView | PlainView, redraw: _Redraw, done: threading.Event, keys: _Keys | None
) -> None:
    last = 0.0
    while not done.is_set():
        if keys is not None:
            keys.poll(app, timeout=FRAME)
        else:
            redraw.dirty.wait(FRAME)
        now = time.monotonic()
        if (redraw.dirty.is_set() or now - last > 0.5) and now - last >= FRAME:
            redraw.dirty.clear()
            last = now
            view.refresh(app.snapshot())
    view.refresh(app.snapshot())


def run_script(
    card: DemoCard, *, pace: float, out: TextIO = sys.stdout, plain: bool = False, log: TextIO | None = None
) -> ShowResult:
    """The scripted show in front of a view; returns its result (the caller prints the summary)."""
    redraw = _Redraw()
    app = DemoApp(card.reader(), on_change=redraw)
    view = make_view(out, plain=plain)
    app.subscribe(view.on_event)
    if log is not None:
        log_view = PlainView(log)
        app.subscribe(log_view.on_event)
    done = threading.Event()
    box: list[ShowResult] = []

    def show() -> None:
        try:
            box.append(play(app, card, pace=pace, stopping=done.is_set))
        finally:
            done.set()
            redraw()

    card_side = CardSideTrace(card.vc.client, card.slot, app.record_card_apdu, app.now)
    try:
        app.start()
        why_not = card_side.start()
        if why_not is not None:
            app.event("info", f"card-side trace unavailable: {why_not}; showing the app's own APDU log")
        worker = threading.Thread(target=show, name="demo-show", daemon=True)
        worker.start()
        _draw_loop(app, view, redraw, done, None)
        worker.join()
    except KeyboardInterrupt:
        done.set()
        return ShowResult(failure="interrupted")
    finally:
        card_side.stop()
        app.stop()
        view.close()
    return box[0] if box else ShowResult(failure="the show did not finish")


class _Keys:
    """Keys typed in the live view (cbreak mode): PIN digits, Enter, s, q."""

    def __init__(self) -> None:
        self.pin = ""
        self.quit = False

    def poll(self, app: DemoApp, timeout: float) -> None:
        snap = app.snapshot()
        if (snap.phase is Phase.PIN_REQUIRED) != (snap.pin_entry is not None):
            self.pin = ""
            app.set_pin_entry(0 if snap.phase is Phase.PIN_REQUIRED else None)
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        if not ready:
            return
        for ch in os.read(sys.stdin.fileno(), 64).decode(errors="ignore"):
            self._key(app, ch)

    def _key(self, app: DemoApp, ch: str) -> None:
        phase = app.snapshot().phase
        if ch in ("q", "\x03", "\x04"):
            self.quit = True
        elif phase is Phase.PIN_REQUIRED and ch.isdigit() and len(self.pin) < PIN_MAX:
            self.pin += ch
        elif phase is Phase.PIN_REQUIRED and ch in ("\x7f", "\b"):
            self.pin = self.pin[:-1]
        elif phase is Phase.PIN_REQUIRED and ch in ("\r", "\n") and self.pin:
            pin, self.pin = self.pin, ""
            app.set_pin_entry(None)
            threading.Thread(target=app.unlock, args=(pin,), daemon=True).start()
            return
        elif phase is Phase.UNLOCKED and ch == "s":
            if app.snapshot().signing:
                app.stop_signing()
            else:
                app.start_signing(pause=0.3)
        if phase is not Phase.PIN_REQUIRED:
            self.pin = ""
        app.set_pin_entry(len(self.pin) if phase is Phase.PIN_REQUIRED else None)


@contextlib.contextmanager
def _cbreak() -> Iterator[None]:
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_interactive(reader: str, *, out: TextIO = sys.stdout, client: Any = None, slot: int | None = None) -> None:
    """The app with the keyboard, until q; pull and insert the card from another terminal.

    With a vcard ``client`` and ``slot``, the view shows the card's side of the wire too.
    """
    redraw = _Redraw()
    app = DemoApp(reader, on_change=redraw)
    app.start()
    card_side = CardSideTrace(client, slot, app.record_card_apdu, app.now) if client and slot is not None else None
    if card_side is not None and (why_not := card_side.start()) is not None:
        app.event("info", f"card-side trace unavailable: {why_not}")
    view = LiveView(out)
    keys = _Keys()
    done = threading.Event()

    def watch_quit() -> None:
        while not keys.quit and not done.is_set():
            time.sleep(0.05)
        done.set()

    try:
        with _cbreak():
            threading.Thread(target=watch_quit, daemon=True).start()
            _draw_loop(app, view, redraw, done, keys)
    except KeyboardInterrupt:
        pass
    finally:
        done.set()
        if card_side is not None:
            card_side.stop()
        app.stop()
        view.close()
