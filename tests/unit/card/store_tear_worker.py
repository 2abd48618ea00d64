"""Tear-test worker: write the pair (a, b) with one counter value per ``Store.write``, forever.

Usage: store_tear_worker.py STATE_FILE. Prints ``ready N`` once the store is
open (N: the counter found), then N after each write has returned, i.e. committed.
The test SIGKILLs it at random moments.
"""

from __future__ import annotations

import sys

from emulator.store import Store


def value(n: int) -> bytes:
    """The counter, then filler of varying size so that commits span one or several pages."""
    return f"{n}:".encode() + bytes([n % 251]) * (n % 7 * 1500)


def counter(raw: bytes | None) -> int:
    return 0 if raw is None else int(raw.split(b":", 1)[0])


def main(path: str) -> None:
    store = Store(path)
    n = counter(store.get("tear", "a"))
    print("ready", n, flush=True)
    while True:
        n += 1
        v = value(n)
        store.write({("tear", "a"): v, ("tear", "b"): v})
        print(n, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
