"""Tracing and fault benchmarks (issue 11): what a trace subscriber and a latency fault cost.

Run: .venv/bin/python -m bench.bench_trace  (as root; starts and stops a private stack)

1. APDU round trip through pcscd with a trace subscriber attached (a thread
   reading the event stream) vs none, same run, alternating blocks of APDUs.
   The daemon's ring buffer is always on; a subscriber adds the queue and
   the stream. Target: within 1.1x.
2. The card runtime alone (``VirtualCard.transmit``, no pcscd): no observer
   vs the daemon's observer (event built, numbered, put in the ring and a
   subscriber's queue), alternating APDU by APDU.
3. A latency fault of 5 ms vs none: the same GET DATA, alternating blocks
   with and without the fault. Target: the fault adds no more than 5 ms
   (plus the timer's own slack, reported).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from emulator.control.client.api import VCard
from emulator.factory import build_card
from emulator.profile import load_profile
from emulator.store import MemoryStore
from emulator.trace import EventHub

from ._harness import Stats, connect, private_stack, table

SELECT_ISD = [0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00, 0x00, 0x00]
GET_CPLC = [0x80, 0xCA, 0x9F, 0x7F, 0x00]
LATENCY_MS = 5


def _block(card: object, n: int, out: list[float]) -> None:
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        _data, sw1, sw2 = card.transmit(GET_CPLC)  # type: ignore[attr-defined]
        out.append(clock() - t0)
        if sw1 != 0x90:
            raise RuntimeError(f"GET DATA answered {sw1:02X}{sw2:02X}")


#: a subscriber in its own process that attaches on "on" and detaches on "off" (stdin), counting events
_TOGGLED_SUBSCRIBER = """
import sys, threading
from emulator.control.client.api import VCard
vc = VCard(sys.argv[1])
count, stream = [0], None
def read(s):
    for _ in s:
        count[0] += 1
for line in sys.stdin:
    if line.strip() == "on":
        stream = vc.subscribe(0)
        threading.Thread(target=read, args=(stream,), daemon=True).start()
    elif stream is not None:
        stream.close()
        stream = None
    print("ok", count[0], flush=True)
"""


def subscriber_on_off(vc: VCard, n: int, block: int) -> list[Stats]:
    """A subscriber process attached for every other block of APDUs (many short blocks: same load)."""
    off = Stats("no subscriber (ring buffer only)", [])
    on = Stats("a subscriber process streaming events", [])
    card = connect(vc.reader_name(0))
    proc = subprocess.Popen(
        [sys.executable, "-c", _TOGGLED_SUBSCRIBER, str(vc.paths.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def toggle(state: str) -> int:
        proc.stdin.write(state + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        return int(proc.stdout.readline().split()[1])  # type: ignore[union-attr]

    received = 0
    try:
        card.transmit(SELECT_ISD)
        _block(card, 50, [])
        while len(off.samples) < n:
            toggle("on")
            time.sleep(0.05)  # subscribed
            _block(card, block, on.samples)
            time.sleep(0.1)  # the last events reach the subscriber (the daemon sends every 20 ms)
            received = toggle("off")
            time.sleep(0.05)  # the daemon notices the close within a poll (20 ms)
            _block(card, block, off.samples)
    finally:
        card.release()
        proc.stdin.close()
        proc.wait(timeout=10)
    print(f"(the subscriber received {received} events for {len(on.samples)} APDUs and their power events)")
    return [off, on]


def runtime_on_off(n: int) -> list[Stats]:
    card = build_card(load_profile(), MemoryStore())
    card.power_on()
    card.transmit(bytes(SELECT_ISD))
    hub = EventHub()
    sub, _ = hub.subscribe(None, maxsize=n + 10)
    observer = lambda rec: hub.publish_apdu(0, rec)  # noqa: E731 - what the slot does
    off = Stats("VirtualCard.transmit, no observer", [])
    on = Stats("VirtualCard.transmit, traced (hub + subscriber)", [])
    cmd = bytes(GET_CPLC)
    clock = time.perf_counter
    for i in range(n + 100):
        traced = i % 2 == 1
        card.observer = observer if traced else None
        t0 = clock()
        card.transmit(cmd)
        dt = clock() - t0
        if i >= 100:
            (on if traced else off).samples.append(dt)
    built = len(sub.drain(limit=n + 10))  # the reader's side: building the events, off the card's path
    hub.unsubscribe(sub)
    print(f"(the subscriber built {built} events)")
    return [off, on]


def latency_fault(vc: VCard, n: int, block: int) -> list[Stats]:
    none = Stats("GET DATA, no fault", [])
    fault = Stats(f"GET DATA, latency fault {LATENCY_MS} ms", [])
    card = connect(vc.reader_name(0))
    try:
        card.transmit(SELECT_ISD)
        _block(card, 50, [])
        while len(none.samples) < n:
            _block(card, block, none.samples)
            vc.fault("latency", ins=0xCA, delay_ms=LATENCY_MS, count=block)
            _block(card, block, fault.samples)
            vc.fault_clear(0)
    finally:
        card.release()
    return [none, fault]


def slot_latency(n: int) -> list[Stats]:
    """The daemon's own part: ``Slot.transmit`` with and without a 5 ms latency fault, alternating."""
    from emulator.faults import FaultKind, FaultSpec
    from emulator.slot import Slot
    from emulator.transport.vpcd import Ctrl

    slot = Slot(0, events=EventHub())
    slot.insert(build_card(load_profile(), MemoryStore()), profile="default", state_file=":memory:")
    slot.control(Ctrl.POWER_ON)
    slot.atr()
    slot.transmit(bytes(SELECT_ISD))
    none = Stats("Slot.transmit GET DATA, no fault", [])
    fault = Stats(f"Slot.transmit GET DATA, latency {LATENCY_MS} ms", [])
    cmd = bytes(GET_CPLC)
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        slot.transmit(cmd)
        none.samples.append(clock() - t0)
        slot.faults.add(FaultSpec(FaultKind.LATENCY, ins=0xCA, delay_ms=LATENCY_MS))
        t0 = clock()
        slot.transmit(cmd)
        fault.samples.append(clock() - t0)
    return [none, fault]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000, help="APDUs per measurement")
    parser.add_argument("--block", type=int, default=200, help="APDUs per alternating block")
    args = parser.parse_args()
    rows = runtime_on_off(args.n * 5)
    print(table("card runtime alone: tracing off vs on (alternating APDU by APDU)", rows, baseline=rows[0]))
    rows = slot_latency(args.n // 4)
    print(table("the daemon's slot alone: a latency fault vs none (alternating)", rows, baseline=rows[0]))
    added = rows[1].median_ms - rows[0].median_ms
    print(f"added by the fault in the daemon: {added:.3f} ms median (configured {LATENCY_MS} ms)")
    with private_stack() as vc:
        rows = subscriber_on_off(vc, args.n, args.block)
        print(table("APDU round trip through pcscd: trace subscriber off vs on (same run)", rows, baseline=rows[0]))
        print("target: on within 1.1x of off")
        rows = latency_fault(vc, args.n // 2, args.block // 2)
        print(table("a latency fault vs none (same run, alternating blocks)", rows, baseline=rows[0]))
        added = rows[1].median_ms - rows[0].median_ms
        print(
            f"added by the fault: {added:.3f} ms median (configured {LATENCY_MS} ms; excess {added - LATENCY_MS:+.3f} ms)"
        )
        print(f"target: no more than the configured {LATENCY_MS} ms (plus the timer's slack)")


if __name__ == "__main__":
    main()
