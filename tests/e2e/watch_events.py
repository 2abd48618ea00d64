"""Run as a separate PC/SC client: print each card event pcscd reports for a reader.

Usage: python watch_events.py READER COUNT  -> prints "ready", then COUNT lines
"present <monotonic>" / "absent <monotonic>" as SCardGetStatusChange reports them.
"""

from __future__ import annotations

import sys
import time

from smartcard import scard


def main() -> None:
    reader, count = sys.argv[1], int(sys.argv[2])
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hresult)
    hresult, states = scard.SCardGetStatusChange(ctx, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
    state = states[0][1] & ~scard.SCARD_STATE_CHANGED
    present = bool(state & scard.SCARD_STATE_PRESENT)
    print("ready", "present" if present else "absent", flush=True)
    seen = 0
    deadline = time.monotonic() + 30
    while seen < count and time.monotonic() < deadline:
        hresult, states = scard.SCardGetStatusChange(ctx, 1000, [(reader, state)])
        if hresult == scard.SCARD_E_TIMEOUT:
            continue
        assert hresult == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hresult)
        state = states[0][1] & ~scard.SCARD_STATE_CHANGED
        now_present = bool(state & scard.SCARD_STATE_PRESENT)
        if now_present != present:
            present = now_present
            seen += 1
            print("present" if present else "absent", time.monotonic(), flush=True)
    scard.SCardReleaseContext(ctx)


if __name__ == "__main__":
    main()
