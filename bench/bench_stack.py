"""Foundation benchmarks: APDU round trip vs the floor, insert/remove latency.

Run: .venv/bin/python -m bench.bench_stack  (as root; starts and stops a private stack)
"""

from __future__ import annotations

import argparse
import time

from emulator.control.client import pcsc
from emulator.control.client.api import VCard

from ._harness import Stats, connect, floor_responder, private_stack, table

GET_DATA_CPLC = [0x80, 0xCA, 0x9F, 0x7F, 0x00]
SELECT_ISD = [0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00, 0x00, 0x00]
NOP = [0x80, 0xCA, 0x00, 0x42, 0x00]


def round_trips(vc: VCard, n: int) -> list[Stats]:
    with floor_responder(vc, slot=1) as floor_reader:
        card = connect(vc.reader_name(0))
        floor = connect(floor_reader)
        _, sw1, sw2 = card.transmit(SELECT_ISD)
        assert (sw1, sw2) == (0x90, 0x00), f"SELECT ISD answered {sw1:02X}{sw2:02X}"

        def floor_apdu() -> None:
            floor.transmit(NOP)

        def card_apdu() -> None:
            _data, sw1, sw2 = card.transmit(GET_DATA_CPLC)
            if sw1 != 0x90:
                raise RuntimeError(f"GET DATA answered {sw1:02X}{sw2:02X}")

        # Alternate APDU by APDU so both see the same machine load.
        floor_s, card_s = (
            Stats("floor: responder answering 9000", []),
            Stats("card: GET DATA CPLC (9F7F, 45 bytes)", []),
        )
        clock = time.perf_counter
        try:
            for _ in range(50):
                floor_apdu()
                card_apdu()
            for _ in range(n):
                t0 = clock()
                floor_apdu()
                t1 = clock()
                card_apdu()
                t2 = clock()
                floor_s.samples.append(t1 - t0)
                card_s.samples.append(t2 - t1)
        finally:
            card.release()
            floor.release()
        return [floor_s, card_s]


def insert_remove(vc: VCard, cycles: int) -> list[Stats]:
    reader = vc.reader_name(0)
    removed = Stats("remove -> SCardGetStatusChange sees it", [])
    inserted = Stats("insert -> SCardGetStatusChange sees it", [])
    for _ in range(cycles):
        t0 = time.perf_counter()
        vc.remove(0)
        pcsc.wait_for_card(reader, present=False, timeout=5)
        removed.samples.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        vc.insert(0)
        pcsc.wait_for_card(reader, present=True, timeout=5)
        inserted.samples.append(time.perf_counter() - t0)
    return [removed, inserted]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000, help="APDUs per measurement")
    parser.add_argument("--cycles", type=int, default=20, help="insert/remove cycles")
    args = parser.parse_args()
    # libpcsclite fixes its socket path at the first call: one private stack per process.
    with private_stack() as vc:
        rows = round_trips(vc, args.n)
        print(table("APDU round trip through pyscard -> pcscd -> vpcd -> card (same run)", rows, baseline=rows[0]))
        print("target: card within 1.3x of the floor")
        events = insert_remove(vc, args.cycles)
        print(table("card events as seen by another PC/SC client (pcscd polls vpcd every 400 ms)", events))
        print("target: p95 <= 450 ms")


if __name__ == "__main__":
    main()
