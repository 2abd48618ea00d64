"""``vcard demo --script``: the scripted show, no keyboard.

The show plays the user's hands: it inserts and pulls the card through the
control plane (:class:`~emulator.control.client.api.VCard`, as ``vcard insert`` and
``vcard remove`` do) and types the PIN into the application. The application
itself (:mod:`emulator.demo.app`) only talks PC/SC.

Steps: insert, unlock, start a signature loop and pull the card mid-signature,
check the app locked, re-insert (the same card: its state persisted), unlock
again and sign once. Each key moment is held ``pace`` seconds on screen and
announced by a ``hold: <moment>`` event (scripts/demo-pictures captures there).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..control.client.api import VCard
from ..control.stack.pcscd import StackError
from ..profile import load_profile
from .app import DemoApp, Phase

__all__ = ["DemoCard", "ShowResult", "demo_card", "play"]

STEP_TIMEOUT = 10.0  #: seconds any one step may take before the show fails
SIGNATURES_BEFORE_PULL = 3
MOMENTS = ("waiting", "pin", "unlocked", "signing", "locked", "reinserted", "unlocked-again")


@dataclass
class ShowResult:
    ok: bool = False
    failure: str = ""
    lock_latency: float | None = None  #: seconds from the pull (remove request) to the app's LOCKED
    pull_at: float | None = None  #: seconds since the app started
    locked_at: float | None = None
    locked_monotonic: float | None = None  #: the lock on the system's monotonic clock (to compare with others)
    signatures_before_pull: int = 0
    steps: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        if not self.ok:
            return [f"demo: FAILED: {self.failure}"]
        latency = f"{self.lock_latency:.3f}" if self.lock_latency is not None else "?"
        lines = [
            "demo: summary: inserted, unlocked, pulled mid-signature, locked, re-inserted, unlocked again",
            f"demo: signatures verified before the pull: {self.signatures_before_pull}",
            f"demo: lock_latency_s={latency} (from the pull to the app's lock; pcscd polls every 0.4 s)",
        ]
        if self.locked_monotonic is not None:
            lines.append(f"demo: locked_monotonic={self.locked_monotonic:.3f}")
        return lines


@dataclass
class DemoCard:
    """Where the show's card lives: a slot of a stack, a profile with its own fresh state."""

    vc: VCard
    slot: int
    profile: Path
    pin: str
    started_stack: bool
    workdir: Path

    def reader(self) -> str:
        return self.vc.reader_name(self.slot)

    def cleanup(self) -> None:
        """Stop what the show started: the card; the stack too if the show started it."""
        try:
            status = self.vc.status()
            if self.started_stack:
                self.vc.down()
            elif (
                status.running
                and status.slots[self.slot].present
                and status.slots[self.slot].state_file == str(self.workdir / "demo.sqlite")
            ):
                self.vc.remove(self.slot)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def demo_card(vc: VCard, *, slot: int | None = None) -> DemoCard:
    """Use the running stack (a free slot), or start a private one (``vcard up --private``)."""
    status = vc.status()
    started = False
    if not status.running:
        vc.up(private=True, insert=False)
        status = vc.status()
        started = True
    free = [s.slot for s in status.slots if not s.present]
    if slot is None:
        if not free:
            raise StackError(
                "both slots of the running stack hold cards; free one (vcard remove --slot 1) "
                "or give the demo its own stack (vcard --runtime-dir /tmp/vcard-demo demo --script)"
            )
        slot = free[0]
    elif slot not in free:
        raise StackError(f"slot {slot} holds a card; pull it first (vcard remove --slot {slot}) or pick another")
    workdir = Path(tempfile.mkdtemp(prefix="vcard-demo-"))
    text = resources.files("emulator.profiles").joinpath("default.toml").read_text()
    lines = [
        f'state_file = "{workdir / "demo.sqlite"}"' if line.startswith("state_file") else line
        for line in text.splitlines()
    ]
    profile = workdir / "demo.toml"
    profile.write_text("\n".join(lines) + "\n")
    pin = str(load_profile(str(profile)).piv["pin"])
    return DemoCard(vc, slot, profile, pin, started, workdir)


class _Failed(Exception):
    pass


def play(app: DemoApp, card: DemoCard, *, pace: float, stopping: Callable[[], bool] = lambda: False) -> ShowResult:
    """Play the show; never raises for a step that fails (the result says which)."""
    result = ShowResult()
    total = 7

    def step(n: int, text: str) -> None:
        result.steps.append(text)
        app.set_script_step(f"step {n}/{total}: {text}")

    def hold(moment: str) -> None:
        app.event("script", f"hold: {moment}")
        end = time.monotonic() + pace
        while time.monotonic() < end and not stopping():
            time.sleep(0.02)

    def expect(phase: Phase, what: str) -> None:
        if not app.wait_for(phase, STEP_TIMEOUT):
            snap = app.snapshot()
            raise _Failed(f"{what}: the app is {snap.phase.name} ({snap.detail}) after {STEP_TIMEOUT:g} s")

    try:
        hold("waiting")
        step(1, "insert the card")
        card.vc.insert(card.slot, profile=str(card.profile))
        expect(Phase.PIN_REQUIRED, "after the insert")
        hold("pin")
        step(2, "type the PIN of the default test profile")
        if not app.unlock(card.pin):
            raise _Failed(f"unlock: {app.snapshot().detail}")
        hold("unlocked")
        step(3, "sign in a loop, then pull the card mid-signature")
        before = app.snapshot().signatures
        app.start_signing()
        deadline = time.monotonic() + STEP_TIMEOUT
        while app.snapshot().signatures < before + SIGNATURES_BEFORE_PULL:
            if time.monotonic() > deadline or not app.snapshot().signing:
                raise _Failed("the signature loop did not run")
            time.sleep(0.01)
        hold("signing")
        result.signatures_before_pull = app.snapshot().signatures - before
        result.pull_at = app.now()
        app.event("script", "pulling the card now (vcard remove)")
        card.vc.remove(card.slot)
        expect(Phase.LOCKED, "after the pull")
        result.locked_at = next(
            (e.at for e in reversed(app.snapshot().events) if e.kind == "state" and e.text.startswith("LOCKED")), None
        )
        if result.locked_at is not None:
            result.lock_latency = max(0.0, result.locked_at - result.pull_at)
            result.locked_monotonic = app.started + result.locked_at
        app.event("script", f"locked {result.lock_latency:.3f} s after the pull")
        hold("locked")
        step(4, "put the card back (same card, its state kept)")
        card.vc.insert(card.slot, profile=str(card.profile))
        expect(Phase.PIN_REQUIRED, "after the re-insert")
        hold("reinserted")
        step(5, "type the PIN again")
        if not app.unlock(card.pin):
            raise _Failed(f"second unlock: {app.snapshot().detail}")
        step(6, "one more signature in the new session")
        if not app.sign_once():
            raise _Failed("the signature after the re-insert did not verify")
        hold("unlocked-again")
        step(7, "done")
        result.ok = True
    except _Failed as exc:
        result.failure = str(exc)
    except Exception as exc:  # the stack refused (StackError, RequestFailed, ...): say it, stop
        result.failure = f"{type(exc).__name__}: {exc}"
    app.event("script", result.summary()[0])
    return result
