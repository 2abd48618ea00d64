"""The Windows smart-card minidriver API (Cardmod.h v7) over PC/SC, for PIV cards.

Importing this package registers every entry point in the function table that
CardAcquireContext fills. The modules group the entry points as minidriver-spec.md §2 does.
"""

from __future__ import annotations

from . import containers, crypto, pins, properties, ski, vfs  # noqa: F401 - register entry points
from .codes import MinidriverError, ScardCode, code_name
from .context import FUNCTION_TABLE, CardAcquireContext, CardDeleteContext
from .types import CardData, Out

__all__ = [
    "FUNCTION_TABLE",
    "CardAcquireContext",
    "CardData",
    "CardDeleteContext",
    "MinidriverError",
    "Out",
    "ScardCode",
    "code_name",
]
