"""The one exception of the card side: it carries the status word to answer."""

from __future__ import annotations

__all__ = ["CardError"]


class CardError(Exception):
    """Raised anywhere under the card router; becomes the response SW.

    ``detail`` is for logs only and never reaches the host, so it must not
    contain secrets either.
    """

    def __init__(self, sw: int, detail: str = "") -> None:
        from .sw import sw_name

        super().__init__(detail or f"SW {sw:04X} ({sw_name(sw)})")
        self.sw = sw
        self.detail = detail
