"""Store: atomic writes and batches, persistence, namespaces, and a SIGKILL tear test."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulator.store import MemoryStore, Namespace, Store

REPO = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("store_tear_worker.py")


class Boom(Exception):
    pass


def test_write_get_and_delete() -> None:
    store = MemoryStore()
    assert store.is_empty()
    store.write({("ns", "a"): b"1", ("ns", "b"): b"2", ("other", "a"): b"3"})
    assert not store.is_empty()
    assert (store.get("ns", "a"), store.get("ns", "b"), store.get("other", "a")) == (b"1", b"2", b"3")
    assert store.get("ns", "missing") is None
    assert store.keys("ns") == ["a", "b"]
    store.write({("ns", "a"): None, ("ns", "b"): b"22"})
    assert store.get("ns", "a") is None
    assert store.get("ns", "b") == b"22"
    assert store.keys("ns") == ["b"]
    store.write({("ns", "nothing-there"): None})  # deleting a missing key is fine
    store.write({})


def test_a_failing_write_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "card.sqlite")
    store.write({("ns", "a"): b"old"})
    with pytest.raises(TypeError):
        store.write({("ns", "a"): b"new", ("ns", "b"): "not bytes"})  # type: ignore[dict-item]
    assert store.get("ns", "a") == b"old"
    assert store.get("ns", "b") is None
    store.close()
    again = Store(tmp_path / "card.sqlite")
    assert (again.get("ns", "a"), again.get("ns", "b")) == (b"old", None)


def test_batch_commits_once_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "card.sqlite"
    store = Store(path)
    store.write({("ns", "gone"): b"x"})
    with store.batch():
        store.write({("ns", "a"): b"1"})
        store.write({("ns", "b"): b"2", ("ns", "gone"): None})
        # the block sees its own writes; the file does not yet
        assert store.get("ns", "a") == b"1"
        assert store.get("ns", "gone") is None
        assert store.keys("ns") == ["a", "b"]
        assert Store(path).get("ns", "a") is None
    assert Store(path).keys("ns") == ["a", "b"]


def test_an_exception_inside_batch_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "card.sqlite"
    store = Store(path)
    store.write({("ns", "a"): b"old"})
    with pytest.raises(Boom), store.batch():
        store.write({("ns", "a"): b"new"})
        store.write({("ns", "b"): b"new"})
        raise Boom
    assert store.get("ns", "a") == b"old"
    assert store.get("ns", "b") is None
    assert store.keys("ns") == ["a"]
    store.close()
    assert Store(path).keys("ns") == ["a"]
    assert Store(path).get("ns", "a") == b"old"


def test_nested_batch_commits_with_the_outer_one() -> None:
    store = MemoryStore()
    with store.batch():
        store.write({("ns", "a"): b"1"})
        with store.batch():
            store.write({("ns", "b"): b"2"})
        assert store.get("ns", "b") == b"2"
    assert store.keys("ns") == ["a", "b"]


def test_a_failed_nested_batch_is_undone_even_if_the_outer_block_goes_on() -> None:
    store = MemoryStore()
    store.write({("ns", "a"): b"old"})
    with store.batch():
        store.write({("ns", "x"): b"outer"})
        with pytest.raises(Boom), store.batch():
            store.write({("ns", "a"): b"inner", ("ns", "y"): b"inner"})
            raise Boom
        assert store.get("ns", "a") == b"old"
    assert store.keys("ns") == ["a", "x"]
    assert store.get("ns", "a") == b"old"


def test_reopen_persists_values_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "card.sqlite"  # parents are created
    store = Store(path)
    store.write({("ns", "a"): b"\x00\xff" * 100, ("ns", "b"): b""})
    store.set_meta("profile", "default")
    store.set_meta("profile", "other")
    store.write({("ns", "b"): None})
    store.close()
    again = Store(path)
    assert again.get("ns", "a") == b"\x00\xff" * 100
    assert again.get("ns", "b") is None
    assert again.get_meta("profile") == "other"
    assert again.get_meta("missing") is None


def test_memory_stores_are_independent() -> None:
    one, two = MemoryStore(), MemoryStore()
    one.write({("ns", "a"): b"1"})
    assert two.get("ns", "a") is None


def test_namespace_helpers() -> None:
    store = MemoryStore()
    ns = store.namespace("piv")
    other = store.namespace("isd")
    assert isinstance(ns, Namespace)
    assert ns.get_json("pin") is None
    assert ns.get_json("pin", {"left": 3}) == {"left": 3}
    ns.put_json("pin", {"max": 3, "left": 2, "value": "31"})
    assert ns.get("pin") == b'{"left": 2, "max": 3, "value": "31"}'  # sorted keys: stable bytes
    assert ns.get_json("pin") == {"left": 2, "max": 3, "value": "31"}
    ns.put("raw", b"\x01")
    ns.put_many({"k1": b"1", "k2": b"2", "raw": None})
    assert ns.keys() == ["k1", "k2", "pin"]
    assert other.keys() == []
    assert store.get("piv", "k1") == b"1"
    ns.delete("k1")
    assert ns.keys() == ["k2", "pin"]
    with pytest.raises(Boom), ns.batch():
        ns.put("k2", b"changed")
        other.put("x", b"1")
        raise Boom
    assert ns.get("k2") == b"2"
    assert other.get("x") is None


# -- tearing -----------------------------------------------------------------------------
ROUNDS = 60
SEED = 20240607


def _counter(raw: bytes | None) -> int:
    return 0 if raw is None else int(raw.split(b":", 1)[0])


def _read_pair(path: Path) -> tuple[bytes | None, bytes | None]:
    store = Store(path)
    try:
        return store.get("tear", "a"), store.get("tear", "b")
    finally:
        store.close()


def _committed(out: Path) -> int | None:
    """The last counter the worker reported as written (its write had returned)."""
    *complete, _cut = out.read_text().split("\n")  # after the last newline: a cut line or ""
    done = [line for line in complete if line.isdigit()]
    return int(done[-1]) if done else None


def _wait_ready(out: Path, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not out.read_text().startswith("ready"):
        assert proc.poll() is None, f"worker exited with {proc.returncode}"
        assert time.monotonic() < deadline, "worker did not open the store"
        time.sleep(0.002)


def test_sigkill_never_tears_a_write(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "tear.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    last = 0
    killed_while_writing = 0
    started = time.monotonic()
    for round_ in range(ROUNDS):
        out = tmp_path / f"out{round_}.txt"
        with out.open("w") as sink:
            proc = subprocess.Popen([sys.executable, str(WORKER), str(path)], stdout=sink, env=env, cwd=REPO)
            try:
                if rng.random() < 0.2:  # anywhere, start-up and opening the store included
                    time.sleep(rng.uniform(0.0, 0.15))
                else:  # while writing, however slow the start-up is
                    _wait_ready(out, proc)
                    time.sleep(rng.uniform(0.0, 0.08))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        a, b = _read_pair(path)
        where = f"round {round_} (seed {SEED})"
        assert a == b, f"{where}: torn write, a={a!r:.40} b={b!r:.40}"
        now = _counter(a)
        assert now >= last, f"{where}: counter went back from {last} to {now}"
        committed = _committed(out)
        if committed is not None:
            assert now >= committed, f"{where}: write {committed} had returned but the file holds {now}"
            killed_while_writing += 1
        last = now
    assert killed_while_writing >= ROUNDS // 2, "the worker was killed before it wrote, in too many rounds"
    assert last > ROUNDS, "too few writes happened for the test to mean anything"
    assert time.monotonic() - started < 30, "keep the tear test short"
