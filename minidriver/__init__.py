"""Host-side Windows-minidriver-style smart card library over PC/SC (never imports `emulator`).

Every Cardmod.h entry point and API name is importable from here by its spec name
(``from minidriver import CardAcquireContext, CardReadFile, Out``): they live in
:mod:`minidriver.cardmod` and are imported on first use (PEP 562), so ``import minidriver.scp03``
stays light.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any


def _api() -> Any:
    return importlib.import_module(f"{__name__}.cardmod")


def __getattr__(name: str) -> Any:
    # ``from minidriver import gpcrypto`` asks here before it imports the submodule: answer
    # "no such attribute" for submodules, so the import system loads them itself instead of
    # this hook loading the whole API (and, through it, the submodule's importers) mid-import.
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        raise AttributeError(name)
    api = _api()
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_api().__all__))
