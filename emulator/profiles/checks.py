"""Value checks of the profile schema: each returns None, or what the value should have been.

They state what the card implements, in the words of the specifications
(ISO 7816-3 for the ATR, SP 800-73-4 for PINs, RFC 4514 for names).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

from ..applets.piv.certs import parse_name
from ..applets.piv.consts import ASYMMETRIC_SLOTS, PIN_LEN
from ..applets.piv.credentials import MIN_PIN_LEN

__all__ = [
    "KNOWN_APPLETS",
    "Check",
    "applet_list",
    "atr_tck_ok",
    "file_name",
    "hex_bytes",
    "int_in",
    "int_range",
    "lens",
    "one_of",
    "path_text",
    "pin",
    "piv_slot",
    "suggest",
    "version",
    "x509_name",
]

KNOWN_APPLETS = ("isd", "piv")

Check = Callable[[Any], "str | None"]


def hex_bytes(lengths: Sequence[int] | range | None = None) -> Check:
    """Hex digits (spaces allowed) decoding to one of ``lengths`` bytes."""

    def check(value: str) -> str | None:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            return "is not hex: expected hex digits such as " + ("0A1B" if not lengths else "00" * min(lengths))
        if lengths is not None and len(raw) not in lengths:
            return f"must be {lens(lengths)} bytes ({lens(lengths, 2)} hex digits), got {len(raw)} bytes"
        return None

    return check


def lens(lengths: Sequence[int] | range, scale: int = 1) -> str:
    if isinstance(lengths, range) and len(lengths) > 2:
        return f"{lengths.start * scale}-{(lengths.stop - 1) * scale}"
    items = [str(n * scale) for n in lengths]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def int_range(low: int, high: int, *, hexa: bool = False) -> Check:
    def check(value: int) -> str | None:
        if low <= value <= high:
            return None
        shown = f"0x{value:02X}" if hexa and value >= 0 else str(value)
        return f"must be {f'0x{low:02X}-0x{high:02X}' if hexa else f'{low}-{high}'}, got {shown}"

    return check


def int_in(allowed: frozenset[int], what: str) -> Check:
    def check(value: int) -> str | None:
        if value in allowed:
            return None
        names = ", ".join(f"0x{v:02X}" for v in sorted(allowed))
        return f"must be one of {names} ({what}), got {value:#04x}" if value >= 0 else f"must be one of {names}"

    return check


def one_of(choices: Sequence[str], *, fold: bool = True) -> Check:
    def check(value: str) -> str | None:
        if (value.lower() if fold else value) in choices:
            return None
        return f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}{suggest(value, choices)}"

    return check


def pin(*, digits: bool) -> Check:
    """A PIV PIN (6-8 digits) or PUK (6-8 bytes) (SP 800-73-4 part 2 §2.4.3)."""

    def check(value: str) -> str | None:
        what = "digits" if digits else "characters (bytes in UTF-8)"
        if not MIN_PIN_LEN <= len(value.encode()) <= PIN_LEN or (digits and not value.isdigit()):
            return f"must be {MIN_PIN_LEN}-{PIN_LEN} {what}"
        if not digits and "\xff" in value:  # 0xFF is the padding byte
            return "must not contain the padding byte FF"
        return None

    return check


def version(value: str) -> str | None:
    parts = value.split(".")
    if len(parts) == 3 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return None
    return f'must be three numbers 0-255 like "5.4.3", got {value!r}'


def x509_name(*, empty_ok: bool) -> Check:
    def check(value: str) -> str | None:
        if not value:
            return None if empty_ok else "must not be empty"
        try:
            parse_name(value)
        except ValueError as exc:
            why = f": {exc}" if str(exc) else ""
            return f'must be a name like "CN=me,O=us" (RFC 4514 attribute names such as CN, O, OU, C){why}'
        return None

    return check


def file_name(value: str) -> str | None:
    """The profile name also names the state file: no path separators, no dot files."""
    if value and value[0] != "." and all(c.isalnum() or c in "._-+" for c in value):
        return None
    return f"must be letters, digits and . _ - + (it names the state file), got {value!r}"


def path_text(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    return "must not contain a NUL character" if "\0" in value else None


def piv_slot(value: str) -> str | None:
    try:
        slot = int(value, 16)
    except ValueError:
        slot = -1
    if slot in ASYMMETRIC_SLOTS:
        return None
    return f'must be a PIV key slot, hex: "9a", "9c", "9d", "9e" or "82"-"95", got {value!r}'


def applet_list(value: list[str]) -> str | None:
    for name in value:
        if name not in KNOWN_APPLETS:
            return f"has an unknown applet {name!r} (known: {', '.join(KNOWN_APPLETS)}){suggest(name, KNOWN_APPLETS)}"
    if len(set(value)) != len(value):
        return "names an applet twice"
    return None


def suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def atr_tck_ok(atr: bytes) -> bool:
    """True if the ATR needs no TCK (T=0 only) or carries a correct one (ISO 7816-3 §8.2.5).

    The check byte is present when any TDi names a protocol other than T=0;
    then the XOR of every byte from T0 through TCK is zero.
    """
    if len(atr) < 2:
        return False
    i, y, needs_tck = 1, atr[1] >> 4, False
    k = atr[1] & 0x0F
    while True:
        i += bin(y & 0x7).count("1")  # TA, TB, TC present
        if not y & 0x8:
            break
        i += 1
        if i >= len(atr):
            return False
        td = atr[i]
        needs_tck |= (td & 0x0F) != 0
        y = td >> 4
    end = i + 1 + k  # index after the historical bytes
    if not needs_tck:
        return len(atr) == end
    if len(atr) != end + 1:
        return False
    x = 0
    for b in atr[1:]:
        x ^= b
    return x == 0
