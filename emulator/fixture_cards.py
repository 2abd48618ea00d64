"""How the pytest fixtures choose, place and renew their cards (emulator/pytest_plugin.py uses this).

``@pytest.mark.vcard(profile=..., slot=..., scope=..., other_profile=...)``
says which card a test gets (:class:`CardSpec`). :func:`place` puts a card
with a given state file into a slot, the fastest way the stack allows:

- *kept*: the slot already holds that very card (``scope="module"``);
- *in place*: the slot holds another card: the daemon swaps in a new card
  without dropping the vpcd link (control op ``renew``), then a power cycle
  through pcscd (``SCardReconnect(SCARD_UNPOWER_CARD)``: vpcd powers the card
  off and on, as at an insertion) makes every application see a reset card:
  pcscd re-reads the ATR, other handles get ``SCARD_W_RESET_CARD``; a
  ``SCardGetStatusChange`` watcher sees no event (the card never left).
  Costs a card creation and one power cycle (~20 ms);
- *remove/insert*: the slot is empty, or the daemon has no ``renew``: a
  removal waits for pcscd's presence poll (~0.4 s) and an insertion for the
  next one (~0.4 s).

Every placement is timed (:data:`STATS`); the plugin prints a summary.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .control.client.api import VCard
from .control.client.client import RequestFailed
from .profile import builtin_profiles

__all__ = [
    "MARK",
    "SCOPES",
    "STATS",
    "CardSpec",
    "card_spec",
    "place",
    "power_cycle",
    "profile_with_state",
    "release",
    "summary_lines",
]

MARK = "vcard"
SCOPES = ("function", "module")
MARK_HELP = (
    "vcard(profile='default', slot=0, scope='function', other_profile=None): the card the vcard fixtures "
    "insert: a built-in profile name or a .toml path (relative to the test file), its vpcd slot (0 or 1), "
    "'module' to share one card among a module's tests (state kept from test to test), and the profile of "
    "vcard_pair's second card (default: the same)"
)
#: the slot the fixtures keep a card in between tests (others are emptied when a test ends)
HOME_SLOT = 0


class SpecError(ValueError):
    """A vcard marker that cannot be honoured; the message names the argument."""


@dataclass(frozen=True)
class CardSpec:
    profile: str = "default"
    slot: int = 0
    scope: str = "function"
    other_profile: str | None = None


def card_spec(kwargs: dict[str, Any], args: tuple[Any, ...] = (), *, base: Path | None = None) -> CardSpec:
    """Check a ``vcard`` marker's arguments; relative profile paths are taken from ``base``."""
    if args:
        raise SpecError(f"the vcard marker takes keyword arguments only (profile=, slot=, scope=), got {args!r}")
    unknown = sorted(set(kwargs) - {"profile", "slot", "scope", "other_profile"})
    if unknown:
        raise SpecError(f"unknown vcard marker argument {unknown[0]!r} (known: profile, slot, scope, other_profile)")
    slot = kwargs.get("slot", 0)
    if not isinstance(slot, int) or isinstance(slot, bool) or slot not in (0, 1):
        raise SpecError(f"vcard marker: slot must be 0 or 1 (one per vpcd reader), got {slot!r}")
    scope = kwargs.get("scope", "function")
    if scope not in SCOPES:
        raise SpecError(f"vcard marker: scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    profile = _profile(kwargs.get("profile", "default"), "profile", base)
    other = kwargs.get("other_profile")
    return CardSpec(profile, slot, scope, None if other is None else _profile(other, "other_profile", base))


def _profile(value: Any, what: str, base: Path | None) -> str:
    if isinstance(value, Path) or (isinstance(value, str) and (value.endswith(".toml") or os.sep in value)):
        path = Path(value)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise SpecError(f"vcard marker: {what} {str(value)!r} is not a file ({path})")
        return str(path.resolve())
    if isinstance(value, str) and value in builtin_profiles():
        return value
    raise SpecError(
        f"vcard marker: {what} must be a built-in profile ({', '.join(builtin_profiles())}) or a .toml path, "
        f"got {value!r}"
    )


def profile_with_state(profile: str, state: Path) -> str:
    """The text of ``profile`` (built-in name or path) with its card's state at ``state``."""
    if profile.endswith(".toml") or os.sep in profile:
        text = Path(profile).read_text()
    else:
        text = resources.files("emulator.profiles").joinpath(f"{profile}.toml").read_text()
    lines = text.splitlines()
    first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    top = [line for line in lines[:first_table] if not line.lstrip().startswith("state_file")]
    return "\n".join([f'state_file = "{state}"', *top, *lines[first_table:]]) + "\n"


@dataclass(frozen=True)
class Placement:
    how: str  #: "kept", "in place", "remove/insert"
    seconds: float


#: every placement and release of this session: (what, seconds)
STATS: list[Placement] = []


def place(stack: VCard, slot: int, profile: str, state: Path) -> str:
    """Put the card of ``profile`` whose state is ``state`` into ``slot``; returns how (and records the time)."""
    start = time.perf_counter()
    toml = state.with_suffix(".toml")
    if not toml.exists():
        toml.write_text(profile_with_state(profile, state))
    current = stack.status().slots[slot]
    if current.present and current.state_file == str(state):
        how = "kept"
    elif current.present and _renew(stack, slot, toml):
        power_cycle(stack.reader_name(slot))
        how = "in place"
    else:
        if current.present:
            stack.remove(slot, wait=True)
        stack.insert(slot, profile=str(toml), wait=True)
        how = "remove/insert"
    STATS.append(Placement(how, time.perf_counter() - start))
    return str(toml)


def release(stack: VCard, slot: int, state: Path, *, keep: bool) -> None:
    """A test is done with its card: leave it in (``keep``, and only in the home slot) or pull it."""
    start = time.perf_counter()
    status = stack.status()
    if not status.slots or not status.slots[slot].present:
        return
    if keep and slot == HOME_SLOT and _renew_supported(stack):
        return
    if status.slots[slot].state_file == str(state) or not keep:
        stack.remove(slot, wait=True)
        STATS.append(Placement("release: remove", time.perf_counter() - start))


def _renew_supported(stack: VCard) -> bool:
    return bool(getattr(stack, "_vcard_renew", True))


def _renew(stack: VCard, slot: int, toml: Path) -> bool:
    """Ask the daemon for a new card in place; False (remembered) if it has no such operation."""
    if not _renew_supported(stack):
        return False
    try:
        stack.client.request("renew", slot=slot, profile=str(toml))
    except RequestFailed as exc:
        if "unknown operation" in str(exc):
            stack._vcard_renew = False  # type: ignore[attr-defined]
            return False
        raise
    return True


def power_cycle(reader: str) -> None:
    """``SCardReconnect(SCARD_UNPOWER_CARD)`` through pcscd: the card is powered off and on (a cold reset)."""
    from smartcard import scard

    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise RuntimeError(f"cannot reach pcscd: {scard.SCardGetErrorMessage(hresult)}")
    try:
        protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        hresult, card, _ = scard.SCardConnect(ctx, reader, scard.SCARD_SHARE_SHARED, protocols)
        if hresult != scard.SCARD_S_SUCCESS:
            raise RuntimeError(f"power cycle of {reader!r}: {scard.SCardGetErrorMessage(hresult)}")
        try:
            hresult, _ = scard.SCardReconnect(card, scard.SCARD_SHARE_SHARED, protocols, scard.SCARD_UNPOWER_CARD)
            if hresult != scard.SCARD_S_SUCCESS:
                raise RuntimeError(f"power cycle of {reader!r}: {scard.SCardGetErrorMessage(hresult)}")
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    finally:
        scard.SCardReleaseContext(ctx)


def summary_lines() -> list[str]:
    """The fixture's overhead this session, per way of placing a card."""
    if not STATS:
        return []
    lines = []
    for how in ("in place", "kept", "remove/insert", "release: remove"):
        times = [p.seconds for p in STATS if p.how == how]
        if times:
            lines.append(
                f"vcard fixture: {how:<15} {len(times):4d} x  median {statistics.median(times):.3f} s  "
                f"max {max(times):.3f} s"
            )
    return lines
