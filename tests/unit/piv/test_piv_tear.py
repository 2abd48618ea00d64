"""Tearing: a card process SIGKILLed at random points never loses or mixes state.

A worker (piv_tear_worker.py) changes PINs, presents wrong and right PINs
and generates keys against a state file. The test kills it at random
moments (and, every other round, makes it kill itself right after a store
commit, i.e. between two writes of one command), then reopens the file and
checks what design.md promises:

* the PIN is the old or the new one, never anything else;
* the retry counter never went back up (only a right PIN restores it);
* slot 9D holds a complete key with its metadata: the old one or a new one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from emulator.factory import build_card
from emulator.profile import load_profile
from emulator.store import Store

ROUNDS = 56
WORKER = Path(__file__).with_name("piv_tear_worker.py")
REPO = Path(__file__).resolve().parents[3]
PINS = ("123456", "654321")
MAX_TRIES = 3


@dataclass
class Seen:
    pin: str
    left: int
    key: bytes | None  #: stored record of slot 9D


def observe(path: Path) -> Seen:
    store = Store(path)
    try:
        pin = json.loads(store.get("piv", "pin") or b"{}")
        key = store.get("piv", "key/9d")
    finally:
        store.close()
    value = bytes.fromhex(pin["value"]).rstrip(b"\xff").decode()
    assert pin["max"] == MAX_TRIES
    return Seen(value, int(pin["left"]), key)


def repair_puk(path: Path) -> None:
    """Harness, not card: torn unblocks may spend PUK tries; keep the PUK usable for the worker."""
    store = Store(path)
    try:
        puk = json.loads(store.get("piv", "puk") or b"{}")
        if puk["left"] <= 1:
            store.write({("piv", "puk"): json.dumps({**puk, "left": puk["max"]}).encode()})
    finally:
        store.close()


def check_key_record(raw: bytes) -> str:
    """A complete record: its DER loads and matches the algorithm in the metadata."""
    record = json.loads(raw)
    assert set(record) == {"alg", "der", "pin", "touch", "origin"}
    key = serialization.load_der_private_key(bytes.fromhex(record["der"]), password=None)
    expected = {0x11: ec.EllipticCurvePrivateKey, 0x06: rsa.RSAPrivateKey}[record["alg"]]
    assert isinstance(key, expected)
    assert record["pin"] == 2 and record["touch"] == 1 and record["origin"] == 1
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return public.hex()


def run_worker(path: Path, before: Seen, seed: int, self_kill: int) -> list[list[str]]:
    """Run one worker until it is killed; its event lines, every one of them.

    All of stdout is read through ``proc.stdout``: ``readline()`` may buffer
    lines the worker wrote right after "ready", and ``communicate()`` reads
    the pipe's descriptor directly, so it would silently drop them (the
    check then sees a counter that "skipped"). stderr goes to a file, so a
    chatty worker cannot block on a full pipe while we read stdout.
    """
    other = PINS[1] if before.pin == PINS[0] else PINS[0]
    args = [sys.executable, str(WORKER), str(path), before.pin, other, str(seed)]
    if self_kill:
        args.append(str(self_kill))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    err_path = path.with_name("worker.err")
    with open(err_path, "w") as err_file:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err_file, env=env, text=True)
    assert proc.stdout is not None
    with proc.stdout:
        first = proc.stdout.readline()
        if first.strip() != "ready":
            proc.kill()
            proc.wait(timeout=30)
            raise AssertionError(f"worker did not start: {first!r} {err_path.read_text()}")
        if not self_kill:
            time.sleep(random.uniform(0.0, 0.25))
            proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read()  # to EOF: the rest of the buffer, then the pipe
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"worker exited {proc.returncode}: {err_path.read_text()}"
    return [line.split() for line in out.splitlines() if line]


def check_round(before: Seen, events: list[list[str]], after: Seen) -> None:
    pin, left, key = before.pin, before.left, before.key
    pending: list[str] | None = None
    for words in events:
        if words[0] == "begin":
            pending = words[1:]
            continue
        pending = None
        match words[1]:
            case "right" | "unblock":
                left = MAX_TRIES
            case "wrong":
                assert int(words[2]) == left - 1, "the card reported a counter that skipped"
                left -= 1
            case "change":
                pin, left = words[2], MAX_TRIES
            case "gen":
                key = None  # a new key: checked below for completeness only
    allowed = {(pin, left)}
    if pending is not None:
        allowed.add((pin, left - 1))  # counter spent, comparison or restore not reached
        if pending[0] in ("right", "unblock"):
            allowed.add((pin, MAX_TRIES))
        if pending[0] == "change":
            allowed.add((pending[2], MAX_TRIES))
    assert (after.pin, after.left) in allowed, f"after {events[-3:]}: {after.pin}/{after.left} not in {allowed}"
    assert after.pin in PINS
    if after.key is not None:
        check_key_record(after.key)
    generating = pending is not None and pending[0] == "gen"
    if key is not None and not generating:
        assert after.key == key, "slot 9D changed without a generation"
    if key is None and before.key is not None and not any(w[:2] == ["done", "gen"] for w in events):
        raise AssertionError("lost the key")  # pragma: no cover


def test_sigkill_never_tears_piv_state(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store = Store(path)
    card = build_card(load_profile(), store)  # provision once, outside the workers
    card.power_on()
    store.close()
    rng = random.Random(os.urandom(8))
    seen = observe(path)
    deadline = time.monotonic() + 50
    rounds = 0
    while rounds < ROUNDS and time.monotonic() < deadline:
        self_kill = rng.randint(1, 12) if rounds % 2 else 0
        events = run_worker(path, seen, rng.getrandbits(32), self_kill)
        after = observe(path)
        check_round(seen, events, after)
        if after.key is not None and seen.key is not None and after.key != seen.key:
            assert any(w[:2] in (["begin", "gen"], ["done", "gen"]) for w in events)
        seen = after
        rounds += 1
        repair_puk(path)
    assert rounds >= 50, f"only {rounds} kill rounds in the time budget"
