"""What the control plane asks pcscd (through pyscard): readers and card presence.

``--wait`` is answered here: it returns only when pcscd itself reports the
change through ``SCardGetStatusChange``, so a script that follows sees the
same state as every other PC/SC application.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from emulator.control.stack.paths import pcscd_client_env

__all__ = [
    "VPCD_READER",
    "PcscError",
    "ReaderState",
    "connect",
    "list_readers",
    "reader_for_slot",
    "use_socket",
    "wait_for_card",
]

VPCD_READER = "Virtual PCD"


class PcscError(Exception):
    pass


@dataclass(frozen=True)
class ReaderState:
    name: str
    present: bool
    atr: bytes


def use_socket(path: str | None) -> None:
    """Point libpcsclite at a pcscd socket; must run before the first PC/SC call."""
    os.environ.update(pcscd_client_env(path))


def _scard() -> Any:
    from smartcard import scard

    return scard


def _context() -> tuple[Any, int]:
    scard = _scard()
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise PcscError(f"cannot reach pcscd: {scard.SCardGetErrorMessage(hresult)}")
    return scard, ctx


def list_readers() -> list[str]:
    scard, ctx = _context()
    try:
        hresult, readers = scard.SCardListReaders(ctx, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscError(f"cannot list readers: {scard.SCardGetErrorMessage(hresult)}")
        return list(readers)
    finally:
        scard.SCardReleaseContext(ctx)


def reader_for_slot(slot: int, readers: list[str] | None = None) -> str | None:
    """pcscd names vpcd's slots '<FRIENDLYNAME> <reader> <slot>' in hex."""
    for name in readers if readers is not None else list_readers():
        if VPCD_READER in name and name.endswith(f" {slot:02X}"):
            return str(name)
    return None


def reader_states() -> list[ReaderState]:
    scard, ctx = _context()
    try:
        hresult, readers = scard.SCardListReaders(ctx, [])
        if hresult != scard.SCARD_S_SUCCESS:
            return []
        hresult, states = scard.SCardGetStatusChange(ctx, 0, [(r, scard.SCARD_STATE_UNAWARE) for r in readers])
        out = []
        for name, event, atr in states:
            out.append(ReaderState(name, bool(event & scard.SCARD_STATE_PRESENT), bytes(atr)))
        return out
    finally:
        scard.SCardReleaseContext(ctx)


def connect(reader: str) -> Any:
    """A pyscard connection (T=1, shared) to the card in ``reader``; release() it when done."""
    from smartcard.System import readers

    found = next((r for r in readers() if str(r) == reader), None)
    if found is None:
        raise PcscError(f"pcscd shows no reader {reader!r}")
    conn = found.createConnection()
    conn.connect()
    return conn


def wait_for_card(reader: str, *, present: bool, timeout: float) -> float:
    """Block until pcscd reports the card ``present`` (or absent); return seconds waited."""
    scard, ctx = _context()
    start = time.monotonic()
    try:
        state = scard.SCARD_STATE_UNAWARE
        while True:
            remaining = timeout - (time.monotonic() - start)
            if remaining <= 0:
                raise PcscError(
                    f"pcscd did not report the card {'inserted' if present else 'removed'} in {reader!r} within {timeout:g} s"
                )
            hresult, states = scard.SCardGetStatusChange(ctx, int(remaining * 1000), [(reader, state)])
            if hresult == scard.SCARD_E_TIMEOUT:
                continue
            if hresult != scard.SCARD_S_SUCCESS:
                raise PcscError(f"SCardGetStatusChange on {reader!r}: {scard.SCardGetErrorMessage(hresult)}")
            _, event, _ = states[0]
            if event & scard.SCARD_STATE_UNKNOWN:
                raise PcscError(f"pcscd does not know the reader {reader!r}")
            is_present = bool(event & scard.SCARD_STATE_PRESENT)
            if is_present == present:
                return time.monotonic() - start
            state = event & ~scard.SCARD_STATE_CHANGED
    finally:
        scard.SCardReleaseContext(ctx)
