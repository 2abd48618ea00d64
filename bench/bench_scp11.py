"""SCP11b cost: the handshake and a wrapped APDU beside SCP03 and the clear APDU, same run.

Run: .venv/bin/python -m bench.bench_scp11  (as root; starts and stops a private stack)

Through the stack (pyscard -> pcscd -> vpcd -> daemon; the host side is
minidriver.gp on minidriver's host stack), four logical channels keep the
measurements apart, so every row runs interleaved in batches (same load):

* channel 0: GET DATA CPLC in the clear (the floor);
* channel 1: one SCP03 session at level 33, the same GET DATA wrapped;
* channel 2: one SCP11b session (always level 33), the same GET DATA wrapped;
* channel 3: a full handshake each time: SCP03 (INITIALIZE UPDATE + EXTERNAL
  AUTHENTICATE, level 33) and SCP11b (INTERNAL AUTHENTICATE: two ECDH on each
  side, one ephemeral key pair each, X9.63 KDF, receipt).

In process (no pcscd): the SCP11b handshake with the card and the minidriver
host in one process, and the card's part alone, to show where the time goes.

Measures only; never asserts timing. Issue 13's target: SCP11b handshake under
2 ms median through the stack.
"""

from __future__ import annotations

import argparse
import time

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.applets.isd import ISDApplet
from emulator.card import applet_by_name
from emulator.control.client.api import VCard
from emulator.factory import build_card
from emulator.profile import load_profile
from emulator.store import MemoryStore
from minidriver.gp import GPSession
from minidriver.iso7816 import CommandAPDU
from minidriver.pcsc import PcscConnection
from minidriver.scp11 import SCP11Host, SCP11Params

from ._gp import KEYS, OK, SELECT_ISD, cplc_on, in_batches, open_channel, plain_cplc, select_isd, sw_of
from ._harness import Stats, measure, pin_layout, private_stack, table

SCP11B_KID, SCP11B_KVN = 0x13, 0x01  # the default profile's TEST SCP11b key


def through_the_stack(vc: VCard, n: int) -> list[Stats]:
    with PcscConnection(vc.reader_name(0)) as transport:
        select_isd(transport)
        scp03_channel = open_channel(transport)
        scp03 = GPSession.open(transport, KEYS, level=0x33, channel=scp03_channel)
        pk_sd = x509.load_der_x509_certificate(scp03.certificates(SCP11B_KID, SCP11B_KVN)[-1]).public_key()
        if not isinstance(pk_sd, ec.EllipticCurvePublicKey):
            raise RuntimeError("the card's SCP11b certificate holds no EC key")
        params = SCP11Params(kid=SCP11B_KID, kvn=SCP11B_KVN, pk_sd=pk_sd)
        scp11_channel = open_channel(transport)  # opened from channel 0: the ISD is selected there
        scp11 = GPSession.open_scp11(transport, params, channel=scp11_channel, select=False)
        handshake_channel = open_channel(transport)

        def wrapped(session: GPSession, cmd: CommandAPDU) -> None:
            sw = session.transceive(cmd).sw
            if sw != OK:
                raise RuntimeError(f"wrapped GET DATA answered {sw:04X}")

        def scp03_handshake() -> None:
            GPSession.open(transport, KEYS, level=0x33, channel=handshake_channel, select=False, scp02_i=0x15)

        def scp11_handshake() -> None:
            GPSession.open_scp11(transport, params, channel=handshake_channel, select=False)

        fns = (
            plain_cplc(transport),
            lambda: wrapped(scp03, cplc_on(scp03_channel)),
            lambda: wrapped(scp11, cplc_on(scp11_channel)),
            scp03_handshake,
            scp11_handshake,
        )
        rows = [
            Stats("GET DATA CPLC in the clear (floor)", []),
            Stats("GET DATA CPLC wrapped, SCP03 level 33", []),
            Stats("GET DATA CPLC wrapped, SCP11b (level 33)", []),
            Stats("SCP03 handshake: IU + EA, level 33", []),
            Stats("SCP11b handshake: INTERNAL AUTHENTICATE", []),
        ]
        return in_batches(rows, fns, n=n)

def in_process(n: int) -> list[Stats]:
    """The card and the host in one process: no pcscd, no sockets."""
    card = build_card(load_profile(None), MemoryStore())
    card.transmit(SELECT_ISD)
    isd = applet_by_name(card, "isd")
    if not isinstance(isd, ISDApplet):
        raise RuntimeError("the default profile has no ISD")
    found = isd.scp11.sd_key(SCP11B_KID, SCP11B_KVN)
    if found is None:
        raise RuntimeError("the default profile made no SCP11b key")
    params = SCP11Params(kid=SCP11B_KID, kvn=SCP11B_KVN, pk_sd=found[1].public_key())
    card_only: list[float] = []

    def handshake() -> None:
        host = SCP11Host(params)
        apdu = host.authenticate_apdu()
        t0 = time.perf_counter()
        resp = card.transmit(apdu)
        card_only.append(time.perf_counter() - t0)
        if sw_of(resp) != OK:
            raise RuntimeError(f"INTERNAL AUTHENTICATE answered {sw_of(resp):04X}")
        host.process_authenticate_response(resp[:-2])

    both = measure("SCP11b handshake in process (host + card)", handshake, n=n)
    return [both, Stats("  of which the card (INTERNAL AUTHENTICATE)", card_only[-n:])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=300, help="iterations per measurement")
    args = parser.parse_args()
    with private_stack() as vc:  # one private stack per process (libpcsclite fixes its socket)
        print(pin_layout(vc))
        rows = through_the_stack(vc, args.n)
        print(
            table(
                "SCP11b vs SCP03 through pyscard -> pcscd -> vpcd -> card (same run, interleaved)",
                rows,
                baseline=rows[0],
            )
        )
    local = in_process(args.n)
    print(table("SCP11b handshake in process (emulator card + minidriver host, no transport)", local))
    print(f"SCP11b handshake median {rows[4].median_ms:.3f} ms through the stack (issue 13 target: under 2 ms)")


if __name__ == "__main__":
    main()
