"""What the GlobalPlatform benchmarks share: the ISD, the CPLC probe, channels, batched rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from minidriver.gp import DEFAULT_TEST_KEY
from minidriver.iso7816 import CommandAPDU
from minidriver.pcsc import PcscConnection
from minidriver.scp import StaticKeys

from ._harness import Stats, measure

GET_DATA_CPLC = bytes.fromhex("80CA9F7F00")
SELECT_ISD = bytes.fromhex("00A4040008A00000015100000000")
OK = 0x9000
KEYS = StaticKeys.same(DEFAULT_TEST_KEY, kvn=0xFF)  # the profile's factory TEST key set
BATCHES = 5


def sw_of(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


def select_isd(transport: PcscConnection) -> None:
    if sw_of(transport.transmit(SELECT_ISD)) != OK:
        raise RuntimeError("SELECT ISD failed")


def open_channel(transport: PcscConnection) -> int:
    """MANAGE CHANNEL open; the new channel inherits channel 0's selection (the ISD)."""
    response = transport.transmit(bytes.fromhex("0070000001"))
    if sw_of(response) != OK:
        raise RuntimeError(f"MANAGE CHANNEL answered {sw_of(response):04X}")
    return response[0]


def cplc_on(channel: int) -> CommandAPDU:
    """GET DATA CPLC with the channel in its CLA."""
    return CommandAPDU.parse(bytes((GET_DATA_CPLC[0] | channel,)) + GET_DATA_CPLC[1:])


def plain_cplc(transport: PcscConnection) -> Callable[[], None]:
    def plain() -> None:
        if sw_of(transport.transmit(GET_DATA_CPLC)) != OK:
            raise RuntimeError("plain GET DATA failed")

    return plain


def in_batches(rows: Sequence[Stats], fns: Sequence[Callable[[], object]], *, n: int) -> list[Stats]:
    """Each row's function ``n // BATCHES`` times, row after row, BATCHES times over: every row
    sees the same machine load, and a batch keeps a session's state warm between samples."""
    for _ in range(BATCHES):
        for row, fn in zip(rows, fns, strict=True):
            row.samples += measure("", fn, n=n // BATCHES, warmup=5).samples
    return list(rows)
