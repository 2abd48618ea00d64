"""Security levels of a secure channel (GPCS 2.3.1 §10.6, P1 of EXTERNAL AUTHENTICATE)."""

from __future__ import annotations

from enum import IntFlag

__all__ = ["SecurityLevel"]


class SecurityLevel(IntFlag):
    NONE = 0x00
    C_MAC = 0x01
    C_DECRYPTION = 0x02
    R_MAC = 0x10
    R_ENCRYPTION = 0x20
    #: not a wire bit: set by the card runtime once EXTERNAL AUTHENTICATE succeeded
    AUTHENTICATED = 0x80
