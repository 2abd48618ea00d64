"""Card farm with pytest-xdist: the same 40-test suite with ``-n 1`` (the baseline) and ``-n 2`` (and more).

Run: .venv/bin/python -m bench.bench_xdist [--tests 40] [--workers 1,2] [--rounds 3] [--pull-every 4]

A suite of ``--tests`` tests using the ``vcard`` fixture is generated in a
temporary directory: each test gets a fresh card, selects PIV, verifies the
PIN and reads the CHUID; every ``--pull-every``-th test also pulls the card
and puts it back (each waits for one of pcscd's 400 ms presence polls; 0: no
test pulls). pytest runs it in a subprocess with each ``-n``, the runs
interleaved round after round so every row sees the same machine load; the
table shows the median wall time of the whole pytest run (worker start-up and
each worker's pcscd + daemon included), tests per second, the speed-up over
``-n 1`` of the same run, the CPU seconds the run used (all processes), and
the resident memory of one worker's pytest process, pcscd and daemon.

Where the speed-up comes from: a worker spends most of a pulled test waiting
for pcscd's polls, so workers overlap those waits; the CPU-bound part (card
creation, APDUs through pcscd, pytest itself) only scales while cores are
free. Measures, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SUITE = """
import json
import os
import time
from pathlib import Path

import pytest

OUT = Path(os.environ["BENCH_OUT"])
PULL_EVERY = int(os.environ["BENCH_PULL_EVERY"])
SELECT_PIV = "00A4040009A00000030800001000"
VERIFY_PIN = "0020008008313233343536FFFF"
GET_CHUID = "00CB3FFF055C035FC102"


def _rss_kib(pid):
    for line in Path(f"/proc/{{pid}}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture(autouse=True)
def clock():
    # set up after the session's stack (higher scopes first), before the card: the test's own span
    box = {{"start": time.time()}}
    yield box


@pytest.mark.parametrize("n", range({tests}))
def test_card(clock, vcard, n):
    assert vcard.transmit(SELECT_PIV)[-2:] == b"\\x90\\x00"
    conn = vcard.connect()
    try:
        for apdu in (SELECT_PIV, VERIFY_PIN, GET_CHUID):
            data, sw1, sw2 = conn.transmit(list(bytes.fromhex(apdu)))
            assert (sw1, sw2) == (0x90, 0x00)
    finally:
        conn.release()
    if PULL_EVERY and n % PULL_EVERY == PULL_EVERY - 1:
        vcard.remove(wait=True)
        vcard.insert(wait=True)
    info = vcard.stack.stack
    record = {{
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "socket": info.pcscd_socket,
        "rss_worker": _rss_kib(os.getpid()),
        "rss_pcscd": _rss_kib(info.pcscd_pid),
        "rss_daemon": _rss_kib(vcard.stack.status().daemon_pid),
        "start": clock["start"],
        "end": time.time(),
    }}
    (OUT / f"{{n}}.json").write_text(json.dumps(record))
"""


@dataclass
class Run:
    workers: int
    wall: float
    cpu: float
    passed: bool
    stacks: int
    rss_worker: int
    rss_pcscd: int
    rss_daemon: int
    #: first test's start to last test's end, over all workers: without start-up and teardown
    span: float


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_suite(suite: Path, workers: int, tests: int, pull_every: int) -> Run:
    out = Path(tempfile.mkdtemp(prefix="bench-xdist-out-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PCSCLITE_CSOCK_NAME", "PYTEST_XDIST_WORKER")}
    env.update(BENCH_OUT=str(out), BENCH_PULL_EVERY=str(pull_every))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers)]
    cpu0 = _cpu_children()
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=suite, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = _cpu_children() - cpu0
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    for p in out.glob("*.json"):
        p.unlink()
    out.rmdir()
    passed = done.returncode == 0 and f"{tests} passed" in done.stdout
    if not passed:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)

    def peak(key: str) -> int:
        return max((int(r[key]) for r in records), default=0)

    return Run(
        workers,
        wall,
        cpu,
        passed,
        len({r["socket"] for r in records}),
        peak("rss_worker"),
        peak("rss_pcscd"),
        peak("rss_daemon"),
        max((r["end"] for r in records), default=0.0) - min((r["start"] for r in records), default=0.0),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=40)
    parser.add_argument("--workers", default="1,2", help="comma-separated -n values; the first is the baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pull-every", type=int, default=4, help="every Nth test pulls and re-inserts (0: none)")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    suite = Path(tempfile.mkdtemp(prefix="bench-xdist-suite-"))
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "test_bench_suite.py").write_text(SUITE.format(tests=args.tests))

    results: dict[int, list[Run]] = {n: [] for n in counts}
    load0 = os.getloadavg()
    try:
        for _ in range(args.rounds):
            for n in counts:
                results[n].append(run_suite(suite, n, args.tests, args.pull_every))
    finally:
        shutil.rmtree(suite, ignore_errors=True)
    load1 = os.getloadavg()

    pulled = args.tests // args.pull_every if args.pull_every else 0
    print(
        f"\npytest-xdist card farm: {args.tests} tests using the vcard fixture ({pulled} pull the card), "
        f"{os.cpu_count()} CPUs, load average {load0[0]:.1f} -> {load1[0]:.1f}, median of {args.rounds} rounds"
    )
    header = (
        f"{'-n':>3} {'wall s':>7} {'tests/s':>8} {'speed-up':>9} {'in tests s':>11} {'tests/s':>8} {'speed-up':>9} "
        f"{'CPU s':>6} {'stacks':>7} "
        f"{'worker MiB':>11} {'pcscd MiB':>10} {'daemon MiB':>11} all passed"
    )
    print(header)
    print("-" * len(header))
    base = statistics.median(r.wall for r in results[counts[0]])
    base_span = statistics.median(r.span for r in results[counts[0]])
    for n in counts:
        runs = results[n]
        wall = statistics.median(r.wall for r in runs)
        cpu = statistics.median(r.cpu for r in runs)
        span = statistics.median(r.span for r in runs)
        last = runs[-1]
        print(
            f"{n:>3} {wall:7.2f} {args.tests / wall:8.2f} {base / wall:8.2f}x {span:11.2f} {args.tests / span:8.2f} "
            f"{base_span / span:8.2f}x {cpu:6.1f} {last.stacks:>7} "
            f"{last.rss_worker / 1024:11.1f} {last.rss_pcscd / 1024:10.1f} {last.rss_daemon / 1024:11.1f} "
            f"{all(r.passed for r in runs)}"
        )
    print(
        f"(baseline: -n {counts[0]} of the same run; speed-up = its time / this row's. wall: the whole pytest run; "
        "in tests: first test's start to last test's end, i.e. without interpreter, xdist and stack start-up "
        "and teardown)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
