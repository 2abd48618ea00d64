"""Persistent card state: one SQLite file per card, one transaction per change.

The card side never writes half a command. Applets read through an in-memory
mirror and change state with :meth:`Store.write` (or a :meth:`Store.batch`),
which commits every change of one call in a single SQLite transaction before
the mirror is updated. A process killed at any instant therefore leaves the
file holding the state before the call or the state after it, never a mix
(SQLite's rollback journal / WAL guarantees that; see the tear test).

Values are bytes; each applet owns a namespace and chooses its encoding.
Transient state (selection, sessions, PIN-verified flags) never comes here.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["MemoryStore", "Namespace", "Store"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_Key = tuple[str, str]


class Store:
    """Card state in ``path`` (created if missing). ``":memory:"`` for tests."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit is in the WAL (the OS page cache) when it
        # returns, so a killed process, the virtual card's "pulled mid-command",
        # loses nothing and never tears. Only a crash of the whole OS could drop
        # the last commits, and even then the file stays consistent (old state).
        # FULL would add an fsync (2-4 ms here) to every PIN try and key write.
        sync = os.environ.get("VCARD_SQLITE_SYNC", "NORMAL").upper()
        if sync not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"VCARD_SQLITE_SYNC must be NORMAL, FULL or EXTRA, got {sync!r}")
        self._db.execute(f"PRAGMA synchronous={sync}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS state ("
            " ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
            " PRIMARY KEY (ns, key)) WITHOUT ROWID"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._lock = threading.RLock()
        self._cache: dict[_Key, bytes] = {
            (ns, key): bytes(value) for ns, key, value in self._db.execute("SELECT ns, key, value FROM state")
        }
        self._pending: dict[_Key, bytes | None] | None = None

    # -- reading ------------------------------------------------------------
    def get(self, ns: str, key: str) -> bytes | None:
        with self._lock:
            if self._pending is not None and (ns, key) in self._pending:
                return self._pending[(ns, key)]
            return self._cache.get((ns, key))

    def keys(self, ns: str) -> list[str]:
        with self._lock:
            names = {k for (n, k) in self._cache if n == ns}
            if self._pending is not None:
                for (n, k), v in self._pending.items():
                    if n == ns:
                        (names.add if v is not None else names.discard)(k)
            return sorted(names)

    def is_empty(self) -> bool:
        with self._lock:
            return not self._cache

    # -- writing ------------------------------------------------------------
    def write(self, changes: Mapping[_Key, bytes | None]) -> None:
        """Commit all ``changes`` atomically; a value of None deletes the key."""
        with self._lock:
            if self._pending is not None:  # inside batch(): defer to its commit
                self._pending.update(changes)
                return
            self._commit(dict(changes))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group every write inside the block into one transaction.

        If the block raises, nothing of it is written (the card answers an
        error and the state is as before the command).
        """
        with self._lock:
            if self._pending is not None:  # nested: the outer batch commits
                saved = dict(self._pending)
                try:
                    yield
                except BaseException:  # undo this block's writes only
                    self._pending.clear()
                    self._pending.update(saved)
                    raise
                return
            self._pending = {}
            try:
                yield
                pending = self._pending
            finally:
                self._pending = None
            self._commit(pending)

    def _commit(self, changes: dict[_Key, bytes | None]) -> None:
        if not changes:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for (ns, key), value in changes.items():
                if value is None:
                    db.execute("DELETE FROM state WHERE ns = ? AND key = ?", (ns, key))
                else:
                    db.execute(
                        "INSERT INTO state (ns, key, value) VALUES (?, ?, ?)"
                        " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                        (ns, key, bytes(value)),
                    )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for k, value in changes.items():
            if value is None:
                self._cache.pop(k, None)
            else:
                self._cache[k] = bytes(value)

    # -- metadata -----------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def namespace(self, ns: str) -> Namespace:
        return Namespace(self, ns)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def MemoryStore() -> Store:  # noqa: N802 - reads like a class at call sites
    """A store that lives only in memory (unit tests)."""
    return Store(":memory:")


class Namespace:
    """One applet's view of the store: its keys, bytes or JSON values."""

    def __init__(self, store: Store, ns: str) -> None:
        self.store = store
        self.ns = ns

    def get(self, key: str) -> bytes | None:
        return self.store.get(self.ns, key)

    def get_json(self, key: str, default: Any = None) -> Any:
        raw = self.store.get(self.ns, key)
        return default if raw is None else json.loads(raw)

    def put(self, key: str, value: bytes | None) -> None:
        self.store.write({(self.ns, key): value})

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value, sort_keys=True).encode())

    def put_many(self, values: Mapping[str, bytes | None]) -> None:
        self.store.write({(self.ns, k): v for k, v in values.items()})

    def delete(self, key: str) -> None:
        self.put(key, None)

    def keys(self) -> list[str]:
        return self.store.keys(self.ns)

    def batch(self) -> Any:
        return self.store.batch()
