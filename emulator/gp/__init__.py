"""GlobalPlatform secure channels, card side. Sans-I/O.

``SCP03Card`` / ``SCP02Card`` are one session each on one logical channel;
``SecureChannelService`` (owned by the ISD) creates them for INITIALIZE UPDATE.
"""

from .keys import KeyID, KeyType, SCPVersion, StaticKeys
from .levels import SecurityLevel
from .scp02 import SCP02Card
from .scp03 import SCP03Card
from .service import KeySetSource, SecureChannelService
from .session import SecureSession
from .state import ChannelState

__all__ = [
    "ChannelState",
    "KeyID",
    "KeySetSource",
    "KeyType",
    "SCP02Card",
    "SCP03Card",
    "SCPVersion",
    "SecureChannelService",
    "SecureSession",
    "SecurityLevel",
    "StaticKeys",
]
