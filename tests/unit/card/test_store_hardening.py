"""Issue 8, defects 2, 3 (store side) and 4: state files are private, vcard's own, written whole.

Real SQLite files in ``tmp_path``; nothing is mocked. Storage failures are
real SQLite failures provoked through SQLite itself (``max_page_count`` for a
full disk, ``query_only`` for storage that turned read-only).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from emulator.factory import build_card, open_card
from emulator.profile import load_profile
from emulator.statefile import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from emulator.store import StateError, StorageFailure, Store

SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
VERIFY = bytes.fromhex("0020008008")
TRIES = bytes.fromhex("0020008000")

#: what vcard wrote before its files were marked (schema 0)
LEGACY_TABLES = (
    "CREATE TABLE IF NOT EXISTS state ( ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (ns, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def pin(value: bytes) -> bytes:
    return value + b"\xff" * (8 - len(value))


# -- defect 2: modes ----------------------------------------------------------------
def test_a_new_card_is_private_whatever_the_umask(tmp_path: Path, loose_umask: None) -> None:
    state = tmp_path / "state" / "card.sqlite"
    card, store = open_card(replace(load_profile(), state_file=state))
    try:
        card.power_on()
        assert card.transmit(SELECT_PIV)[-2:] == b"\x90\x00"
        assert card.transmit(VERIFY + pin(b"000000"))[-2:] == b"\x63\xc2"  # a write: the WAL exists now
        assert mode(state.parent) == 0o700
        assert mode(state) == 0o600
        assert mode(Path(f"{state}-wal")) == 0o600
        # The daemon's store keeps the WAL index in memory: no -shm to read, or to fault on (SIGBUS).
        assert not Path(f"{state}-shm").exists()
    finally:
        store.close()
    assert sorted(p.name for p in state.parent.iterdir()) == ["card.sqlite"]


def test_a_plain_store_file_is_private_too(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "c.sqlite"
    store = Store(path)
    store.write({("ns", "k"): b"v"})
    for suffix in ("", "-wal", "-shm"):
        extra = Path(f"{path}{suffix}")
        if extra.exists():
            assert mode(extra) == 0o600, extra
    store.close()


# -- defect 4: marks and migrations ---------------------------------------------------
def test_new_files_carry_vcards_marks(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    Store(path).write({("ns", "k"): b"v"})
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_every_older_schema_has_a_migration() -> None:
    assert sorted(MIGRATIONS) == list(range(SCHEMA_VERSION))


@pytest.mark.parametrize("checkpointed", [True, False], ids=["checkpointed", "tables-only-in-wal"])
def test_an_unmarked_file_of_vcards_tables_is_migrated_and_kept(tmp_path: Path, checkpointed: bool) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for sql in LEGACY_TABLES:
        db.execute(sql)
    db.execute("INSERT INTO state VALUES ('piv', 'pin', x'313233')")
    db.execute("INSERT INTO meta VALUES ('profile', 'default')")
    if checkpointed:
        db.close()
    else:  # as a killed daemon left it: everything still in the -wal
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # nothing forced out; the connection just stays open
    store = Store(path, exclusive=checkpointed)
    assert store.get("piv", "pin") == b"123"
    assert store.get_meta("profile") == "default"
    store.close()
    if not checkpointed:
        db.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert check.execute("SELECT value FROM state").fetchall() == [(b"123",)]
    check.close()


def test_opening_an_own_card_left_readable_by_others_makes_it_private(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    store = Store(path)
    store.write({("piv", "pin"): b"123456"})
    store.close()
    os.chmod(path, 0o644)  # as vcard left its files before they were made 0600
    again = Store(path, exclusive=True)
    assert mode(path) == 0o600 and mode(Path(f"{path}-wal")) == 0o600
    assert again.get("piv", "pin") == b"123456"
    again.close()


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    db.execute("INSERT INTO invoices VALUES (1, 9.5)")
    db.commit()
    db.close()


def _foreign_with_id(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1196444237")  # 'GPKG'
    for sql in LEGACY_TABLES:  # even with vcard's very tables: the id says it is not ours
        db.execute(sql)
    db.commit()
    db.close()


def _newer(path: Path) -> None:
    store = Store(path)
    store.write({("ns", "k"): b"v"})
    store.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()


def _truncated(path: Path) -> None:
    store = Store(path)
    store.write({("ns", f"k{i}"): os.urandom(3000) for i in range(8)})
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _short(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\x10\x00")


CASES = {
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "garbage": (lambda p: p.write_bytes(os.urandom(5000)), "not a SQLite database"),
    "text": (lambda p: p.write_text("[piv]\npin = '123456'\n"), "not a SQLite database"),
    "foreign": (_foreign, "not a vcard card (its tables: invoices)"),
    "foreign-id": (_foreign_with_id, "another application's"),
    "newer": (_newer, "newer vcard"),
    "truncated": (_truncated, "damaged"),
    "short": (_short, "truncated"),
    "directory": (lambda p: p.mkdir(), "not a regular file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_anything_but_a_vcard_card_is_refused_and_left_untouched(tmp_path: Path, case: str) -> None:
    make, words = CASES[case]
    path = tmp_path / "card.sqlite"
    make(path)
    before = snapshot(tmp_path) if path.is_file() else None
    with pytest.raises(StateError) as err:
        open_card(replace(load_profile(), state_file=path))
    message = str(err.value)
    assert words in message, message
    assert str(path) in message and "\n" not in message
    assert any(hint in message for hint in ("move it away", "upgrade vcard", "--fresh")), message
    if before is not None:
        assert snapshot(tmp_path) == before  # not one byte written, no -wal/-shm left beside it


def test_a_card_in_use_by_another_daemon_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "card.sqlite"
    _, first = open_card(replace(load_profile(), state_file=path))
    try:
        import subprocess
        import sys

        code = (
            "import sys; from pathlib import Path; from emulator.store import Store, StateError\n"
            "try:\n    Store(Path(sys.argv[1]), exclusive=True)\n"
            "except StateError as e:\n    print(e); sys.exit(3)\n"
        )
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 3, out
        assert "in use by another process" in out.stdout
    finally:
        first.close()


# -- defect 3 (store side): creation is all or nothing -----------------------------------
class Boom(Exception):
    pass


def test_a_card_that_fails_to_build_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    store = Store(path)
    with pytest.raises(Boom), store.batch():
        store.write({("isd", "keys"): b"partial"})
        store.set_meta("profile", "x")
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_open_card_rejected_half_way_writes_nothing(tmp_path: Path) -> None:
    """The PIV applet rejects its PIN after the ISD wrote its key sets: no file at all."""
    path = tmp_path / "new.sqlite"
    with pytest.raises(ValueError):  # ProfileError or the applet's rejection: either way before any write
        profile = replace(load_profile(), state_file=path)
        open_card(replace(profile, piv=dict(profile.piv, pin="12")))
    assert list(tmp_path.iterdir()) == []


def test_the_new_card_is_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    store = Store(path)
    commits = []
    real = store._commit_all

    def counting(changes: dict, meta: dict) -> None:  # type: ignore[type-arg]
        commits.append(len(changes) + len(meta))
        real(changes, meta)

    store._commit_all = counting  # type: ignore[method-assign]
    with store.batch():
        build_card(load_profile(), store)
    assert len(commits) == 1 and commits[0] > 5
    assert path.exists()
    store.close()


def test_a_directory_that_cannot_be_created_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError) as err:
        open_card(replace(load_profile(), state_file=blocker / "sub" / "card.sqlite"))
    assert "cannot create state file" in str(err.value) and "\n" not in str(err.value)


# -- storage failures at run time: 6581, one log line, old state kept ---------------------
def test_a_full_disk_answers_6581_and_keeps_the_old_state(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.sqlite"
    store = Store(path, exclusive=True)
    store.write({("ns", "a"): b"old"})
    assert store._db is not None
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    with caplog.at_level(logging.WARNING, logger="emulator.store"):
        for _ in range(3):
            with pytest.raises(StorageFailure) as err:
                store.write({("ns", "a"): b"new", ("ns", "big"): os.urandom(50_000)})
            assert err.value.sw == 0x6581
    assert store.get("ns", "a") == b"old" and store.get("ns", "big") is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None, errors  # one line for the run, no traceback
    assert "SQLITE_FULL" in errors[0].getMessage()
    store._db.execute("PRAGMA max_page_count = 1000000")
    store.write({("ns", "a"): b"new"})
    store.close()
    assert Store(path).get("ns", "a") == b"new"


def test_storage_turned_read_only_gives_6581_not_6f00(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """VERIFY commits the try before comparing: if that fails, the card answers 6581 and compares nothing."""
    card, store = open_card(replace(load_profile(), state_file=tmp_path / "c.sqlite"))
    card.power_on()
    assert card.transmit(SELECT_PIV)[-2:] == b"\x90\x00"
    assert store._db is not None
    store._db.execute("PRAGMA query_only = 1")
    with caplog.at_level(logging.INFO):
        assert card.transmit(VERIFY + pin(b"123456")) == b"\x65\x81"
        assert card.transmit(VERIFY + pin(b"000000")) == b"\x65\x81"
    assert not any(r.exc_info for r in caplog.records), "no traceback for a storage failure"
    assert sum(r.levelno >= logging.ERROR for r in caplog.records) == 1
    store._db.execute("PRAGMA query_only = 0")
    assert card.transmit(TRIES) == b"\x63\xc3"  # no try was spent
    assert card.transmit(VERIFY + pin(b"123456")) == b"\x90\x00"
    store.close()
