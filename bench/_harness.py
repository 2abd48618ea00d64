"""Shared benchmark plumbing: a private stack, timing, and the table printer.

libpcsclite reads PCSCLITE_CSOCK_NAME once per process, so a benchmark
process opens one ``private_stack()`` and passes it to every measurement.

Benchmarks measure; they never assert. Every table puts a baseline measured
in the same run next to the numbers it explains.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from emulator.control.client import pcsc
from emulator.control.client.api import VCard
from emulator.control.daemon.server import VPCD_BASE_PORT
from emulator.control.stack.pcscd import read_pid

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Stats:
    name: str
    samples: list[float]  #: seconds

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


def measure(name: str, fn: Callable[[], object], *, n: int, warmup: int = 20) -> Stats:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return Stats(name, samples)


def interleave(fns: dict[str, Callable[[], object]], *, n: int, warmup: int = 20) -> list[Stats]:
    """Run every function once per round, round after round, timing each.

    Interleaving puts every row under the same machine load; measuring one row
    after the other lets a load change between rows pass for a cost.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    rows = {name: Stats(name, []) for name in fns}
    clock = time.perf_counter
    for _ in range(n):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            rows[name].samples.append(clock() - t0)
    return list(rows.values())


def table(title: str, rows: list[Stats], *, baseline: Stats | None = None) -> str:
    lines = [f"\n{title}", f"{'measurement':<44} {'n':>5} {'median ms':>10} {'p95 ms':>10} {'x base':>7}"]
    lines.append("-" * len(lines[1]))
    for s in rows:
        ratio = f"{s.median_ms / baseline.median_ms:7.2f}" if baseline is not None and baseline.median_ms else ""
        lines.append(f"{s.name:<44} {len(s.samples):>5} {s.median_ms:>10.3f} {s.p95_ms:>10.3f} {ratio:>7}")
    return "\n".join(lines)


def pin_layout(vc: VCard, *responders: int) -> str:
    """Put the card side (the daemon and any ``responders``, e.g. the floor) on one CPU
    and pcscd plus this client on the others, and say so.

    On 2 cores, where the scheduler happens to place the processes of one
    APDU's wake-up chain moves the round trip by tens of microseconds from run
    to run (measured: the same floor-vs-card pair gave 1.15x to 1.45x
    floating, 1.07x to 1.11x pinned). Pinned, the floor and the card run under
    identical conditions, which is what the comparison needs.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "one CPU: no pinning"
    card_side, host_side = {cpus[-1]}, set(cpus[:-1])
    daemon = read_pid(vc.paths.daemon_pid)
    info = vc.stack
    for pid, where in [(p, card_side) for p in (daemon, *responders) if p] + [
        (p, host_side) for p in ((info.pcscd_pid if info else None), os.getpid()) if p
    ]:
        for task in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(task), where)
    return (
        f"card side (daemon, floor) pinned to CPU {cpus[-1]}; pcscd and client to CPU {','.join(map(str, host_side))}"
    )


@contextmanager
def private_stack() -> Iterator[VCard]:
    """pcscd in its own namespaces + the daemon + a default card in slot 0."""
    root = Path(tempfile.mkdtemp(prefix="vcard-bench-"))
    vc = VCard(root / "run", state_dir=root / "state")
    try:
        vc.up(private=True, insert=True, wait=True)
        os.environ.update({k: v for k, v in vc.env.items() if k == "PCSCLITE_CSOCK_NAME"})
        yield vc
    finally:
        vc.down()


@contextmanager
def floor_responder(vc: VCard, slot: int = 1) -> Iterator[str]:
    """Start bench/floor.py on ``slot`` and pin the layout; yields the reader name."""
    info = vc.stack
    assert info is not None
    args = [sys.executable, "-m", "bench.floor", "--port", str(VPCD_BASE_PORT + slot)]
    if info.mode == "netns" and info.pcscd_pid:
        args += ["--netns-pid", str(info.pcscd_pid)]
    proc = subprocess.Popen(args, cwd=REPO)
    try:
        reader = vc.reader_name(slot)
        pcsc.wait_for_card(reader, present=True, timeout=10)
        print(pin_layout(vc, proc.pid))
        yield reader
    finally:
        proc.terminate()
        proc.wait(timeout=5)


connect = pcsc.connect
