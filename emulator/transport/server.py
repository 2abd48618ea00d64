"""The socket side of one vpcd slot: connect while a card is in, serve frames.

vpcd listens (inside the stack's network namespace) on 127.0.0.1:port; this
loop connects to it while the slot holds a card and answers every frame.
What each frame is (control, ATR request, presence poll or APDU) is decided
by :class:`~emulator.transport.link.VpcdLink`; see its rule for 1-byte
payloads.

A card is present for pcscd exactly while this connection exists. Answering
GET ATR with an empty ATR ("no card" in the protocol notes) hangs Debian's
vpcd 0.8: it then calls ``recv(fd, buf, 0, MSG_WAITALL)``, which blocks until
the next byte arrives, and that pcscd reader thread stops polling (measured
with gdb on pcscd 1.9.9). So insertion connects; vpcd accepts it at its next
presence poll (every 400 ms).

Removal without losing an answer. vpcd turns a link that drops while it waits
for a reply into a *successful empty* response (``recvFromVICC`` compares a
failed ``recv``'s -1 with an unsigned size and reads on; measured with both
FIN and RST). So a gentle removal (``leave``) never closes the link under
vpcd: APDUs keep being answered until pcscd's next presence poll, which gets
the protocol's "no card" (an empty ATR) followed by one padding byte, so the
``recv(…, 0, MSG_WAITALL)`` above returns at once; vpcd then closes the link
itself and pcscd reports the card removed at that very poll. Only an explicit
tear (``disconnect``), a daemon killed by SIGKILL, or a stalled pcscd
(``leave``'s fallback) close the link under an APDU in flight.

pcscd must also *see* every other removal: if the card side disappears
mid-APDU and reconnects before vpcd's next presence poll, pcscd's shared
reader state says "empty" while its event thread still believes the card is
present, and the re-insertion is never announced (measured: the reader stays
empty for every application). So after such a disconnect the slot stays away
until vpcd has polled once more; the poll phase is learnt from its polls.

Latency matters here: vpcd
writes the length and the payload in two ``send`` calls, so without
``TCP_NODELAY``, a re-armed ``TCP_QUICKACK`` before each ``recv`` and one
``sendall`` per reply, each APDU waits ~40 ms for a delayed ACK
(design.md, "Facts measured on this stack").
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Protocol

from .link import PRESENT, WATCHDOG_SECONDS, Event, Kind, LinkDesync, VpcdLink
from .vpcd import Ctrl, VpcdDecoder, encode_frame

__all__ = ["NO_CARD", "CardAbsent", "FrameTarget", "SlotServer", "handle_event"]

log = logging.getLogger(__name__)

RECV_BYTES = 65538
RETRY_SECONDS = 0.1
#: pcscd's presence poll period (PCSCLITE_STATUS_POLL_RATE 400 ms + 10 ms of sleep slack)
POLL_SECONDS = 0.41
#: extra time for a late poll before reconnecting after a removal
POLL_MARGIN_SECONDS = 0.12
#: unknown poll phase (daemon start after a crash): stay away this long
SETTLE_SECONDS = 2 * POLL_SECONDS + POLL_MARGIN_SECONDS
#: a gentle removal waits this long for pcscd's presence poll, then tears
LEAVE_SECONDS = 2.0
#: the answer to a presence poll that removes the card: an empty ATR ("no card")
#: and one padding byte that lets vpcd's zero-length MSG_WAITALL recv return
NO_CARD = encode_frame(b"") + b"\x00"


class CardAbsent(Exception):
    """Raised by a target that holds no card: the loop closes the link (see above)."""


class FrameTarget(Protocol):
    def atr(self) -> bytes: ...
    def control(self, ctrl: Ctrl) -> None: ...
    def transmit(self, apdu: bytes) -> bytes: ...


def handle_event(target: FrameTarget, event: Event) -> bytes | None:
    """Pure: one link event in, the reply payload (if any) out."""
    if event.kind is Kind.APDU:
        return target.transmit(event.apdu)
    if event.kind is Kind.CONTROL:
        assert event.ctrl is not None
        target.control(event.ctrl)
        return None
    atr = target.atr()  # raises CardAbsent for an empty slot
    return atr if event.kind is Kind.ATR else PRESENT


class SlotServer:
    """Keeps one connection to vpcd for ``target`` alive until ``stop()``."""

    def __init__(self, target: FrameTarget, host: str, port: int, *, name: str = "slot", settle: bool = True) -> None:
        """``settle``: pcscd may have seen a card on this slot before (a daemon
        restart), so wait one unknown poll phase before the first connection."""
        self.target = target
        self.host = host
        self.port = port
        self.name = name
        self.connected = threading.Event()
        self._down = threading.Event()  #: no link exists (the inverse of ``connected``)
        self._down.set()
        self._stop = threading.Event()
        self._want = threading.Event()
        self._leaving = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"vpcd-{name}", daemon=True)
        self._last_poll = time.monotonic()
        self._not_before = time.monotonic() + (SETTLE_SECONDS if settle else 0.0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.disconnect()
        self._want.set()
        self._thread.join(timeout=2)

    def connect(self) -> None:
        """A card went in: connect to vpcd (pcscd sees it at its next poll)."""
        with self._lock:
            self._leaving = False
            self._want.set()

    def request_leave(self) -> None:
        """Start a gentle removal (see the module notes); ``wait_left`` finishes it."""
        with self._lock:
            self._want.clear()
            self._leaving = True

    def wait_left(self, timeout: float = LEAVE_SECONDS) -> bool:
        """Wait for the link to close at a presence poll; tear it after ``timeout``.

        Returns True for a gentle removal, False if it had to be torn.
        """
        if self._down.wait(timeout):
            return True
        log.warning("%s: no presence poll from pcscd in %.1f s; closing the link", self.name, timeout)
        self.disconnect()
        self._down.wait(2.0)
        return False

    def leave(self, timeout: float = LEAVE_SECONDS) -> bool:
        """Gentle removal: every APDU sent before pcscd's next poll is answered."""
        self.request_leave()
        return self.wait_left(timeout)

    def disconnect(self) -> None:
        """Tear: close the connection now, even under an APDU in flight, and stay away."""
        with self._lock:
            self._want.clear()
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        warned = False
        while not self._stop.is_set():
            if not self._want.is_set():
                self._want.wait(0.5)
                continue
            wait = self._not_before - time.monotonic()
            if wait > 0:  # let vpcd's next presence poll see the slot empty
                self._stop.wait(wait)
                continue
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1)
            except OSError as exc:
                if not warned:
                    log.info("%s: waiting for vpcd on %s:%d (%s)", self.name, self.host, self.port, exc.strerror)
                    warned = True
                self._stop.wait(RETRY_SECONDS)
                continue
            warned = False
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if not self._want.is_set():  # removed while connecting
                    sock.close()
                    continue
                self._sock = sock
                self._down.clear()
                self.connected.set()
            log.info("%s: connected to vpcd on %s:%d", self.name, self.host, self.port)
            left = False
            try:
                left = self._serve(sock)
            except OSError as exc:
                log.info("%s: vpcd connection lost (%s)", self.name, exc.strerror or exc)
            finally:
                with self._lock:
                    self.connected.clear()
                    self._sock = None
                    self._leaving = False
                sock.close()
                now = time.monotonic()
                # after a gentle removal pcscd has already seen the slot empty
                self._not_before = now if left else self._next_poll_after(now)
                self._down.set()
            if not self._stop.is_set():
                self._stop.wait(RETRY_SECONDS)

    def _next_poll_after(self, now: float) -> float:
        """When vpcd's first poll after ``now`` will be over (plus a margin)."""
        periods = int((now - self._last_poll) / POLL_SECONDS) + 1
        return self._last_poll + periods * POLL_SECONDS + POLL_MARGIN_SECONDS

    def _serve(self, sock: socket.socket) -> bool:
        """Answer vpcd until the link ends; True when it ended by a gentle removal."""
        decoder = VpcdDecoder()
        link = VpcdLink()
        quickack = getattr(socket, "TCP_QUICKACK", None)
        recv, sendall, setsockopt = sock.recv, sock.sendall, sock.setsockopt
        monotonic = time.monotonic
        active = monotonic()  #: last message from vpcd or reply to it
        while True:
            deadline = link.deadline
            until = active + WATCHDOG_SECONDS if deadline is None else deadline
            sock.settimeout(max(until - monotonic(), 0.0005))
            if quickack is not None:
                setsockopt(socket.IPPROTO_TCP, quickack, 1)
            try:
                data = recv(RECV_BYTES)
            except TimeoutError:
                now = monotonic()
                events = link.expire(now)
                if not events:
                    if now - active < WATCHDOG_SECONDS:
                        continue
                    # e.g. a 0-byte SCardTransmit: vpcd sent nothing and waits for a reply
                    log.warning("%s: no message from vpcd for %.0f s; dropping the link", self.name, now - active)
                    return False
                log.info(
                    "%s: 1-byte APDU %s (nothing followed it): answered 6700", self.name, events[0].apdu.hex().upper()
                )
            else:
                if not data:
                    log.info("%s: vpcd closed the connection", self.name)
                    return False
                now = monotonic()
                events = []
                try:
                    for frame in decoder.feed(data):
                        events += link.feed(frame, now)
                except LinkDesync as exc:
                    log.warning("%s: %s; dropping the link to resynchronise", self.name, exc)
                    return False
            active = now
            for event in events:
                if event.kind is Kind.POLL:
                    self._last_poll = now
                if self._leaving and event.kind in (Kind.POLL, Kind.ATR):
                    sendall(NO_CARD)
                    log.info("%s: card removed at pcscd's presence poll", self.name)
                    return True
                try:
                    reply = handle_event(self.target, event)
                except CardAbsent:
                    log.debug("%s: no card in the slot; closing the link", self.name)
                    return False
                if reply is not None:
                    sendall(encode_frame(reply))
            active = monotonic()
