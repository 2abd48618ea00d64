"""The PC/SC connection: the only module of ``minidriver`` that imports pyscard.

It moves bytes and nothing else (no GET RESPONSE, no chaining: that is
:mod:`minidriver.protocol`). Every failure of the resource manager becomes a
:class:`PcscError` carrying the PC/SC return code as pcsc-lite reports it, so
upper layers can tell a removed card (``SCARD_W_REMOVED_CARD``) from a reset
one (``SCARD_W_RESET_CARD``) or a missing reader.

:class:`Connection` is the seam (style.md §2.8): sessions take anything with
``transmit`` and ``atr``, so unit tests back them with an in-process card.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from smartcard import scard

__all__ = [
    "Connection",
    "Disposition",
    "PcscCode",
    "PcscConnection",
    "PcscError",
    "ReaderEvent",
    "ReaderWatch",
    "Share",
    "list_readers",
]

log = logging.getLogger(__name__)


class PcscCode(IntEnum):
    """PC/SC return codes as pcsc-lite defines them (pcsclite.h; most equal Windows' winerror.h).

    These are the codes of the resource manager below us. The minidriver API
    returns its own Windows-valued codes (``minidriver.cardmod.codes``); a
    few differ (pcsc-lite's SCARD_E_UNSUPPORTED_FEATURE is 0x8010001F).
    """

    SCARD_S_SUCCESS = 0x00000000
    SCARD_F_INTERNAL_ERROR = 0x80100001
    SCARD_E_CANCELLED = 0x80100002
    SCARD_E_INVALID_HANDLE = 0x80100003
    SCARD_E_INVALID_PARAMETER = 0x80100004
    SCARD_E_INVALID_TARGET = 0x80100005
    SCARD_E_NO_MEMORY = 0x80100006
    SCARD_E_INSUFFICIENT_BUFFER = 0x80100008
    SCARD_E_UNKNOWN_READER = 0x80100009
    SCARD_E_TIMEOUT = 0x8010000A
    SCARD_E_SHARING_VIOLATION = 0x8010000B
    SCARD_E_NO_SMARTCARD = 0x8010000C
    SCARD_E_UNKNOWN_CARD = 0x8010000D
    SCARD_E_PROTO_MISMATCH = 0x8010000F
    SCARD_E_NOT_READY = 0x80100010
    SCARD_E_INVALID_VALUE = 0x80100011
    SCARD_F_COMM_ERROR = 0x80100013
    SCARD_E_NOT_TRANSACTED = 0x80100016
    SCARD_E_READER_UNAVAILABLE = 0x80100017
    SCARD_E_NO_SERVICE = 0x8010001D
    SCARD_E_SERVICE_STOPPED = 0x8010001E
    SCARD_E_UNSUPPORTED_FEATURE = 0x8010001F
    SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
    SCARD_E_COMM_DATA_LOST = 0x8010002F
    SCARD_W_UNSUPPORTED_CARD = 0x80100065
    SCARD_W_UNRESPONSIVE_CARD = 0x80100066
    SCARD_W_UNPOWERED_CARD = 0x80100067
    SCARD_W_RESET_CARD = 0x80100068
    SCARD_W_REMOVED_CARD = 0x80100069


#: codes that mean "the card you were talking to is gone or was reset": session state is lost
CARD_GONE = frozenset(
    {
        PcscCode.SCARD_W_REMOVED_CARD,
        PcscCode.SCARD_W_RESET_CARD,
        PcscCode.SCARD_W_UNPOWERED_CARD,
        PcscCode.SCARD_E_NO_SMARTCARD,
    }
)


def code_name(code: int) -> str:
    try:
        return PcscCode(code).name
    except ValueError:
        return f"0x{code:08X}"


class PcscError(Exception):
    """A PC/SC call failed; ``code`` is its return code (a :class:`PcscCode` when known)."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code & 0xFFFFFFFF
        self.message = message
        super().__init__(self.code, message)

    def __str__(self) -> str:
        what = f"{self.message}: " if self.message else ""
        return f"{what}{code_name(self.code)}"

    @property
    def card_gone(self) -> bool:
        """The card was removed, reset or powered down under us (its transient state is lost)."""
        return self.code in CARD_GONE


class Share(IntEnum):
    """dwShareMode of SCardConnect."""

    EXCLUSIVE = 1
    SHARED = 2
    DIRECT = 3


class Disposition(IntEnum):
    """What happens to the card on disconnect / reconnect / end of transaction."""

    LEAVE = 0
    RESET = 1
    UNPOWER = 2
    EJECT = 3


@runtime_checkable
class Connection(Protocol):
    """What a session needs from a card connection: bytes in, ``data || SW1 SW2`` out."""

    def transmit(self, apdu: bytes) -> bytes: ...

    @property
    def atr(self) -> bytes: ...


def _check(hresult: int, what: str) -> None:
    if hresult != scard.SCARD_S_SUCCESS:
        raise PcscError(hresult, what)


def _establish() -> Any:
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _check(hresult, "SCardEstablishContext (is pcscd running?)")
    return ctx


def list_readers() -> list[str]:
    """Reader names pcscd knows; an empty list when there are none."""
    ctx = _establish()
    try:
        hresult, readers = scard.SCardListReaders(ctx, [])
        if hresult == PcscCode.SCARD_E_NO_READERS_AVAILABLE:
            return []
        _check(hresult, "SCardListReaders")
        return [str(r) for r in readers]
    finally:
        scard.SCardReleaseContext(ctx)


class PcscConnection:
    """One PC/SC connection (T=1 or T=0) to the card in ``reader``, with its own context.

    ``share`` SHARED lets other applications use the card between our
    commands (wrap a sequence in :meth:`begin_transaction`/:meth:`end_transaction`
    to keep it ours). :meth:`close` leaves the card as it is unless told
    otherwise. Use as a context manager to close on every path.
    """

    def __init__(self, reader: str, *, share: Share = Share.SHARED) -> None:
        self.reader = reader
        self.share = share
        self._ctx: Any = _establish()
        self._card: Any = None
        self._protocol = 0
        self._owned = True
        try:
            hresult, card, protocol = scard.SCardConnect(
                self._ctx, reader, int(share), scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
            )
            _check(hresult, f"SCardConnect to {reader!r}")
        except BaseException:
            scard.SCardReleaseContext(self._ctx)
            self._ctx = None
            raise
        self._card, self._protocol = card, protocol
        self._owned = True
        self._atr = self._status_atr()
        log.debug("connected to %r (T=%d)", reader, 1 if protocol == scard.SCARD_PROTOCOL_T1 else 0)

    @classmethod
    def from_handles(cls, context: Any, card: Any) -> PcscConnection:
        """Use a context and card handle someone else established (``hSCardCtx``/``hScard``).

        The connection does not own them: :meth:`close` leaves both open for
        their owner. Reader, protocol and ATR are read with SCardStatus.
        """
        self = cls.__new__(cls)
        self._ctx, self._card, self._owned = context, card, False
        self.share = Share.SHARED
        hresult, reader, _state, protocol, atr = scard.SCardStatus(card)
        _check(hresult, "SCardStatus")
        self.reader, self._protocol, self._atr = str(reader), protocol, bytes(atr)
        return self

    @property
    def context(self) -> Any:
        """The PC/SC context handle (``hSCardCtx``)."""
        return self._ctx

    @property
    def handle(self) -> Any:
        """The card handle (``hScard``); None once closed."""
        return self._card

    # -- state ---------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._card is None

    def _handle(self) -> Any:
        if self._card is None:
            raise PcscError(PcscCode.SCARD_E_INVALID_HANDLE, "connection closed")
        return self._card

    def _status_atr(self) -> bytes:
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._handle())
        _check(hresult, "SCardStatus")
        return bytes(atr)

    @property
    def atr(self) -> bytes:
        """The ATR read at connect (or the last reconnect)."""
        return self._atr

    def status(self) -> bytes:
        """Ask pcscd now; raises ``SCARD_W_REMOVED_CARD``/``SCARD_W_RESET_CARD`` if the card changed."""
        self._atr = self._status_atr()
        return self._atr

    # -- I/O -------------------------------------------------------------------------
    def transmit(self, apdu: bytes) -> bytes:
        """One command APDU out, ``data || SW1 SW2`` back.

        A card link that drops mid-command reaches pcsc-lite's client as an
        empty success (design.md): an answer shorter than a status word is
        turned into the card's status (removed / reset) or SCARD_F_COMM_ERROR.
        """
        protocol = scard.SCARD_PCI_T1 if self._protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
        hresult, response = scard.SCardTransmit(self._handle(), protocol, list(apdu))
        _check(hresult, "SCardTransmit")
        out = bytes(response)
        if len(out) < 2:
            self.status()
            raise PcscError(PcscCode.SCARD_F_COMM_ERROR, f"SCardTransmit returned {len(out)} bytes")
        return out

    def reconnect(self, initialization: Disposition = Disposition.LEAVE) -> bytes:
        """SCardReconnect (after a reset/removal, or to reset/unpower the card); returns the new ATR."""
        hresult, protocol = scard.SCardReconnect(
            self._handle(), int(self.share), scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1, int(initialization)
        )
        _check(hresult, "SCardReconnect")
        self._protocol = protocol
        return self.status()

    def begin_transaction(self) -> None:
        _check(scard.SCardBeginTransaction(self._handle()), "SCardBeginTransaction")

    def end_transaction(self, disposition: Disposition = Disposition.LEAVE) -> None:
        _check(scard.SCardEndTransaction(self._handle(), int(disposition)), "SCardEndTransaction")

    def close(self, disposition: Disposition = Disposition.LEAVE) -> None:
        """Disconnect and release the context; safe to call twice, never raises for a gone card.

        A connection made with :meth:`from_handles` only forgets the handles.
        """
        card, ctx = self._card, self._ctx
        self._card = self._ctx = None
        if not self._owned:
            return
        if card is not None:
            scard.SCardDisconnect(card, int(disposition))
        if ctx is not None:
            scard.SCardReleaseContext(ctx)

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - a forgotten close
        if getattr(self, "_card", None) is not None or getattr(self, "_ctx", None) is not None:
            with contextlib.suppress(Exception):
                self.close()


@dataclass(frozen=True, slots=True)
class ReaderEvent:
    """A reader's state as SCardGetStatusChange reports it (``dwEventState`` without CHANGED)."""

    reader: str
    state: int
    atr: bytes

    @property
    def present(self) -> bool:
        return bool(self.state & scard.SCARD_STATE_PRESENT)

    @property
    def known(self) -> bool:
        """False when pcscd does not know the reader (SCARD_STATE_UNKNOWN)."""
        return not self.state & scard.SCARD_STATE_UNKNOWN


class ReaderWatch:
    """Card insertion and removal in ``readers``, reported by pcscd (SCardGetStatusChange), with its own context.

    :meth:`wait` blocks in pcscd until a state changes or ``timeout`` passes:
    no polling of the card. :meth:`cancel` (from another thread) ends a wait.
    """

    def __init__(self, readers: list[str]) -> None:
        self._ctx: Any = _establish()
        self._known = {reader: int(scard.SCARD_STATE_UNAWARE) for reader in readers}

    def current(self) -> list[ReaderEvent]:
        """The state of every watched reader now (a zero-timeout query)."""
        return self.wait(0.0, changes_only=False) or []

    def wait(self, timeout: float, *, changes_only: bool = True) -> list[ReaderEvent] | None:
        """The readers whose state changed (all of them if ``changes_only`` is False); None on timeout."""
        if self._ctx is None:
            raise PcscError(PcscCode.SCARD_E_INVALID_HANDLE, "watch closed")
        wanted = [(reader, state) for reader, state in self._known.items()]
        hresult, states = scard.SCardGetStatusChange(self._ctx, max(0, int(timeout * 1000)), wanted)
        if hresult == PcscCode.SCARD_E_TIMEOUT:
            return None if changes_only else [ReaderEvent(r, s, b"") for r, s in self._known.items()]
        _check(hresult, "SCardGetStatusChange")
        events = []
        for reader, event, atr in states:
            changed = bool(event & scard.SCARD_STATE_CHANGED)
            self._known[str(reader)] = event & ~scard.SCARD_STATE_CHANGED
            if changed or not changes_only:
                events.append(ReaderEvent(str(reader), event & ~scard.SCARD_STATE_CHANGED, bytes(atr)))
        return events

    def cancel(self) -> None:
        """End a :meth:`wait` running in another thread (it raises SCARD_E_CANCELLED)."""
        if self._ctx is not None:
            scard.SCardCancel(self._ctx)

    def close(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            scard.SCardReleaseContext(ctx)
