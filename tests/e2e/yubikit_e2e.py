"""yubikit (Yubico's SDK) as a client of the card under test: one connection helper for every e2e file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import ykman.pcsc as ykman_pcsc
from yubikit.core.smartcard import SmartCardConnection

from emulator.pytest_plugin import LiveCard


@contextmanager
def yubikit_connection(card: LiveCard) -> Iterator[SmartCardConnection]:
    """A yubikit SmartCardConnection to the card's reader (ykman's pyscard adapter)."""
    from smartcard.System import readers

    reader = next(r for r in readers() if str(r) == card.reader)
    conn = ykman_pcsc.ScardSmartCardConnection(reader.createConnection())
    try:
        yield conn
    finally:
        conn.close()
