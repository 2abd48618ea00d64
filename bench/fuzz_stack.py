"""Fuzz the card through the real stack: pcscd + vpcd + daemon, from a PC/SC client.

Seeded and reproducible: the same ``--seed`` sends the same APDUs. Each
answer must be well formed (at least a status word, a plausible one), come
within ``--max-seconds`` (a "no hang" bound, not a performance target), and
no PC/SC call may fail; afterwards the daemon must be the same process and
the card must still answer. Used by tests/e2e/test_fuzz_stack.py (a few
thousand APDUs) and by ``scripts/fuzz`` (as many as you like, bounded by
``--count`` and ``--minutes``).

What is sent: hostile lengths (0-3 byte APDUs, including vpcd's control bytes
00/01/02/04, Lc/Le that do not match the body, truncated and oversized
extended forms), random CLA (channels, chaining bit, secure messaging bits,
proprietary class) and INS, command chains left open or interrupted, logical
channels opened and closed, GET RESPONSE out of place, and SELECTs of the
card's applications so their handlers are fuzzed too.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FuzzReport", "apdus", "fuzz", "main", "problem_with"]

SELECTS = (
    bytes.fromhex("00A4040008A000000151000000"),  # ISD
    bytes.fromhex("00A4040009A00000030800001000"),  # PIV
    bytes.fromhex("00A4040000"),  # the default application
)
#: bytes vpcd also uses as control messages: each costs up to ~0.7 s (the link waits to tell)
AMBIGUOUS = (0x00, 0x01, 0x02, 0x04)
#: first status bytes a card may answer (ISO 7816-4 §5.6; 9000 only as 90 00)
_PLAIN_BYTES = tuple(b for b in range(256) if b not in AMBIGUOUS)
SW1 = frozenset({0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x90})


def _cla(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice((0x00, 0x80, 0x84, 0x04, 0x0C, 0x10, 0x90, 0x01, 0x02, 0x03, 0x40, 0x41, 0x4F, 0x60))
    return rng.randrange(256)


def _ins(rng: random.Random) -> int:
    if rng.random() < 0.5:
        # the card's own and its applets' instructions (ISO 7816-4, GP, SP 800-73-4)
        return rng.choice(
            (0xA4, 0x70, 0xC0, 0xCA, 0xCB, 0xDB, 0x20, 0x24, 0x2C, 0x87, 0x47, 0x50, 0x82, 0xF2, 0xE6, 0xE4, 0xD8, 0xFD)
        )
    return rng.randrange(256)


def _body(rng: random.Random) -> bytes:
    """Everything after the header, of a hostile shape."""
    shape = rng.randrange(12)
    data = rng.randbytes(rng.choice((0, 1, 2, 5, 16, 64, 200, 255)))
    if shape == 0:
        return b""  # case 1
    if shape == 1:
        return bytes((rng.randrange(256),))  # case 2S (Le)
    if shape in (2, 3, 4):
        return bytes((len(data) or 1,)) + (data or b"\x00")  # case 3S
    if shape == 5:
        return bytes((len(data) or 1,)) + (data or b"\x00") + bytes((rng.randrange(256),))  # case 4S
    if shape == 6:
        return bytes((rng.randrange(256),)) + data  # Lc that does not match
    if shape == 7:
        return b"\x00" + rng.randrange(65536).to_bytes(2, "big")  # case 2E (or a bad one)
    if shape == 8:
        big = rng.randbytes(rng.choice((1, 255, 256, 300, 1024, 4000)))
        return b"\x00" + len(big).to_bytes(2, "big") + big + rng.randbytes(rng.choice((0, 2)))  # 3E/4E
    if shape == 9:
        return b"\x00" + rng.randrange(65536).to_bytes(2, "big") + data  # extended Lc that does not match
    if shape == 10:
        return b"\x00" + rng.randbytes(rng.choice((0, 1)))  # truncated extended forms
    return data


def apdus(rng: random.Random, *, ambiguous: int) -> Iterator[bytes]:
    """An endless seeded stream of hostile commands; at most ``ambiguous`` of the slow 1-byte ones."""
    while True:
        roll = rng.random()
        if roll < 0.06:
            yield rng.choice(SELECTS)
        elif roll < 0.10:
            n = rng.randrange(1, 4)  # 1-3 bytes: no command at all (ISO 7816-4 §5.1: 4 bytes at least)
            if n == 1 and ambiguous > 0 and rng.random() < 0.3:
                ambiguous -= 1
                yield bytes((rng.choice(AMBIGUOUS),))
            elif n == 1:
                yield bytes((rng.choice(_PLAIN_BYTES),))
            else:
                yield rng.randbytes(n)
        elif roll < 0.16:  # a chain: some links, then maybe the last, maybe something else
            cla, ins, p1, p2 = rng.choice((0x00, 0x80, 0x01)), _ins(rng), rng.randrange(256), rng.randrange(256)
            for _ in range(rng.randrange(1, 5)):
                data = rng.randbytes(rng.randrange(1, 256))
                yield bytes((cla | 0x10, ins, p1, p2, len(data))) + data
            if rng.random() < 0.6:
                data = rng.randbytes(rng.randrange(0, 256))
                yield bytes((cla, ins, p1, p2)) + (bytes((len(data),)) + data if data else b"") + b"\x00"
        elif roll < 0.20:  # logical channels
            yield rng.choice(
                (
                    bytes.fromhex("0070000001"),
                    bytes.fromhex("00700000"),
                    bytes((0x00, 0x70, 0x80, rng.randrange(0, 5))),
                    bytes((0x00, 0x70, 0x00, rng.randrange(0, 21))),
                    bytes((rng.randrange(4),)) + SELECTS[rng.randrange(2)][1:],
                )
            )
        elif roll < 0.23:
            yield bytes((0x00, 0xC0, 0x00, 0x00, rng.randrange(256)))  # GET RESPONSE, wanted or not
        else:
            yield bytes((_cla(rng), _ins(rng), rng.randrange(256), rng.randrange(256))) + _body(rng)


def problem_with(apdu: bytes, hresult: int, resp: bytes, seconds: float, max_seconds: float) -> str | None:
    """What is wrong with one answer (None: nothing)."""
    if hresult != 0:
        return f"SCardTransmit failed with {hresult & 0xFFFFFFFF:08X}"
    if len(resp) < 2:
        return f"answer of {len(resp)} bytes (no status word)"
    sw1, sw2 = resp[-2], resp[-1]
    if sw1 not in SW1 or (sw1 == 0x90 and sw2 != 0x00):
        return f"implausible status word {sw1:02X}{sw2:02X}"
    if seconds > max_seconds:
        return f"answered after {seconds:.2f} s (bound {max_seconds:g} s)"
    return None


@dataclass
class FuzzReport:
    seed: int
    sent: int = 0
    slowest: float = 0.0
    slowest_apdu: bytes = b""
    problems: list[str] = field(default_factory=list)
    status_words: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        top = ", ".join(f"{sw} x{n}" for sw, n in self.status_words.most_common(8))
        return (
            f"seed {self.seed}: {self.sent} APDUs, {len(self.problems)} problems, slowest "
            f"{self.slowest * 1000:.1f} ms ({self.slowest_apdu[:8].hex().upper()}); status words: {top}"
        )


def fuzz(
    reader: str,
    *,
    seed: int,
    count: int,
    minutes: float | None = None,
    max_seconds: float = 1.0,
    ambiguous: int = 12,
    progress: bool = False,
) -> FuzzReport:
    """Send ``count`` APDUs (or until ``minutes`` pass) to the card in ``reader``."""
    from smartcard import scard

    rng = random.Random(seed)
    report = FuzzReport(seed)
    stream = apdus(rng, ambiguous=ambiguous)
    end = time.monotonic() + minutes * 60 if minutes else None
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        raise RuntimeError(f"SCardEstablishContext: {scard.SCardGetErrorMessage(hr)}")
    hr, handle, _ = scard.SCardConnect(ctx, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T1)
    if hr != scard.SCARD_S_SUCCESS:
        raise RuntimeError(f"SCardConnect {reader!r}: {scard.SCardGetErrorMessage(hr)}")
    try:
        while report.sent < count and (end is None or time.monotonic() < end):
            apdu = next(stream)
            t0 = time.monotonic()
            hr, resp = scard.SCardTransmit(handle, scard.SCARD_PCI_T1, list(apdu))
            took = time.monotonic() - t0
            report.sent += 1
            raw = bytes(resp)
            if took > report.slowest:
                report.slowest, report.slowest_apdu = took, apdu
            problem = problem_with(apdu, hr, raw, took, max_seconds)
            if problem is not None:
                report.problems.append(f"#{report.sent} {apdu[:16].hex().upper()}: {problem}")
                if hr != scard.SCARD_S_SUCCESS:
                    break  # the link is gone: nothing more to learn from this connection
            if len(raw) >= 2:
                report.status_words[raw[-2:].hex().upper()] += 1
            if progress and report.sent % 1000 == 0:
                print(report.summary(), flush=True)
    finally:
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(ctx)
    return report


def card_answers(reader: str) -> str | None:
    """The card still works for a new application: SELECT ISD and GET DATA CPLC."""
    from emulator.control.client import pcsc

    conn: Any = pcsc.connect(reader)
    try:
        _, sw1, sw2 = conn.transmit(list(SELECTS[0]))
        if (sw1, sw2) != (0x90, 0x00):
            return f"SELECT ISD answered {sw1:02X}{sw2:02X}"
        data, sw1, sw2 = conn.transmit([0x80, 0xCA, 0x9F, 0x7F, 0x00])
        if (sw1, sw2) != (0x90, 0x00) or bytes(data[:2]) != b"\x9f\x7f":
            return f"GET DATA CPLC answered {sw1:02X}{sw2:02X}"
        return None
    finally:
        conn.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="APDUs to send at most (default 100000)")
    parser.add_argument("--minutes", type=float, default=10.0, help="stop after this long (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="reproduce a run (default: a fresh one, printed)")
    parser.add_argument("--max-seconds", type=float, default=1.0, help="slowest acceptable answer (default 1)")
    parser.add_argument("--ambiguous", type=int, default=200, help="1-byte APDUs 00/01/02/04 at most (slow)")
    args = parser.parse_args(argv)
    if args.count < 1 or not 0 < args.minutes <= 24 * 60 or args.max_seconds <= 0 or args.ambiguous < 0:
        parser.error("--count >= 1, 0 < --minutes <= 1440, --max-seconds > 0 and --ambiguous >= 0")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    from bench._harness import private_stack
    from emulator.control.stack.pcscd import read_pid

    print(f"fuzzing with seed {seed} (reproduce: scripts/fuzz --seed {seed} --count {args.count})", flush=True)
    with private_stack() as vc:
        reader = vc.reader_name(0)
        daemon = read_pid(vc.paths.daemon_pid)
        report = fuzz(
            reader,
            seed=seed,
            count=args.count,
            minutes=args.minutes,
            max_seconds=args.max_seconds,
            ambiguous=args.ambiguous,
            progress=True,
        )
        after = read_pid(vc.paths.daemon_pid)
        if after != daemon:
            report.problems.append(f"the daemon changed from pid {daemon} to {after}")
        broken = card_answers(reader)
        if broken is not None:
            report.problems.append(f"the card no longer works: {broken}")
    print(report.summary())
    for problem in report.problems[:50]:
        print("  " + problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
