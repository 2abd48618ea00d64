"""Per-context SKI state: key handles, pending handshakes, the server's key sets.

``MinidriverContext.ski`` is a :class:`SkiState`. Handles follow minidriver-spec.md §5.1:

* numbers come from one process-wide counter that only goes up and starts at 1, so 0 is never
  a handle and a number is never given out twice, in any context;
* a handle belongs to the context that made it; another context's number is unknown there;
* a handle ends with CardDestroyKey, CardDeleteContext, card removal or reset
  (:meth:`SkiState.card_gone`, called by the context when a transmit reports it). An ended
  handle keeps a tombstone: later uses answer SCARD_W_REMOVED_CARD / SCARD_W_RESET_CARD when
  the card went away under it, SCARD_E_INVALID_HANDLE otherwise. Host keys are dropped at once
  (the SCP03 host object closes, which drops its session keys).

The client side never holds a key: a :class:`ClientKey` is a logical channel number and the
security level the server chose. The server side (NO_CARD_MODE) holds an open
:class:`~minidriver.scp03.SCP03Host` per handle.
"""

from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..scp03 import SCP03Host
from ..scpbase import StaticKeys
from .codes import MinidriverError, ScardCode
from .context import MinidriverContext, context_of
from .types import CardData

__all__ = [
    "ISSUER_LEVELS",
    "ClientKey",
    "KeyProps",
    "PendingClient",
    "ServerConfig",
    "ServerKey",
    "SkiState",
    "configure_server",
    "ski_state",
]

#: levels that give the session issuer rights on the card (C-MAC + C-DECRYPTION, scp_rights.py)
ISSUER_LEVELS = frozenset({0x03, 0x13, 0x33})
MAX_PENDING = 64  #: handshakes a server context keeps open at once; the oldest goes first
_GONE = (ScardCode.SCARD_W_REMOVED_CARD, ScardCode.SCARD_W_RESET_CARD)

_numbers = itertools.count(1)


def next_handle() -> int:
    return next(_numbers)


@dataclass
class KeyProps:
    """CardSetKeyProperty values. SCP03 derives its own ICV from the command counter, so the IV
    is kept (the spec's callers set one) but never used; CBC is the only chaining mode."""

    chaining_mode: str = "ChainingModeCBC"
    iv: bytes | None = field(default=None, repr=False)


@dataclass
class ServerKey:
    scp: SCP03Host
    channel: int
    level: int
    props: KeyProps = field(default_factory=KeyProps)

    def wipe(self) -> None:
        self.scp.close()


@dataclass
class ClientKey:
    channel: int
    level: int
    connection: Any  #: the transport the session lives on; a rebind makes the handle stale
    props: KeyProps = field(default_factory=KeyProps)

    def wipe(self) -> None:
        self.connection = None


@dataclass
class PendingClient:
    """Client round 1 done: INITIALIZE UPDATE sent on ``channel``; EXTERNAL AUTHENTICATE next."""

    channel: int
    connection: Any


@dataclass
class ServerConfig:
    keys: dict[int, StaticKeys]
    kvn: int = 0
    level: int = 0x03
    sd_aid: bytes = bytes.fromhex("A000000151000000")
    random: Callable[[int], bytes] = os.urandom


@dataclass
class SkiState:
    ctx: MinidriverContext
    server: ServerConfig | None = None
    #: server: host challenge -> KVN asked for, for handshakes whose card answer is awaited
    pending_server: OrderedDict[bytes, int] = field(default_factory=OrderedDict)
    pending_client: PendingClient | None = None
    #: why the last client handshake ended before its round 2 (card removed/reset)
    pending_lost: ScardCode | None = None
    handles: dict[int, ServerKey | ClientKey] = field(default_factory=dict)
    #: client: (connection, channel) with PIV selected and no session, for the next round 1
    idle_channels: list[tuple[Any, int]] = field(default_factory=list)
    dead: dict[int, ScardCode] = field(default_factory=dict)

    # -- handles -------------------------------------------------------------------------------
    def add(self, key: ServerKey | ClientKey) -> int:
        number = next_handle()
        self.handles[number] = key
        return number

    def get(self, handle: object) -> ServerKey | ClientKey:
        """The live key of ``handle``; an ended one answers its tombstone code (§5.1)."""
        if isinstance(handle, int) and not isinstance(handle, bool):
            key = self.handles.get(handle)
            if key is not None:
                return key
            if handle in self.dead:
                raise MinidriverError(self.dead[handle], f"key handle {handle} has ended")
        raise MinidriverError(ScardCode.SCARD_E_INVALID_HANDLE, f"no key handle {handle!r} in this context")

    def end(self, handle: int, why: ScardCode = ScardCode.SCARD_E_INVALID_HANDLE) -> ServerKey | ClientKey | None:
        key = self.handles.pop(handle, None)
        if key is not None:
            key.wipe()
            self.dead[handle] = why
        return key

    # -- hooks the context calls ---------------------------------------------------------------
    def card_gone(self) -> None:
        """The card was removed or reset, or the context rebinds: every card-bound handle ends."""
        why = self.ctx.card_lost if self.ctx.card_lost in _GONE else ScardCode.SCARD_E_INVALID_HANDLE
        for number, key in list(self.handles.items()):
            if isinstance(key, ClientKey):
                self.end(number, why)
        if self.pending_client is not None:
            self.pending_client = None
            self.pending_lost = why if why in _GONE else ScardCode.SCARD_W_RESET_CARD
        self.idle_channels.clear()  # a reset or removal closed them on the card

    def destroy_all(self) -> None:
        """CardDeleteContext: every handle and pending handshake ends; host keys are dropped.

        The client's channels are closed on the card (best effort: MANAGE CHANNEL close, errors
        ignored, the call cannot fail) so that they do not outlive the context.
        """
        from .ski_client import close_channel

        channels = list(self.idle_channels)
        if self.pending_client is not None:
            channels.append((self.pending_client.connection, self.pending_client.channel))
        for number, key in list(self.handles.items()):
            if isinstance(key, ClientKey) and key.connection is not None:
                channels.append((key.connection, key.channel))
            self.end(number)
        self.pending_server.clear()
        self.pending_client = None
        self.idle_channels.clear()
        self.server = None
        for connection, channel in channels:
            close_channel(connection, channel)

    # -- server handshakes ------------------------------------------------------------------------
    def remember_challenge(self, challenge: bytes, kvn: int) -> None:
        self.pending_server[challenge] = kvn
        while len(self.pending_server) > MAX_PENDING:
            self.pending_server.popitem(last=False)


def ski_state(card_data: CardData) -> SkiState:
    ctx = context_of(card_data)
    if not isinstance(ctx.ski, SkiState):
        ctx.ski = SkiState(ctx)
    return ctx.ski


def configure_server(
    card_data: CardData,
    keys: StaticKeys | Mapping[int, StaticKeys],
    *,
    kvn: int = 0,
    level: int = 0x03,
    sd_aid: bytes | None = None,
) -> None:
    """Give a NO_CARD_MODE context the static SCP03 key sets it shares with cards (the
    "predefined key on the server" of the CardGetSharedKeyHandle page).

    ``keys``: one key set or ``{kvn: keys}``; the card's answer names the KVN it used. ``kvn`` is
    P1 of INITIALIZE UPDATE (0: the card's first key set). ``level``: 03, 13 or 33 (C-MAC +
    C-DECRYPTION, with R-MAC / R-ENC): lower levels would carry keys and PINs without
    confidentiality and get no issuer rights on the card.
    """
    ctx = context_of(card_data)
    if not ctx.no_card:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "server keys belong to a NO_CARD_MODE context")
    if level not in ISSUER_LEVELS:
        raise ValueError(f"level must be 0x03, 0x13 or 0x33, not {level:#04x}")
    if not 0 <= kvn <= 0xFF:
        raise ValueError(f"kvn must be 0x00-0xFF, not {kvn}")
    table = {keys.kvn: keys} if isinstance(keys, StaticKeys) else dict(keys)
    config = ServerConfig(table, kvn=kvn, level=level)
    if sd_aid is not None:
        config.sd_aid = bytes(sd_aid)
    ski_state(card_data).server = config
