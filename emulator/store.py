"""Persistent card state: one SQLite file per card, one transaction per change.

The card side never writes half a command. Applets read through an in-memory
mirror and change state with :meth:`Store.write` (or a :meth:`Store.batch`),
which commits every change of one call in a single SQLite transaction before
the mirror is updated. A process killed at any instant therefore leaves the
file holding the state before the call or the state after it, never a mix
(SQLite's rollback journal / WAL guarantees that; see the tear test).

The file itself (what is a vcard file, migrations, creating a new card in one
step, file modes) is :mod:`emulator.statefile`'s job. A store whose file does
not exist yet creates it at its first commit, with everything of that commit:
building a card inside one :meth:`Store.batch` therefore writes the whole card
or nothing.

A write that fails at run time (disk full, I/O error, a file made read-only)
raises :class:`StorageFailure`, a ``CardError`` answered ``6581`` (memory
failure, ISO 7816-4 §5.1.3): the command changes nothing, the daemon logs one
line, and the other slots never notice.

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
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .iso7816 import SW, CardError
from .statefile import SCHEMA_VERSION, StateError, connect, create, create_tables

__all__ = ["SCHEMA_VERSION", "MemoryStore", "Namespace", "StateError", "StorageFailure", "Store"]

log = logging.getLogger(__name__)

_Key = tuple[str, str]


class StorageFailure(CardError):
    """The state file could not be written: the card answers 6581 and keeps its old state."""

    def __init__(self, detail: str) -> None:
        super().__init__(SW.MEMORY_FAILURE, detail)


def _synchronous() -> str:
    # NORMAL in WAL mode: a commit is in the WAL (the OS page cache) when it
    # returns, so a killed process, the virtual card's "pulled mid-command",
    # loses nothing and never tears. Only a crash of the whole OS could drop
    # the last commits, and even then the file stays consistent (old state).
    # FULL would add an fsync (2-4 ms here) to every PIN try and key write.
    sync = os.environ.get("VCARD_SQLITE_SYNC", "NORMAL").upper()
    if sync not in ("NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"VCARD_SQLITE_SYNC must be NORMAL, FULL or EXTRA, got {sync!r}")
    return sync


class Store:
    """Card state in ``path`` (created at the first commit if missing). ``":memory:"`` for tests.

    ``exclusive``: hold the file locked while open, so no other process can use
    the same card and SQLite keeps its WAL index off any mmapped ``-shm`` file
    (the daemon; see :mod:`emulator.statefile`). Raises :class:`StateError`
    (one line: what is wrong, what to do) for a file that is not a usable
    vcard card; such a file is never modified.
    """

    def __init__(self, path: str | Path, *, exclusive: bool = False) -> None:
        self.path = str(path)
        self.exclusive = exclusive
        self._sync = _synchronous()
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._cache: dict[_Key, bytes] = {}
        self._meta: dict[str, str] = {}
        self._pending: dict[_Key, bytes | None] | None = None
        self._pending_meta: dict[str, str] | None = None
        self._failing = False
        if self.path == ":memory:":
            self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            create_tables(self._db)
        elif os.path.lexists(self.path):
            self._open()

    @property
    def exists(self) -> bool:
        """False until the first commit of a new card created its file."""
        return self._db is not None

    def _open(self) -> None:
        db = connect(Path(self.path), exclusive=self.exclusive, synchronous=self._sync)
        try:
            self._cache = {(ns, key): bytes(value) for ns, key, value in db.execute("SELECT ns, key, value FROM state")}
            self._meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
        except sqlite3.Error as exc:
            db.close()
            raise StateError(f"state file {self.path} cannot be read ({exc}); restore it from a backup") from None
        self._db = db

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
                assert self._pending_meta is not None
                saved, saved_meta = dict(self._pending), dict(self._pending_meta)
                try:
                    yield
                except BaseException:  # undo this block's writes only
                    self._pending.clear()
                    self._pending.update(saved)
                    self._pending_meta.clear()
                    self._pending_meta.update(saved_meta)
                    raise
                return
            self._pending, self._pending_meta = {}, {}
            try:
                yield
                pending, pending_meta = self._pending, self._pending_meta
            finally:
                self._pending = self._pending_meta = None
            if pending_meta:
                self._commit_all(pending, pending_meta)
            else:
                self._commit(pending)

    def _commit(self, changes: dict[_Key, bytes | None]) -> None:
        self._commit_all(changes, {})

    def _commit_all(self, changes: dict[_Key, bytes | None], meta: dict[str, str]) -> None:
        if not changes and not meta:
            return
        for value in changes.values():  # a bad value is a bug of the caller, before any I/O
            if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"store values are bytes, got {type(value).__name__}")
        if self._db is None:
            self._create(changes, meta)
        else:
            self._transaction(self._db, changes, meta)
        for k, value in changes.items():
            if value is None:
                self._cache.pop(k, None)
            else:
                self._cache[k] = bytes(value)
        self._meta.update(meta)

    def _create(self, changes: dict[_Key, bytes | None], meta: dict[str, str]) -> None:
        rows = [(ns, key, bytes(v)) for (ns, key), v in changes.items() if v is not None]
        create(Path(self.path), rows, sorted(meta.items()))
        self._open()

    def _transaction(self, db: sqlite3.Connection, changes: dict[_Key, bytes | None], meta: dict[str, str]) -> None:
        try:
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
                for key, text in meta.items():
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, text),
                    )
                db.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._failed(exc)
        if self._failing:
            self._failing = False
            log.warning("card state %s: writes work again", self.path)

    def _failed(self, exc: sqlite3.Error) -> None:
        """One line in the log for a run of failures (never a traceback); the card answers 6581."""
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        detail = f"card state {self.path}: write failed ({name}: {exc})"
        if not self._failing:
            self._failing = True
            log.error("%s; the card answers 6581 (memory failure) until it can write again", detail)
        raise StorageFailure(detail) from None

    # -- metadata -----------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            if self._pending_meta is not None and key in self._pending_meta:
                return self._pending_meta[key]
            return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            if self._pending_meta is not None:
                self._pending_meta[key] = value
                return
            self._commit_all({}, {key: value})

    def namespace(self, ns: str) -> Namespace:
        return Namespace(self, ns)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with suppress(sqlite3.Error):
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
