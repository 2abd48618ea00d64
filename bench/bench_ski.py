"""Secure key injection cost: the whole relay flow vs one APDU round trip of the floor.

Run: .venv/bin/python -m bench.bench_ski  (as root; starts and stops a private stack)

Both SKI roles run in this process (minidriver.cardmod.ski_local: a NO_CARD_MODE context with
the SCP03 test keys plus the card's context), so the numbers are the minidriver + PC/SC + card
cost without the server<->client network hop. Rows, interleaved round by round (same load):

* floor: one APDU to bench/floor.py (a 9000-only responder on the same vpcd transport);
* handshake: CardGetSharedKeyHandle x4, two of them on the card (INITIALIZE UPDATE, EXTERNAL
  AUTHENTICATE on the context's SKI channel, opened by the first handshake of the run);
* full flow: the handshake, then MDEncryptData + CardProcessEncryptedData of CSF_IMPORT_KEYPAIR
  (a P-256 key, made beforehand) and of CSF_CHANGE_AUTHENTICATOR (PIN change + GET METADATA):
  5 APDUs in the channel, plus one GET DATA of cardcf after each secure function (the cache
  bookkeeping the core functions do too): 7 APDUs. The card commits the sequence counter, the
  key and the PIN to SQLite;
* CardDestroyKey on both sides after each flow (one SELECT ends the card's session), timed apart.

Measures only; never asserts timing.
"""

from __future__ import annotations

import argparse
import itertools
import time

from cryptography.hazmat.primitives.asymmetric import ec

from emulator.control.client.api import VCard
from minidriver.cardmod import CardAcquireContext, CardDeleteContext
from minidriver.cardmod.helper import card_data_for_reader, release
from minidriver.cardmod.ski_local import LocalInjector, import_struct
from minidriver.cardmod.ski_wire import CSF_IMPORT_KEYPAIR
from minidriver.gp import DEFAULT_TEST_KEY
from minidriver.scpbase import StaticKeys

from ._harness import Stats, connect, floor_responder, private_stack, table

KEYS = StaticKeys.same(DEFAULT_TEST_KEY, kvn=0xFF)  # the default profile's TEST key set
PINS = (b"123456", b"654321")
KEY_POOL = 64


def ski_flow(vc: VCard, floor_reader: str, n: int, warmup: int = 10) -> list[Stats]:
    card = card_data_for_reader(vc.reader_name(0))
    if CardAcquireContext(card, 0) != 0:
        raise RuntimeError("CardAcquireContext failed")
    floor = connect(floor_reader)
    keys = itertools.cycle([import_struct(2, ec.generate_private_key(ec.SECP256R1())) for _ in range(KEY_POOL)])
    pins = itertools.cycle([PINS, PINS[::-1]])
    injector = LocalInjector(card, KEYS)
    rows = [
        Stats("floor: one APDU round trip", []),
        Stats("handshake: 2 rounds (IU + EA)", []),
        Stats("full flow: 2 rounds + import P-256 + change PIN", []),
        Stats("CardDestroyKey, both sides (SELECT)", []),
    ]
    clock = time.perf_counter

    def floor_apdu() -> None:
        floor.transmit([0x00, 0xCA, 0x9F, 0x7F, 0x00])

    def full_flow() -> float:
        t0 = clock()
        injector.open()
        t1 = clock()
        code, _ = injector.run(CSF_IMPORT_KEYPAIR, next(keys))
        if code:
            raise RuntimeError(f"import answered {code:#x}")
        injector.change_pin(*next(pins))
        rows[2].samples.append(clock() - t0)
        return t1 - t0

    try:
        for i in range(warmup + n):  # interleaved round by round: the same load for every row
            t0 = clock()
            floor_apdu()
            t1 = clock()
            handshake = full_flow()
            t2 = clock()
            injector.close_client()
            t3 = clock()
            if i < warmup:
                rows[2].samples.clear()
                continue
            rows[0].samples.append(t1 - t0)
            rows[1].samples.append(handshake)
            rows[3].samples.append(t3 - t2)
        return rows
    finally:
        injector.close()
        floor.release()
        CardDeleteContext(card)
        release(card)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=300, help="iterations per measurement")
    args = parser.parse_args()
    with private_stack() as vc, floor_responder(vc) as floor_reader:
        rows = ski_flow(vc, floor_reader, args.n)
        print(table("Secure key injection through pyscard -> pcscd -> vpcd -> card (same run)", rows, baseline=rows[0]))
        print(
            f"full flow: {rows[2].median_ms:.3f} ms median, {rows[2].p95_ms:.3f} ms p95; 7 APDUs, "
            f"{7 * rows[0].median_ms:.3f} ms of it is the floor's transport"
        )


if __name__ == "__main__":
    main()
