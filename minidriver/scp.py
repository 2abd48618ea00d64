"""Host side of GlobalPlatform secure channels SCP03 and SCP02, sans-I/O.

One import point for :mod:`minidriver.scp03`, :mod:`minidriver.scp02`,
:mod:`minidriver.scpkeys` and the shared types of :mod:`minidriver.scpbase`.
This code is written independently of the card side in ``emulator/gp/`` and
never imports it (design.md, "Host side and card side are written apart").
"""

from __future__ import annotations

from minidriver.scp02 import SCP02_LEVELS, SCP02Host, SCP02InitResponse
from minidriver.scp03 import SCP03_LEVELS, SCP03Host, SCP03InitResponse, SCP03Param
from minidriver.scpbase import (
    AuthenticationError,
    ChannelState,
    IntegrityError,
    SCPError,
    SCPStateError,
    SecurityLevel,
    StaticKeys,
    split_response,
)
from minidriver.scpkeys import (
    AESKeyEncoding,
    KeyType,
    PutKeyCommand,
    check_put_key_reply,
    diversify_kdf3,
    put_key_apdu,
    put_key_data_aes,
    put_key_data_des,
)

__all__ = [
    "SCP02_LEVELS",
    "SCP03_LEVELS",
    "AESKeyEncoding",
    "AuthenticationError",
    "ChannelState",
    "IntegrityError",
    "KeyType",
    "PutKeyCommand",
    "SCP02Host",
    "SCP02InitResponse",
    "SCP03Host",
    "SCP03InitResponse",
    "SCP03Param",
    "SCPError",
    "SCPStateError",
    "SecurityLevel",
    "StaticKeys",
    "check_put_key_reply",
    "diversify_kdf3",
    "put_key_apdu",
    "put_key_data_aes",
    "put_key_data_des",
    "split_response",
]
