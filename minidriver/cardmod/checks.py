"""The conformance checker behind ``python -m minidriver check``: the parameter-rule table of
minidriver-spec.md §3 and functional round trips, run against any PIV card.

A row is a :class:`Check`: the entry point, the case, the code the spec expects and a ``run``
callable that performs the call and returns the DWORD it got. ``run`` receives a
:class:`CheckEnv`: ``env.card`` is a CardData with an acquired context -- a fresh one (its own
CardAcquireContext, deleted afterwards) when the row says ``fresh=True``, else one shared by the
rows that run in a row -- plus the card's secrets and ``env.new_card()`` for a second context.
A row that checks more than a code (a signature verifies, both ECDH sides agree) raises
:class:`CheckFailed` with the reason; the runner reports it as a failure.

Rows live beside the code they check: ``checks_core.py`` (context, properties, PINs, files),
``checks_crypto.py`` (containers) and ``checks_keys.py`` (key operations), ``checks_ski.py`` (secure key injection), each a
list ``CHECKS``. Destructive rows (a blocked PIN, a new key in a slot) run only with
``--destructive`` and put back what they can (a blocked PIN is unblocked with the PUK).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .codes import ScardCode, code_name
from .context import CardAcquireContext, CardDeleteContext
from .types import CardData

__all__ = [
    "Check",
    "CheckEnv",
    "CheckFailed",
    "CheckSkipped",
    "Result",
    "all_checks",
    "format_table",
    "run_checks",
    "to_json",
]

log = logging.getLogger(__name__)

#: modules holding rows, in the order they run
ROW_MODULES = ("checks_core", "checks_crypto", "checks_keys", "checks_ski")


class CheckFailed(Exception):
    """A functional row saw a wrong result (not a wrong code)."""


class CheckSkipped(Exception):
    """The card has nothing this row can run on (e.g. no RSA key); reported, not failed."""


@dataclass
class CheckEnv:
    """What a row's ``run`` gets: the card, its secrets and a way to open a second context."""

    card: CardData
    make_card: Callable[[], CardData]
    pin: bytes = b"123456"
    puk: bytes = b"12345678"
    mgmt_key: bytes = bytes.fromhex("010203040506070801020304050607080102030405060708")
    destructive: bool = False
    _extra: list[CardData] = field(default_factory=list)

    def new_card(self) -> CardData:
        """Another acquired context on the same card (deleted when the row ends)."""
        card = acquire(self.make_card)
        self._extra.append(card)
        return card

    def release(self) -> None:
        for card in self._extra:
            release(card)
        self._extra.clear()


@dataclass(frozen=True)
class Check:
    """One row of the table."""

    function: str  #: the entry point's spec name
    case: str
    expected: int | tuple[int, ...]  #: the DWORD the spec wants (a tuple: any of them)
    run: Callable[[CheckEnv], int]
    destructive: bool = False
    fresh: bool = False  #: run in its own context (CardAcquireContext .. CardDeleteContext)


@dataclass(frozen=True)
class Result:
    function: str
    case: str
    expected: tuple[int, ...]
    got: int | None  #: None when the row raised or was skipped
    ok: bool
    detail: str = ""
    skipped: bool = False


def all_checks() -> list[Check]:
    """Every row of every row module that exists (the SKI module is optional)."""
    rows: list[Check] = []
    for name in ROW_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        rows.extend(getattr(module, "CHECKS", []))
    return rows


def acquire(make_card: Callable[[], CardData]) -> CardData:
    """A CardData with an acquired context; RuntimeError naming the code if that fails."""
    card = make_card()
    code = CardAcquireContext(card, 0)
    if code != 0:
        raise RuntimeError(f"CardAcquireContext failed: {code_name(code)}")
    return card


def reset_card(card: CardData) -> None:
    """Warm-reset the card under ``card``'s context (PIV ends a 9B authentication no other way)
    and let the context bind again on its next call. Other contexts see SCARD_W_RESET_CARD."""
    from ..pcsc import Disposition
    from .context import MinidriverContext

    ctx = card.pvVendorSpecific
    assert isinstance(ctx, MinidriverContext)
    conn = ctx.connection
    if hasattr(conn, "reset"):  # an in-process card (tests)
        conn.reset()
        conn.reconnect()
    else:
        conn.reconnect(Disposition.RESET)
    ctx.forget_card(ScardCode.SCARD_W_RESET_CARD)
    ctx.card_lost = None


def _no_release(card: CardData) -> None:
    return None


#: what gives a CardData's connection back (helper.release for card_data_for_reader); set by run_checks
_release_card: list[Callable[[CardData], None]] = [_no_release]


def release(card: CardData) -> None:
    """CardDeleteContext, then hand the card's connection back to whoever made it."""
    CardDeleteContext(card)
    _release_card[0](card)


@contextmanager
def _env(base: CheckEnv, fresh: bool) -> Iterator[CheckEnv]:
    if not fresh:
        try:
            yield base
        finally:
            base.release()
        return
    card = acquire(base.make_card)
    env = CheckEnv(card, base.make_card, base.pin, base.puk, base.mgmt_key, base.destructive)
    try:
        yield env
    finally:
        env.release()
        release(card)


def run_one(check: Check, base: CheckEnv) -> Result:
    expected = check.expected if isinstance(check.expected, tuple) else (check.expected,)
    try:
        with _env(base, check.fresh) as env:
            got = int(check.run(env))
    except CheckSkipped as exc:
        return Result(check.function, check.case, expected, None, True, str(exc), skipped=True)
    except CheckFailed as exc:
        return Result(check.function, check.case, expected, None, False, str(exc))
    except Exception as exc:  # a row must never stop the table
        log.debug("check %s / %s raised", check.function, check.case, exc_info=True)
        return Result(check.function, check.case, expected, None, False, f"{type(exc).__name__}: {exc}")
    return Result(check.function, check.case, expected, got, got in expected)


def run_checks(
    checks: Iterable[Check],
    make_card: Callable[[], CardData],
    *,
    destructive: bool = False,
    pin: bytes = b"123456",
    puk: bytes = b"12345678",
    mgmt_key: bytes | None = None,
    release_card: Callable[[CardData], None] | None = None,
) -> list[Result]:
    """Run the rows (destructive ones only if asked) on contexts from ``make_card``;
    ``release_card`` gives each CardData's connection back after CardDeleteContext."""
    _release_card[0] = release_card or _no_release
    shared = acquire(make_card)
    base = CheckEnv(shared, make_card, pin, puk, destructive=destructive)
    if mgmt_key is not None:
        base.mgmt_key = mgmt_key
    results = []
    try:
        for check in checks:
            if check.destructive and not destructive:
                continue
            results.append(run_one(check, base))
            if check.fresh:  # the row may have reset the card under the shared context: open it again
                release(base.card)
                base.card = acquire(make_card)
    finally:
        release(base.card)
    return results


def _code(value: int | None) -> str:
    return "-" if value is None else code_name(value)


def _expected(codes: tuple[int, ...]) -> str:
    return " or ".join(code_name(c) for c in codes)


def format_table(results: list[Result]) -> str:
    rows = [("function", "case", "expected", "got", "ok")]
    for r in results:
        got = _code(r.got) if not r.detail else f"{_code(r.got)}: {r.detail}"
        mark = "skip" if r.skipped else "ok" if r.ok else "FAIL"
        rows.append((r.function, r.case, _expected(r.expected), got, mark))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(col.ljust(widths[i]) if i < 4 else col for i, col in enumerate(row)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    failed = sum(not r.ok for r in results)
    skipped = sum(r.skipped for r in results)
    lines.append(f"\n{len(results)} checks: {len(results) - failed - skipped} ok, {skipped} skipped, {failed} failed")
    return "\n".join(lines)


def to_json(results: list[Result]) -> str:
    return json.dumps(
        [
            {
                "function": r.function,
                "case": r.case,
                "expected": list(r.expected),
                "expected_name": _expected(r.expected),
                "got": r.got,
                "got_name": _code(r.got),
                "ok": r.ok,
                "skipped": r.skipped,
                "detail": r.detail,
            }
            for r in results
        ],
        indent=2,
    )
