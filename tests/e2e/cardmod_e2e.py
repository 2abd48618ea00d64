"""The minidriver API on a live card: one acquired context per `with`, released at the end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from minidriver.cardmod import CardAcquireContext, CardDeleteContext
from minidriver.cardmod.helper import card_data_for_reader, release
from minidriver.cardmod.types import CardData


@contextmanager
def context(reader: str) -> Iterator[CardData]:
    """CARD_DATA for ``reader`` with a context acquired (CardAcquireContext must answer 0)."""
    cd = card_data_for_reader(reader)
    try:
        assert CardAcquireContext(cd, 0) == 0
        yield cd
    finally:
        CardDeleteContext(cd)
        release(cd)
