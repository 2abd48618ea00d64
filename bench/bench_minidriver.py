"""Minidriver benchmarks: the Cardmod API through the full stack beside the raw APDU path.

Rows, interleaved round by round in one run (``_harness.interleave``):

* CardAcquireContext **cold**: what a CSP does the first time -- a new PC/SC handle
  (SCardEstablishContext + SCardConnect), CardAcquireContext, the first CardReadFile of
  ``mscp/cmapfile`` with an empty CSP cache, CardDeleteContext and release.
* CardAcquireContext **warm**: the CSP keeps its handle and its data cache: CardAcquireContext,
  CardReadFile(cmapfile) served from the filled cache, CardDeleteContext.
* CardSignData P-256 (9A) and RSA-2048 (9D, PKCS#1 v1.5 over SHA-256) beside the same GENERAL
  AUTHENTICATE sent raw through pyscard (the padded block built once, outside the timing): the
  difference is what the minidriver adds (container lookup, padding, byte order, allocation).

Targets (issue 9): CardSignData within 1.3x of the raw APDU path; warm CardAcquireContext < 2 ms.

Run: .venv/bin/python -m bench.bench_minidriver  (as root; starts and stops a private stack)
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from emulator.iso7816 import encode_tlv
from minidriver.cardmod import (
    CardAcquireContext,
    CardAuthenticatePin,
    CardData,
    CardDeleteContext,
    CardGetContainerInfo,
    CardReadFile,
    CardSignData,
    Out,
    card_data_for_reader,
    release,
)
from minidriver.cardmod.structs import CardSigningInfo, ContainerInfo
from minidriver.cardmod.types import KeySpec

from ._harness import Stats, interleave, pin_layout, private_stack, table
from .bench_piv import ALG_P256, ALG_RSA2048, SELECT_PIV, SLOT_AUTH, SLOT_KEY_MGMT, PIVHost, connect, pkcs1_block

CALG_SHA_256 = 0x800C
PIN = b"123456"
IDX_9A, IDX_9D = 0, 2


class CspCache:
    """A CSP data cache (pfnCspCacheAddFile/LookupFile/DeleteFile) in a dict."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    def install(self, card: CardData) -> CardData:
        card.pfnCspCacheAddFile = self.add
        card.pfnCspCacheLookupFile = self.lookup
        card.pfnCspCacheDeleteFile = self.delete
        card.pvCacheContext = self
        return card

    def add(self, _ctx: Any, tag: str, _flags: int, data: bytes) -> int:
        self.items[tag] = bytes(data)
        return 0

    def lookup(self, _ctx: Any, tag: str, _flags: int, box: Out[bytes]) -> int:
        if tag not in self.items:
            return 0x80100070  # SCARD_W_CACHE_ITEM_NOT_FOUND
        box.value = self.items[tag]
        return 0

    def delete(self, _ctx: Any, tag: str, _flags: int) -> int:
        self.items.pop(tag, None)
        return 0


def _ok(code: int, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"{what} answered 0x{code:08X}")


def _read_cmapfile(card: CardData) -> bytes:
    data: Out[bytearray] = Out()
    _ok(CardReadFile(card, "mscp", "cmapfile", 0, data, Out()), "CardReadFile(mscp/cmapfile)")
    return bytes(data.value or b"")


def cold_acquire(reader: str) -> None:
    card = CspCache().install(card_data_for_reader(reader))
    try:
        _ok(CardAcquireContext(card, 0), "CardAcquireContext")
        _read_cmapfile(card)
        CardDeleteContext(card)
    finally:
        release(card)


def warm_acquire(handles: CardData, cache: CspCache) -> None:
    card = cache.install(
        CardData(
            pbAtr=handles.pbAtr,
            cbAtr=handles.cbAtr,
            pwszCardName=handles.pwszCardName,
            hSCardCtx=handles.hSCardCtx,
            hScard=handles.hScard,
        )
    )
    _ok(CardAcquireContext(card, 0), "CardAcquireContext")
    _read_cmapfile(card)
    CardDeleteContext(card)


def acquire_only(handles: CardData) -> None:
    card = CardData(
        pbAtr=handles.pbAtr,
        cbAtr=handles.cbAtr,
        pwszCardName=handles.pwszCardName,
        hSCardCtx=handles.hSCardCtx,
        hScard=handles.hScard,
    )
    _ok(CardAcquireContext(card, 0), "CardAcquireContext")
    CardDeleteContext(card)


def chained_sign(piv: PIVHost, alg: int, slot: int, data: bytes) -> bytes:
    """GENERAL AUTHENTICATE in short APDUs: command chaining (CLA 10) and 61xx GET RESPONSE --
    the framing a card whose ATR does not announce extended length gets from the minidriver."""
    body = encode_tlv(0x7C, encode_tlv(0x82, b"") + encode_tlv(0x81, data))
    chunks = [body[i : i + 255] for i in range(0, len(body), 255)]
    for chunk in chunks[:-1]:
        piv.send(bytes((0x10, 0x87, alg, slot, len(chunk))) + chunk)
    return piv.send(bytes((0x00, 0x87, alg, slot, len(chunks[-1]))) + chunks[-1] + b"\x00")


def sign(card: CardData, index: int, spec: int, digest: bytes, alg: int = 0) -> bytes:
    info = CardSigningInfo(2, index, spec, 0, alg, digest, len(digest))
    _ok(CardSignData(card, info), "CardSignData")
    return bytes(info.pbSignedData or b"")


def run(n: int) -> list[Stats]:
    digest = hashlib.sha256(b"vcard minidriver benchmark").digest()
    with private_stack() as vc:
        print(pin_layout(vc))
        reader = vc.reader_name(0)
        conn = connect(reader)
        handles = card_data_for_reader(reader)
        card = CspCache().install(card_data_for_reader(reader))
        try:
            piv = PIVHost(conn)
            piv.send(SELECT_PIV)
            piv.authenticate_management_key()
            piv.generate(SLOT_KEY_MGMT, ALG_RSA2048)
            piv.verify_pin()
            block = pkcs1_block(digest, 256)
            _ok(CardAcquireContext(card, 0), "CardAcquireContext")
            _ok(CardAuthenticatePin(card, "user", PIN, len(PIN), None), "CardAuthenticatePin")
            for index in (IDX_9A, IDX_9D):  # what a CSP does first; fills the container model
                _ok(CardGetContainerInfo(card, index, 0, ContainerInfo()), "CardGetContainerInfo")
            warm_cache = CspCache()
            warm_acquire(handles, warm_cache)  # fills the cache
            rows = interleave(
                {
                    "raw GENERAL AUTHENTICATE P-256 (9A)": lambda: piv.sign(ALG_P256, SLOT_AUTH, digest),
                    "CardSignData P-256 (9A)": lambda: sign(card, IDX_9A, KeySpec.AT_ECDSA_P256, digest),
                    "raw GENERAL AUTHENTICATE RSA-2048 (9D, extended)": lambda: piv.sign(
                        ALG_RSA2048, SLOT_KEY_MGMT, block
                    ),
                    "raw GENERAL AUTHENTICATE RSA-2048 (9D, chained)": lambda: chained_sign(
                        piv, ALG_RSA2048, SLOT_KEY_MGMT, block
                    ),
                    "CardSignData RSA-2048 (9D, CALG_SHA_256)": lambda: sign(
                        card, IDX_9D, KeySpec.AT_KEYEXCHANGE, digest, CALG_SHA_256
                    ),
                    "raw SELECT PIV (one round trip)": lambda: piv.send(SELECT_PIV),
                    "CardAcquireContext warm (handle kept)": lambda: acquire_only(handles),
                    "  + CardReadFile cmapfile from CSP cache": lambda: warm_acquire(handles, warm_cache),
                    "CardAcquireContext cold (new handle) + cmapfile": lambda: cold_acquire(reader),
                },
                n=n,
            )
        finally:
            CardDeleteContext(card)
            release(card)
            release(handles)
            conn.release()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    rows = run(args.n)
    print(table("CardSignData vs the raw APDU path (same run)", rows[:5], baseline=rows[0]))
    print(table("CardAcquireContext (same run; baseline: one SELECT round trip)", rows[5:], baseline=rows[5]))
    for api, raw in ((rows[1], rows[0]), (rows[4], rows[2]), (rows[4], rows[3])):
        ratio = api.median_ms / raw.median_ms
        verdict = "within" if ratio <= 1.3 else "OVER"
        print(f"{api.name} / {raw.name}: {ratio:.2f}x (target 1.3x): {verdict}")
    warm = rows[6].median_ms
    print(f"{rows[6].name}: {warm:.3f} ms (target 2 ms): {'within' if warm < 2 else 'OVER'}")


if __name__ == "__main__":
    main()
