"""The state machine shared by the SCP02 and SCP03 card sessions.

A session object lives for one secure channel session on one logical channel
(GPCS 2.3.1 §10.2)::

    IDLE --INITIALIZE UPDATE--> CHALLENGED --EXTERNAL AUTHENTICATE ok--> OPEN
      |                             |  (wrong cryptogram/MAC: 6300)        |
      +-----------------------------+----------> CLOSED <------------------+
                                    (MAC/padding failure 6982, close())

``CLOSED`` is final: keys are dropped and every later call fails. The card
runtime replaces a closed session by a new one on the next INITIALIZE UPDATE.
"""

from __future__ import annotations

from enum import Enum, auto

from ..iso7816 import SW, CardError, CommandAPDU
from .levels import SecurityLevel

__all__ = ["ChannelState", "SessionBase", "lc_bytes", "mac_cla", "plain_cla", "protects_response"]


class ChannelState(Enum):
    IDLE = auto()  #: no INITIALIZE UPDATE yet
    CHALLENGED = auto()  #: card cryptogram sent; awaiting EXTERNAL AUTHENTICATE
    OPEN = auto()  #: session keys live; commands wrapped per ``level``
    CLOSED = auto()  #: auth/MAC failure, reset or deselect; keys dropped


def mac_cla(cla: int) -> int:
    """CLA as it enters the C-MAC: SM indicated, logical channel bits cleared (AmdD §6.2.4).

    Only the channel bits are cleared, so any other CLA change (e.g. b4) breaks the MAC.
    """
    if cla & 0x40:  # further interindustry class: b6 = SM, b4-b1 = channel - 4
        return (cla & 0xF0) | 0x20
    return (cla & 0xFC) | 0x04


def plain_cla(cla: int) -> int:
    """CLA with the SM indication removed, as the applet sees the unwrapped command."""
    if cla & 0x40:
        return cla & ~0x20
    return cla & ~0x0C


def lc_bytes(n: int, extended: bool) -> bytes:
    """The Lc field as transmitted (short, or 00 + two bytes in extended form)."""
    if extended or n > 0xFF:
        return b"\x00" + n.to_bytes(2, "big")
    return bytes((n,))


def protects_response(sw: int) -> bool:
    """R-MAC applies to 9000 and the warnings 62xx/63xx only; errors go back bare (AmdD §6.2.5)."""
    return sw == SW.OK or sw >> 8 in (0x62, 0x63)


class SessionBase:
    """State checks and the wipe shared by :class:`SCP03Card` and :class:`SCP02Card`."""

    protocol: str = "SCP"

    def __init__(self) -> None:
        self.state = ChannelState.IDLE
        self._level = SecurityLevel.NONE

    # -- SecureSession protocol ------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.state is ChannelState.OPEN

    @property
    def level(self) -> SecurityLevel:
        if self.state is not ChannelState.OPEN:
            return SecurityLevel.NONE
        return self._level | SecurityLevel.AUTHENTICATED

    def observe_plain(self, cmd: CommandAPDU) -> None:
        """A plain command in an open session: nothing to do unless a subclass R-MACs its answer."""

    def close(self) -> None:
        """Drop every session key and refuse further use (GPCS §10.2.3)."""
        self._wipe()
        self.state = ChannelState.CLOSED
        self._level = SecurityLevel.NONE

    # -- helpers for subclasses --------------------------------------------------
    def _wipe(self) -> None:
        """Subclasses overwrite their key attributes with empty bytes here."""

    def _expect(self, state: ChannelState, what: str) -> None:
        if self.state is not state:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, f"{self.protocol}: {what} in state {self.state.name}")

    def _fail(self, sw: int, detail: str) -> CardError:
        """Close the session and build the error that reports it."""
        self.close()
        return CardError(sw, f"{self.protocol}: {detail}; session closed")

    def _check_open_for_unwrap(self, cmd: CommandAPDU, mac_len: int = 8) -> None:
        if self.state is not ChannelState.OPEN:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, f"{self.protocol}: unwrap in state {self.state.name}")
        if not self._level & SecurityLevel.C_MAC:
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "secure messaging at a level without C-MAC")
        if len(cmd.data) < mac_len:
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "wrapped command without a C-MAC")
