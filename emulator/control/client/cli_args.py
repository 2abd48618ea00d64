"""Argument types shared by every `vcard` subcommand (sans-I/O but for the directory check).

Each type turns the text of one option into its value or raises
:class:`argparse.ArgumentTypeError` with a message that starts with the
option's name, says what is allowed and repeats what was given; the CLI
prints it in one line and exits 2 before doing anything.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from emulator.control.daemon.server import VPCD_SLOTS

__all__ = ["MAX_TIMEOUT", "SLOTS", "directory", "slot", "timeout"]

#: vpcd's slots, one reader each ("Virtual PCD 00 00", "... 00 01"); the daemon serves them all
SLOTS = range(VPCD_SLOTS)
#: a wait longer than an hour is a typo, not a plan
MAX_TIMEOUT = 3600.0


def _valid_slots() -> str:
    return " or ".join(str(n) for n in SLOTS)


def slot(text: str) -> int:
    """``--slot``: a vpcd slot number in decimal (``0``, ``1``); never hex, never negative."""
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"--slot must be a number: {_valid_slots()} (one per vpcd reader), got {text!r}"
        )
    value = int(text)
    if value not in SLOTS:
        raise argparse.ArgumentTypeError(
            f"--slot must be {SLOTS.start}-{SLOTS.stop - 1} ({_valid_slots()}: one per vpcd reader), got {value}"
        )
    return value


def timeout(text: str) -> float:
    """``--timeout``: seconds, finite, more than 0 and at most :data:`MAX_TIMEOUT`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"--timeout must be seconds, more than 0 and at most {MAX_TIMEOUT:g} (e.g. 5 or 0.5), got {text!r}"
        )
    return value


def directory(option: str) -> Callable[[str], Path]:
    """A directory option (``--runtime-dir``, ``--state-dir``): absolute; it, or what exists of it, a directory.

    A missing directory is fine (``vcard up`` creates it); a path through a
    regular file (``/etc/passwd``) is a usage error, not a crash later.
    """

    def convert(text: str) -> Path:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{option} must be a directory path, got an empty string")
        path = Path(text).absolute()
        for part in (path, *path.parents):
            try:
                if part.is_dir():
                    return path
                if part.exists():
                    what = "is not a directory" if part == path else f"goes through {part}, which is not a directory"
                    raise argparse.ArgumentTypeError(f"{option} {text} {what}")
            except OSError as exc:  # e.g. a path too long, or a loop of links
                raise argparse.ArgumentTypeError(f"{option} {text}: {exc.strerror}") from None
        return path

    return convert
