"""PIV Card Application (NIST SP 800-73-4) with the YubiKey vendor extensions.

See EXTENSIONS.md in this package for the vendor commands.
"""

from .applet import PIVApplet
from .config import KeySpec, PIVConfig
from .consts import PIV_AID, Algorithm, KeyRef, PinPolicy, TouchPolicy
from .edge import SecureChannelService

__all__ = [
    "PIV_AID",
    "Algorithm",
    "KeyRef",
    "KeySpec",
    "PIVApplet",
    "PIVConfig",
    "PinPolicy",
    "SecureChannelService",
    "TouchPolicy",
]
