"""Secure channel cost: SCP03 handshake and a wrapped APDU vs the same APDU in the clear.

Run: .venv/bin/python -m bench.bench_scp  (as root; starts and stops a private stack)

Everything goes pyscard -> pcscd -> vpcd -> daemon, the host side being
minidriver.gp on minidriver's host stack. Three logical channels keep the
measurements apart, so they can be interleaved in batches (same machine load):

* channel 0: GET DATA CPLC in the clear (the floor of this table);
* channel 1: one SCP03 session at level 33 (C-MAC + C-DEC + R-MAC + R-ENC),
  the same GET DATA wrapped and unwrapped;
* channel 2: a full handshake each time, INITIALIZE UPDATE + EXTERNAL
  AUTHENTICATE at level 33 (the card persists a sequence counter per
  INITIALIZE UPDATE: i=70 uses pseudo-random challenges).

Measures only; never asserts timing.
"""

from __future__ import annotations

import argparse

from emulator.control.client.api import VCard
from minidriver.gp import GPSession
from minidriver.pcsc import PcscConnection

from ._gp import KEYS, OK, cplc_on, in_batches, open_channel, plain_cplc, select_isd
from ._harness import Stats, pin_layout, private_stack, table


def secure_channel(vc: VCard, n: int) -> list[Stats]:
    with PcscConnection(vc.reader_name(0)) as transport:
        select_isd(transport)
        wrapped_channel = open_channel(transport)
        session = GPSession.open(transport, KEYS, level=0x33, channel=wrapped_channel)
        handshake_channel = open_channel(transport)  # opened from channel 0: the ISD is selected
        wrapped_cplc = cplc_on(wrapped_channel)

        def wrapped() -> None:
            sw = session.transceive(wrapped_cplc).sw
            if sw != OK:
                raise RuntimeError(f"wrapped GET DATA answered {sw:04X}")

        def handshake() -> None:
            GPSession.open(transport, KEYS, level=0x33, channel=handshake_channel, select=False, scp02_i=0x15)

        rows = [
            Stats("GET DATA CPLC in the clear (floor)", []),
            Stats("GET DATA CPLC wrapped, level 33", []),
            Stats("SCP03 handshake: IU + EA, level 33", []),
        ]
        return in_batches(rows, (plain_cplc(transport), wrapped, handshake), n=n)

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=300, help="iterations per measurement")
    args = parser.parse_args()
    with private_stack() as vc:  # one private stack per process (libpcsclite fixes its socket)
        print(pin_layout(vc))
        rows = secure_channel(vc, args.n)
        print(table("SCP03 through pyscard -> pcscd -> vpcd -> card (same run, interleaved)", rows, baseline=rows[0]))
        wrap_cost = rows[1].median_ms - rows[0].median_ms
        print(f"secure messaging adds {wrap_cost:.3f} ms per APDU at the median (host + card crypto)")


if __name__ == "__main__":
    main()
