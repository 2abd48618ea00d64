"""pytest plugin: a live virtual card in a real reader, for your own test suites.

Installed with vcard (entry point ``pytest11``). Fixtures:

``vcard_stack`` (session): a private pcscd (its own socket and network
namespace, so it never disturbs a system pcscd) plus the daemon, stopped by
pid at the end. PC/SC in the test process is pointed at it; run PC/SC
programs with ``env=vcard_stack.env``. Without root, pcscd and the daemon run
in a user namespace of the user's (``vcard up --user``). Under pytest-xdist
each worker starts its own stack (own directory named after the worker,
socket, namespaces and vpcd slots), so ``-n N`` gives N independent readers.
The stack's directory (logs, card state) is removed at the end of the session
unless a test failed (then it stays for the post-mortem).

``vcard`` (function): a fresh card from the default profile in slot 0, with
its state in the test's tmp_path; ``vcard.remove(wait=True)`` /
``vcard.insert(wait=True)`` pull and re-insert it as every application sees.
``vcard.fault(...)`` injects a fault (emulator/faults.py; cleared when the
test ends), ``vcard.trace()`` returns what crossed the wire since the test
started, ``vcard.reset()`` warm-resets the card through pcscd. When a test
that uses ``vcard`` fails, its report shows the trace ("vcard trace").

Choosing the card: ``@pytest.mark.vcard(profile="piv-nist", slot=1)`` (a
built-in profile or a .toml path relative to the test file; slot 0 or 1).
``@pytest.mark.vcard(scope="module")`` on a module (``pytestmark``) or test
shares one card among the module's tests that ask for it, its state kept from
test to test (nothing is reset in between); by default each test gets a fresh
card. ``vcard_pair`` gives two cards at once (slots 0 and 1; the marker's
``other_profile`` picks the second one's profile).

A fresh card is fast: the card a test leaves in slot 0 stays there, and the
next test's card replaces it in place (control op ``renew``) followed by a
warm reset through pcscd, about 20 ms instead of ~0.8 s for a removal and an
insertion (each waits for one of pcscd's 400 ms presence polls). An
application that holds a handle across it gets ``SCARD_W_RESET_CARD``; one
that only watches ``SCardGetStatusChange`` sees no event (pcscd reports none
for a reset). The summary at the end of the run shows the fixture's overhead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from . import fixture_cards
from .control.client import pcsc
from .control.client.api import FaultInfo, VCard
from .control.stack.pcscd import StackError
from .faults import FaultKind
from .trace import TraceEvent, format_event

__all__ = ["LiveCard", "fail_or_skip", "vcard", "vcard_pair", "vcard_stack"]


def fail_or_skip(reason: str) -> NoReturn:
    """A missing component fails under CI=true: it is an install step, not a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: install it, e.g. with scripts/test)", pytrace=False)
    pytest.skip(reason)


def _stack_root() -> Path:
    """A new 0700 directory for this process's stack; an xdist worker's name (gw0, ...) is in it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return Path(tempfile.mkdtemp(prefix=f"vcard-test-{worker}-"))


def _stack_up(vc: VCard) -> None:
    """Start what is not running of the test stack: as root in its own namespaces, else without root."""
    vc.up(private=True, user=os.geteuid() != 0, insert=False)


def _stack_cleanup(root: Path, session: pytest.Session) -> None:
    """Remove the stack's directory once pcscd and the daemon are stopped, unless a test failed."""
    if not session.testsfailed:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def vcard_stack(request: pytest.FixtureRequest) -> Iterator[VCard]:
    root = _stack_root()
    vc = VCard(root / "run", state_dir=root / "state")
    try:
        _stack_up(vc)
    except StackError as exc:
        vc.down()
        fail_or_skip(f"cannot start pcscd + vpcd + daemon: {exc}")
    try:
        yield vc
    finally:
        vc.down()
        _stack_cleanup(root, request.session)


@dataclass
class LiveCard:
    """A card in a real reader of the test stack."""

    stack: VCard
    slot: int
    profile: str
    #: the daemon's event number when the fixture started: trace() shows what follows
    trace_start: int = 0

    @property
    def reader(self) -> str:
        return self.stack.reader_name(self.slot)

    @property
    def env(self) -> dict[str, str]:
        return self.stack.env

    def insert(self, *, wait: bool = True, fresh: bool = False) -> dict[str, Any]:
        return self.stack.insert(self.slot, profile=self.profile, fresh=fresh, wait=wait)

    def remove(self, *, wait: bool = True) -> dict[str, Any]:
        return self.stack.remove(self.slot, wait=wait)

    def trace(self, *, reveal: bool = False) -> list[TraceEvent]:
        """APDUs, card events and fault hits of this slot since the fixture started (secrets redacted)."""
        return self.stack.trace(self.slot, after=self.trace_start, reveal=reveal)

    def fault(self, kind: str | FaultKind, **options: Any) -> FaultInfo:
        """Install a fault in this card's slot; options as :meth:`VCard.fault` (ins=, sw=, count=, when=, ...)."""
        return self.stack.fault(kind, slot=self.slot, **options)

    def reset(self) -> None:
        """A warm reset as pcscd sees it (other handles get SCARD_W_RESET_CARD); returns once done."""
        self.stack.reset(self.slot)

    def connect(self) -> Any:
        """A pyscard connection (T=1) to the card."""
        return pcsc.connect(self.reader)

    def transmit(self, apdu: bytes | str) -> bytes:
        """Send one APDU in a fresh connection; returns data + SW."""
        raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
        conn = self.connect()
        try:
            data, sw1, sw2 = conn.transmit(list(raw))
        finally:
            conn.release()  # disconnect and release the PC/SC context now, not in a destructor
        return bytes(data) + bytes((sw1, sw2))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", fixture_cards.MARK_HELP)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How long the fixtures took to give each test its card (issue 11: aim under 0.5 s)."""
    for line in fixture_cards.summary_lines():
        terminalreporter.write_line(line)


def _spec(request: pytest.FixtureRequest) -> fixture_cards.CardSpec:
    marker = request.node.get_closest_marker(fixture_cards.MARK)
    if marker is None:
        return fixture_cards.CardSpec()
    try:
        return fixture_cards.card_spec(dict(marker.kwargs), tuple(marker.args), base=request.path.parent)
    except fixture_cards.SpecError as exc:
        raise pytest.UsageError(f"{request.node.nodeid}: {exc}") from None


def _card(request: pytest.FixtureRequest, stack: VCard, slot: int, profile: str, state: Path) -> LiveCard:
    """The card of ``profile`` with its state at ``state`` in ``slot``, no fault left, trace from here."""
    stack.fault_clear(slot)
    mark = stack.trace_mark()
    toml = fixture_cards.place(stack, slot, profile, state)
    return LiveCard(stack, slot, toml, trace_start=mark)


def _done(stack: VCard, card: LiveCard, *, keep: bool) -> None:
    with contextlib.suppress(Exception):  # the daemon may be gone (a test killed it)
        stack.fault_clear(card.slot)
    fixture_cards.release(stack, card.slot, Path(card.profile).with_suffix(".sqlite"), keep=keep)


@pytest.fixture(scope="module")
def _vcard_module_dir(vcard_stack: VCard, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the module's shared cards keep their state; they are pulled when the module ends."""
    where = tmp_path_factory.mktemp("vcard-module")
    yield where
    with contextlib.suppress(Exception):
        for s in vcard_stack.status().slots:
            if s.present and s.state_file and Path(s.state_file).parent == where:
                vcard_stack.remove(s.slot, wait=True)


@pytest.fixture
def vcard(vcard_stack: VCard, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveCard]:
    spec = _spec(request)
    _stack_up(vcard_stack)  # a previous test may have killed the daemon
    if spec.scope == "module":
        where: Path = request.getfixturevalue("_vcard_module_dir")
        state = where / f"slot{spec.slot}-{Path(spec.profile).stem}.sqlite"
    else:
        state = tmp_path / "card.sqlite"
    card = _card(request, vcard_stack, spec.slot, spec.profile, state)
    try:
        yield card
    finally:
        if spec.scope == "function":
            _done(vcard_stack, card, keep=True)
        else:
            with contextlib.suppress(Exception):
                vcard_stack.fault_clear(card.slot)


@pytest.fixture
def vcard_pair(vcard: LiveCard, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[LiveCard, LiveCard]]:
    """Two cards: ``vcard`` and a fresh one in the other slot (profile: the marker's other_profile)."""
    spec = _spec(request)
    other = _card(request, vcard.stack, 1 - vcard.slot, spec.other_profile or spec.profile, tmp_path / "other.sqlite")
    try:
        yield vcard, other
    finally:
        _done(vcard.stack, other, keep=True)


#: trace lines a failing test's report shows (the last ones)
REPORT_EVENTS = 200


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test that used ``vcard`` shows what crossed the wire in its report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    card = getattr(item, "funcargs", {}).get("vcard")
    if not isinstance(card, LiveCard):
        return
    try:
        events = card.trace()
    except Exception as exc:  # the daemon may be gone: say so, keep the report
        text = f"(no trace: {exc})"
    else:
        shown = events[-REPORT_EVENTS:]
        skipped = f"({len(events) - len(shown)} earlier events not shown)\n" if len(events) > len(shown) else ""
        text = skipped + "\n".join(format_event(e) for e in shown) if shown else "(no events)"
    report.sections.append((f"vcard trace (slot {card.slot}, secrets redacted)", text))


def _default_profile_with_state(state: Path) -> str:
    from importlib import resources

    text = resources.files("emulator.profiles").joinpath("default.toml").read_text()
    lines = [f'state_file = "{state}"' if line.startswith("state_file") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"
