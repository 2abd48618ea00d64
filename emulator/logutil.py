"""Logging helpers: the TRAFFIC level and APDU redaction (style.md §2.11).

APDUs are logged only at TRAFFIC (below DEBUG, enabled by ``--trace``), and
even there the data of commands that carry secrets is replaced by its length.
"""

from __future__ import annotations

import logging

__all__ = ["TRAFFIC", "redact_command", "redact_response"]

TRAFFIC = 5
logging.addLevelName(TRAFFIC, "TRAFFIC")

#: INS whose command data may hold PINs, keys, cryptograms or challenges' answers
_SECRET_COMMAND_INS = frozenset(
    {
        0x20,  # VERIFY
        0x24,  # CHANGE REFERENCE DATA
        0x2C,  # RESET RETRY COUNTER
        0x50,  # INITIALIZE UPDATE (host challenge)
        0x82,  # EXTERNAL AUTHENTICATE (host cryptogram)
        0x87,  # GENERAL AUTHENTICATE
        0xD8,  # PUT KEY
        0xDB,  # PUT DATA (may carry key material in vendor objects)
        0xE2,  # STORE DATA
        0xFE,  # IMPORT ASYMMETRIC KEY (vendor)
        0xFF,  # SET MANAGEMENT KEY (vendor)
    }
)
_SECRET_RESPONSE_INS = frozenset({0x50, 0x87})


def _sm(cla: int) -> bool:
    return bool(cla & 0x20) if cla & 0x40 else bool(cla & 0x0C)


def redact_command(raw: bytes) -> str:
    if len(raw) < 4:
        return raw.hex(" ").upper()
    header = raw[:4].hex(" ").upper()
    body = raw[4:]
    if body and (raw[1] in _SECRET_COMMAND_INS or _sm(raw[0])):
        return f"{header} [{len(body)} bytes redacted]"
    return f"{header} {body.hex(' ').upper()}".rstrip()


def redact_response(command: bytes, raw: bytes) -> str:
    if len(raw) > 2 and len(command) >= 2 and (command[1] in _SECRET_RESPONSE_INS or _sm(command[0])):
        return f"[{len(raw) - 2} bytes redacted] {raw[-2:].hex(' ').upper()}"
    return raw.hex(" ").upper()
