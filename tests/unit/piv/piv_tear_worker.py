"""Worker for the tear test: drives a card on a state file until it is killed.

Usage: piv_tear_worker.py STATE_FILE CURRENT_PIN OTHER_PIN SEED [SELF_KILL_AFTER_COMMITS]

Prints one line per event, flushed: ``ready``, then for each action
``begin <action> ...`` before sending it and ``done <action> ...`` after the
card answered. With SELF_KILL_AFTER_COMMITS = n > 0 the worker SIGKILLs
itself right after the n-th store commit, i.e. exactly between two writes
of one command (e.g. after the PIN counter decrement, before the restore).
"""

from __future__ import annotations

import os
import random
import signal
import sys

from emulator.factory import build_card
from emulator.profile import load_profile
from emulator.store import Store

SELECT = bytes.fromhex("00A4040009A00000030800001000")
PUK = "12345678"
MGMT_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")


def say(*words: object) -> None:
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def pin_block(pin: str) -> bytes:
    return pin.encode().ljust(8, b"\xff")


def main() -> None:
    path, pin, other, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    kill_after = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    rng = random.Random(seed)
    store = Store(path)
    if kill_after:
        commit = store._commit
        count = 0

        def commit_then_maybe_die(changes: dict) -> None:  # type: ignore[type-arg]
            nonlocal count
            commit(changes)
            count += 1
            if count >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

        store._commit = commit_then_maybe_die  # type: ignore[method-assign]
    card = build_card(load_profile(), store)
    card.power_on()
    assert card.transmit(SELECT)[-2:] == b"\x90\x00"

    def send(apdu: bytes) -> tuple[bytes, int]:
        resp = card.transmit(apdu)
        return resp[:-2], int.from_bytes(resp[-2:], "big")

    def authenticate() -> None:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
        from cryptography.hazmat.primitives.ciphers import Cipher, modes

        cipher = Cipher(TripleDES(MGMT_KEY), modes.ECB())
        out, sw = send(bytes.fromhex("008703 9B 04 7C028100".replace(" ", "")))
        assert sw == 0x9000, hex(sw)
        challenge = out[4:12]
        enc = cipher.encryptor()
        answer = enc.update(challenge) + enc.finalize()
        _, sw = send(bytes.fromhex("0087039B0C7C0A8208") + answer)
        assert sw == 0x9000, hex(sw)

    def tries_left() -> int:
        out, sw = send(bytes.fromhex("00F7008000"))
        assert sw == 0x9000
        return out[-1]

    say("ready")
    while True:
        left = tries_left()
        roll = rng.random()
        if left == 0:  # a tear during a right PIN can block it: unblock with the PUK
            say("begin unblock", pin)
            _, sw = send(bytes.fromhex("002C008010") + pin_block(PUK) + pin_block(pin))
            assert sw == 0x9000, hex(sw)
            say("done unblock")
        elif left <= 2 or roll < 0.2:
            say("begin right", pin)
            _, sw = send(bytes.fromhex("0020008008") + pin_block(pin))
            assert sw == 0x9000, hex(sw)
            say("done right")
        elif roll < 0.5:
            say("begin wrong")
            _, sw = send(bytes.fromhex("0020008008") + pin_block("000000"))
            assert sw & 0xFFF0 == 0x63C0, hex(sw)
            say("done wrong", sw & 0x0F)
        elif roll < 0.75:
            say("begin change", pin, other)
            _, sw = send(bytes.fromhex("0024008010") + pin_block(pin) + pin_block(other))
            assert sw == 0x9000, hex(sw)
            pin, other = other, pin
            say("done change", pin)
        else:
            authenticate()
            alg = "11" if rng.random() < 0.8 else "06"
            say("begin gen", alg)
            out, sw = send(bytes.fromhex(f"0047009D05AC038001{alg}00"))
            if sw >> 8 == 0x61:
                more, sw = send(bytes((0x00, 0xC0, 0x00, 0x00, sw & 0xFF)))
                out += more
            assert sw == 0x9000, hex(sw)
            say("done gen", out.hex())


if __name__ == "__main__":
    main()
