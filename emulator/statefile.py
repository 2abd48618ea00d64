"""A card's state file on disk: recognise it, create it all at once, migrate it.

vcard marks its own SQLite files (https://www.sqlite.org/fileformat.html §1.3):
``application_id`` (header offset 68) is :data:`APPLICATION_ID` and
``user_version`` (offset 60) the state schema version. Before anything is
written to an existing file, :func:`check_existing` decides from its header
(and, for an unmarked file, its tables) whether it is a vcard card; anything
else (an empty file, garbage, another application's database, a newer schema)
is refused with one line saying what is wrong and what to do, and the file is
never modified. A file written by vcard before the marks existed has exactly
vcard's tables and is schema 0; :data:`MIGRATIONS` brings any older schema up
to :data:`SCHEMA_VERSION`, one step per version, each step in one transaction.

A new card is written whole into a private temporary file (mode 0600 from
``mkstemp``) in the target directory and linked into place only after its one
transaction committed (:func:`create`): a failure or a kill at any instant
leaves either no state file or the complete card, never a partial one.

SQLite creates ``-wal``/``-journal`` files with the mode of the database file
(os_unix.c ``findCreateFileMode``), so a 0600 database keeps them 0600 whatever
the umask. :func:`connect` opens in ``locking_mode=EXCLUSIVE`` when asked (the
daemon): SQLite then keeps the WAL index in heap memory and never creates or
mmaps a ``-shm`` file, whose pages faulting (e.g. the file made immutable)
would kill the whole process with SIGBUS (measured here: SQLite 3.40, ext4).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "StateError",
    "check_existing",
    "connect",
    "create",
    "create_tables",
]

log = logging.getLogger(__name__)

#: "vcrd": the SQLite application_id of every vcard state file
APPLICATION_ID = int.from_bytes(b"vcrd", "big")
#: the state schema this code writes; files with a higher user_version are refused
SCHEMA_VERSION = 1

_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100

#: vcard's tables, as every schema version since 0 has them
_TABLES = {
    "state": "CREATE TABLE state ("
    " ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (ns, key)) WITHOUT ROWID",
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
}
#: (name, declared type, not null, primary key position) per column
_COLUMNS = {
    "state": [("ns", "TEXT", 1, 1), ("key", "TEXT", 1, 2), ("value", "BLOB", 1, 0)],
    "meta": [("key", "TEXT", 0, 1), ("value", "TEXT", 1, 0)],
}


class StateError(ValueError):
    """A state file vcard cannot use; the message says what is wrong and what to do."""


def create_tables(db: sqlite3.Connection) -> None:
    for sql in _TABLES.values():
        db.execute(sql)


def _mark_schema_0(db: sqlite3.Connection) -> None:
    """0 -> 1: the tables are unchanged; the version and application id marks are new."""


#: MIGRATIONS[v] turns a schema-v file into a schema-(v+1) one (inside one transaction)
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _mark_schema_0}


# -- recognising a file ----------------------------------------------------------
def _refuse(path: Path, what: str, todo: str = "") -> StateError:
    todo = todo or "vcard leaves it alone: move it away, or give the profile another state_file"
    return StateError(f"state file {path} {what}; {todo}")


def check_existing(path: Path) -> None:
    """Raise :class:`StateError` unless ``path`` is a vcard state file this code can use.

    Reads only; a WAL-mode file whose tables are not yet in the main file is
    inspected through a read-only connection, which may create the ``-shm``
    any SQLite reader creates, and never writes to the database.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror})", "check its permissions") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "is not a regular file")
    if st.st_size == 0:
        raise _refuse(path, "is empty (0 bytes), not a vcard card")
    try:
        with open(path, "rb") as f:
            header = f.read(_HEADER_SIZE)
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror})", "check its permissions") from None
    if not header.startswith(_SQLITE_MAGIC):
        raise _refuse(path, "is not a SQLite database (not a vcard card, or garbage)")
    if len(header) < _HEADER_SIZE:
        raise _refuse(path, "is truncated (shorter than a SQLite header)", _DAMAGED_TODO)
    app_id = int.from_bytes(header[68:72], "big")
    version = int.from_bytes(header[60:64], "big", signed=True)
    if app_id == APPLICATION_ID:
        _check_version(path, version)
        return
    if app_id != 0:
        raise _refuse(
            path, f"is another application's SQLite database (application_id 0x{app_id:08X}), not a vcard card"
        )
    tables = _tables(path)
    if tables != set(_TABLES):
        names = ", ".join(sorted(tables)) or "none"
        raise _refuse(path, f"is a SQLite database but not a vcard card (its tables: {names})")


_DAMAGED_TODO = "restore it from a backup, or set it aside and start a new card: vcard insert --fresh"


def _check_version(path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise _refuse(
            path,
            f"was written by a newer vcard (state schema {version}; this vcard knows up to {SCHEMA_VERSION})",
            "upgrade vcard, or give the profile another state_file",
        )
    if version < 0:
        raise _refuse(path, f"has an impossible schema version {version}", _DAMAGED_TODO)


def _tables(path: Path) -> set[str]:
    """The user tables of an unmarked SQLite file, read without writing to it."""
    uri = Path(path).resolve().as_uri()
    try:
        names = _read_tables(f"{uri}?immutable=1")  # the main file only: no -wal, no -shm, no lock
        if not names and Path(f"{path}-wal").exists():
            names = _read_tables(f"{uri}?mode=ro")  # created but killed before a checkpoint
    except sqlite3.Error as exc:
        raise _refuse(path, f"cannot be read as a SQLite database ({exc})", _DAMAGED_TODO) from None
    return names


def _read_tables(uri: str) -> set[str]:
    db = sqlite3.connect(uri, uri=True)
    try:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        db.close()
    return {str(r[0]) for r in rows if not str(r[0]).startswith("sqlite_")}


def _verify_open(path: Path, db: sqlite3.Connection) -> int:
    """What the file says once open (WAL included): its schema version, tables checked."""
    app_id = int(db.execute("PRAGMA application_id").fetchone()[0])
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if app_id not in (0, APPLICATION_ID):
        raise _refuse(
            path, f"is another application's SQLite database (application_id 0x{app_id:08X}), not a vcard card"
        )
    if app_id == 0:
        version = 0
    _check_version(path, version)
    tables = {
        str(r[0])
        for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not str(r[0]).startswith("sqlite_")
    }
    if tables != set(_TABLES):
        if app_id == 0:
            names = ", ".join(sorted(tables)) or "none"
            raise _refuse(path, f"is a SQLite database but not a vcard card (its tables: {names})")
        raise _refuse(path, f"is damaged (tables {', '.join(sorted(tables)) or 'none'})", _DAMAGED_TODO)
    for name, columns in _COLUMNS.items():
        found = [(str(c[1]), str(c[2]), int(c[3]), int(c[5])) for c in db.execute(f"PRAGMA table_info({name})")]
        if found != columns:
            raise _refuse(path, f"has a table {name!r} that is not vcard's", "give the profile another state_file")
    check = db.execute("PRAGMA quick_check").fetchall()
    if [tuple(r) for r in check] != [("ok",)]:
        raise _refuse(path, f"is damaged ({check[0][0]})", _DAMAGED_TODO)
    return version


def _migrate(db: sqlite3.Connection, version: int) -> None:
    while version < SCHEMA_VERSION:
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        version += 1


def connect(path: Path, *, exclusive: bool, synchronous: str) -> sqlite3.Connection:
    """Open an existing state file read-write: recognised, migrated, proven writable."""
    check_existing(path)
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=1.0)
    except sqlite3.Error as exc:
        raise _refuse(path, f"cannot be opened ({exc})", "check it and its directory's permissions") from None
    try:
        if exclusive:  # before the first WAL access: no -shm, no mmap (module docstring)
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA mmap_size=0")
        version = _verify_open(path, db)
        _tighten(path)
        _migrate(db, version)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        # Prove now, at insert, that the card can be written: a read-only file or
        # directory would otherwise answer 6581 to every write later.
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except StateError:
        db.close()
        raise
    except sqlite3.Error as exc:
        db.close()
        raise _explain(path, exc) from None
    return db


def _tighten(path: Path) -> None:
    """A vcard file of ours readable by others (written before vcard made them 0600): make it 0600."""
    for extra in (path, Path(f"{path}-wal"), Path(f"{path}-journal"), Path(f"{path}-shm")):
        try:
            st = os.stat(extra)
            if st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(extra, 0o600)
                log.warning(
                    "state file %s had mode %o; now 600 (it holds the card's secrets)", extra, st.st_mode & 0o777
                )
        except OSError:
            continue


def _explain(path: Path, exc: sqlite3.Error) -> StateError:
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith("SQLITE_BUSY"):
        return _refuse(path, "is in use by another process (another vcard daemon?)", "remove the card there first")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return _refuse(path, f"is damaged ({exc})", _DAMAGED_TODO)
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM", "SQLITE_FULL")):
        return _refuse(
            path,
            f"cannot be written ({exc})",
            f"make it and {path.parent} writable by you (chmod u+w), free disk space, or give the profile another state_file",
        )
    return _refuse(path, f"cannot be used ({exc})", _DAMAGED_TODO)


# -- creating a card ---------------------------------------------------------------
def create(path: Path, rows: Iterable[tuple[str, str, bytes]], meta: Iterable[tuple[str, str]]) -> None:
    """Write a new state file holding ``rows`` and ``meta`` in one step (module docstring).

    Raises :class:`StateError` if ``path`` exists or cannot be created; then
    nothing is left behind.
    """
    parent = path.parent
    try:
        if not parent.exists():
            parent.mkdir(parents=True, mode=0o700)
            os.chmod(parent, 0o700)  # whatever the umask
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=parent)  # 0600
        os.close(fd)
    except OSError as exc:
        raise StateError(
            f"cannot create state file {path}: {exc.strerror}; make {parent} writable by you, "
            "or choose another state directory (--state-dir or VCARD_STATE_DIR)"
        ) from None
    tmp = Path(tmp_name)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA mmap_size=0")
            db.execute("BEGIN IMMEDIATE")
            create_tables(db)
            db.executemany("INSERT INTO state (ns, key, value) VALUES (?, ?, ?)", rows)
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")  # synchronous=FULL here: the new card is on disk
        finally:
            db.close()
        _link_into_place(tmp, path)
    except FileExistsError:
        raise StateError(f"state file {path} appeared while the card was being created; insert again") from None
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StateError(
            f"cannot create state file {path}: {reason}; make {parent} writable by you and free disk space, "
            "or choose another state directory (--state-dir or VCARD_STATE_DIR)"
        ) from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _link_into_place(tmp: Path, path: Path) -> None:
    """``tmp`` becomes ``path``, never replacing an existing file; then the directory is synced."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.rename(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
