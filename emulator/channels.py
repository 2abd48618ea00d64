"""Per-logical-channel transient state (ISO 7816-4 §5.1.1, §5.3.3, §5.4.1).

Everything here is lost on reset, power-off and removal: the selected
applet, the secure channel session, a command chain being collected and a
long response waiting for GET RESPONSE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .applets.base import Applet
from .gp.session import SecureSession
from .iso7816 import SW, CardError, CommandAPDU

__all__ = ["MAX_CHAIN_BYTES", "Channel"]

log = logging.getLogger(__name__)

#: a command chain longer than this is refused (6A84); the assembled command
#: must still fit a CommandAPDU, whose data is at most 65535 bytes (extended Lc)
MAX_CHAIN_BYTES = 0xFFFF


@dataclass
class Channel:
    number: int
    selected: Applet | None = None
    session: SecureSession | None = None
    #: header (CLA without chaining bit, INS, P1, P2) and data of a chain in progress
    chain_header: tuple[int, int, int, int] | None = None
    chain_data: bytearray = field(default_factory=bytearray)
    #: bytes still to be fetched with GET RESPONSE
    pending: bytes = b""
    #: ``pending`` is the rest of a response whose data is secret (traces redact it)
    pending_secret: bool = False

    def close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def clear(self) -> None:
        """Deselect and drop every transient state of this channel."""
        if self.selected is not None:
            self.selected.deselect(self.number)
        self.selected = None
        self.close_session()
        self.abort_chain()
        self.pending = b""
        self.pending_secret = False

    def abort_chain(self) -> None:
        self.chain_header = None
        self.chain_data = bytearray()

    def collect(self, cmd: CommandAPDU) -> CommandAPDU | None:
        """Feed one (already unwrapped) command into command chaining.

        Returns None while a chain is collecting (the card answers 9000),
        or the whole command when the last link arrives.
        """
        header = (cmd.cla & ~0x10, cmd.ins, cmd.p1, cmd.p2)
        if self.chain_header is not None and self.chain_header != header:
            # A command that is not the next link (another INS/P1/P2, a SELECT,
            # another application's first command) abandons the chain and is
            # processed on its own, as cards do: ISO 7816-4 §5.3.3 lets only the
            # chain's own commands continue it and gives no error for a new
            # command, and answering 6883 would make one application's abandoned
            # chain break the next application's first SELECT. The partial data
            # is dropped, never executed. Chains also end on reset/power-off and
            # channel close (``clear``).
            log.debug("channel %d: command chain abandoned by %02X %02X", self.number, cmd.ins, cmd.p1)
            self.abort_chain()
        if not cmd.chained and self.chain_header is None:
            return cmd
        if len(self.chain_data) + len(cmd.data) > MAX_CHAIN_BYTES:
            self.abort_chain()
            raise CardError(SW.NOT_ENOUGH_MEMORY, "command chain too long")
        self.chain_header = header
        self.chain_data += cmd.data
        if cmd.chained:
            return None
        data = bytes(self.chain_data)
        self.abort_chain()
        return CommandAPDU(cmd.cla & ~0x10, cmd.ins, cmd.p1, cmd.p2, data, cmd.ne, cmd.extended)
