"""Logging helpers: the TRAFFIC level (style.md §2.11).

APDUs are logged only at TRAFFIC (below DEBUG, enabled by ``--trace``), and
even there the data each applet's command table declares secret is replaced
by its length (``@command(..., secret=...)``; see :mod:`emulator.trace`).
"""

from __future__ import annotations

import logging

__all__ = ["TRAFFIC"]

TRAFFIC = 5
logging.addLevelName(TRAFFIC, "TRAFFIC")
