"""The seam between the card runtime and a secure channel session.

The card runtime keeps one session per logical channel. It does not know
SCP02 from SCP03: it asks the session to unwrap commands that carry the SM
bit and to wrap every response while the session is open, and it closes the
session on reset, power-off, removal, SELECT and channel close.
"""

from __future__ import annotations

from typing import Protocol

from ..iso7816 import CommandAPDU, ResponseAPDU
from .levels import SecurityLevel

__all__ = ["SecureSession"]


class SecureSession(Protocol):
    @property
    def is_open(self) -> bool:
        """EXTERNAL AUTHENTICATE succeeded and nothing has closed the session."""
        ...

    @property
    def level(self) -> SecurityLevel:
        """The level in force (includes AUTHENTICATED when open)."""
        ...

    def external_authenticate(self, cmd: CommandAPDU) -> ResponseAPDU:
        """Check the host cryptogram and C-MAC; open at the level in P1."""
        ...

    def unwrap(self, cmd: CommandAPDU) -> CommandAPDU:
        """Verify the C-MAC and decrypt; a failure closes the session (CardError 6982)."""
        ...

    def observe_plain(self, cmd: CommandAPDU) -> None:
        """A command that came without SM while the session is open (SCP02 level 10 R-MACs its answer)."""
        ...

    def wrap(self, resp: ResponseAPDU) -> ResponseAPDU:
        """Add R-MAC / R-ENC as the level asks (only for 9000 and 62xx/63xx)."""
        ...

    def close(self) -> None:
        """Wipe session keys; later calls fail."""
        ...
