"""The secure channel as a service of a security domain (GP Card API ``SecureChannel``).

The ISD owns one :class:`SecureChannelService`. Any applet that lets hosts
open a secure channel to it (the ISD itself, PIV over SCP03) hands INITIALIZE
UPDATE and EXTERNAL AUTHENTICATE to the service; the card runtime keeps the
resulting session per logical channel, unwraps commands and wraps responses
through it (design.md, "The secure channel is a service of the ISD").

Key sets and sequence counters are the ISD's persistent state, reached through
the :class:`KeySetSource` protocol so this module stays free of the store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU
from .keys import SCPVersion, StaticKeys
from .scp02 import SCP02Card
from .scp03 import SCP03Card, SCP03Option
from .scp11 import SCP11KeyID
from .scp11_service import SCP11Service

if TYPE_CHECKING:
    from ..applets.base import CommandContext

__all__ = ["KeySetSource", "SecureChannelService", "SecureChannelSession"]

log = logging.getLogger(__name__)

SecureChannelSession = SCP03Card | SCP02Card


class KeySetSource(Protocol):
    def find_keyset(self, kvn: int) -> StaticKeys | None:
        """The key set with ``kvn``; ``0`` means the first (default) key set."""
        ...

    def next_sequence_counter(self, kvn: int, scp: SCPVersion) -> int:
        """Advance, persist and return the counter of ``kvn``; 6985 when exhausted."""
        ...


class SecureChannelService:
    """Creates SCP02/SCP03 sessions for INITIALIZE UPDATE and finishes them on EXTERNAL AUTHENTICATE."""

    def __init__(
        self,
        keys: KeySetSource,
        *,
        sd_aid: bytes,
        kdd: bytes,
        scp03_i: int = 0x70,
        scp02_i: int = 0x15,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.keys = keys
        self.sd_aid = bytes(sd_aid)
        self.kdd = bytes(kdd)
        self.scp03_i = scp03_i
        self.scp02_i = scp02_i
        #: injected so tests can force random card challenges
        self.random = random
        #: SCP11 (Amendment F) handshakes, when the security domain has SCP11 keys
        self.scp11: SCP11Service | None = None

    def new_session(self, keyset: StaticKeys, *, sd_aid: bytes) -> SecureChannelSession:
        """A fresh IDLE session for ``keyset``; allocates a sequence counter if the protocol uses one."""
        if keyset.scp == SCPVersion.SCP02:
            counter = self.keys.next_sequence_counter(keyset.kvn, SCPVersion.SCP02)
            return SCP02Card(
                keyset, i=self.scp02_i, kdd=self.kdd, sd_aid=sd_aid, sequence_counter=counter, random=self.random
            )
        counter3: int | None = None
        if self.scp03_i & SCP03Option.PSEUDO_RANDOM_CHALLENGE:
            counter3 = self.keys.next_sequence_counter(keyset.kvn, SCPVersion.SCP03)
        return SCP03Card(
            keyset, i=self.scp03_i, kdd=self.kdd, sd_aid=sd_aid, sequence_counter=counter3, random=self.random
        )

    def initialize_update(self, cmd: CommandAPDU, ctx: CommandContext, *, sd_aid: bytes | None = None) -> ResponseAPDU:
        """INITIALIZE UPDATE (GPCS §11.12): P1 = KVN (00: the first key set).

        Any session on the channel ends first, even if this command fails.
        The new session goes to ``ctx.new_session``; the runtime installs it.
        """
        ctx.session = None  # GPCS §11.12.1: aborts the current secure channel session
        if cmd.secure_messaging:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "INITIALIZE UPDATE must be sent without SM")
        if cmd.p2 != 0x00:
            raise CardError(SW.INCORRECT_P1P2, f"INITIALIZE UPDATE P2 {cmd.p2:02X}")
        keyset = self.keys.find_keyset(cmd.p1)
        if keyset is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key set {cmd.p1:02X}")
        session = self.new_session(keyset, sd_aid=self.sd_aid if sd_aid is None else sd_aid)
        resp = session.initialize_update(cmd)
        ctx.new_session = session
        log.debug("channel %d: %s challenge sent for key set %02X", ctx.channel, session.protocol, keyset.kvn)
        return resp

    def scp11_command(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """PERFORM SECURITY OPERATION / INTERNAL AUTHENTICATE of SCP11 (Amd F §7); 6D00 without SCP11."""
        if self.scp11 is None:
            raise CardError(SW.INS_NOT_SUPPORTED, "this security domain has no SCP11")
        return self.scp11.handle(cmd, ctx)

    def external_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """EXTERNAL AUTHENTICATE (GPCS §11.10) on the channel's pending session; 6985 without one.

        On failure the session is wiped and the runtime drops it. Sent plain
        (CLA 80) it is SCP11a/c's MUTUAL AUTHENTICATE (Amd F §7.6).
        """
        if not cmd.secure_messaging and self.scp11 is not None and cmd.p2 in (SCP11KeyID.SCP11A, SCP11KeyID.SCP11C):
            return self.scp11.handle(cmd, ctx)
        session = ctx.session
        if session is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "EXTERNAL AUTHENTICATE without INITIALIZE UPDATE")
        try:
            resp = session.external_authenticate(cmd)
        except CardError:
            ctx.session = None
            raise
        log.debug("channel %d: secure channel open at level %02X", ctx.channel, int(session.level) & 0x7F)
        return resp
