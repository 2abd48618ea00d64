"""The socket side of one vpcd slot: connect while a card is in, serve frames.

vpcd listens (inside the stack's network namespace) on 127.0.0.1:port; this
loop connects to it while the slot holds a card and answers every frame.

A card is present for pcscd exactly while this connection exists. Answering
GET ATR with an empty ATR ("no card" in the protocol notes) hangs Debian's
vpcd 0.8: it then calls ``recv(fd, buf, 0, MSG_WAITALL)``, which blocks until
the next byte arrives, and that pcscd reader thread stops polling (measured
with gdb on pcscd 1.9.9). So removal closes the connection, and insertion
connects; vpcd accepts it at its next presence poll (every 400 ms).

pcscd must also *see* every removal: if the card side disappears mid-APDU
and reconnects before vpcd's next presence poll, pcscd's shared reader state
says "empty" while its event thread still believes the card is present, and
the re-insertion is never announced (measured: the reader stays empty for
every application). So after a disconnect the slot stays away until vpcd has
polled once more; the poll phase is learnt from its GET ATR messages.

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

from .vpcd import Ctrl, Frame, VpcdDecoder, VpcdProtocolError, encode_frame

__all__ = ["CardAbsent", "FrameTarget", "SlotServer", "handle_frame"]

log = logging.getLogger(__name__)

RECV_BYTES = 65538
RETRY_SECONDS = 0.1
#: pcscd's presence poll period (PCSCLITE_STATUS_POLL_RATE 400 ms + 10 ms of sleep slack)
POLL_SECONDS = 0.41
#: extra time for a late poll before reconnecting after a removal
POLL_MARGIN_SECONDS = 0.12
#: unknown poll phase (daemon start after a crash): stay away this long
SETTLE_SECONDS = 2 * POLL_SECONDS + POLL_MARGIN_SECONDS


class CardAbsent(Exception):
    """Raised by a target that holds no card: the loop closes the link (see above)."""


class FrameTarget(Protocol):
    def atr(self) -> bytes: ...
    def control(self, ctrl: Ctrl) -> None: ...
    def transmit(self, apdu: bytes) -> bytes: ...


def handle_frame(target: FrameTarget, frame: Frame) -> bytes | None:
    """Pure: one vpcd frame in, the reply payload (if any) out."""
    if frame.ctrl is not None:
        if frame.ctrl is Ctrl.GET_ATR:
            return target.atr()
        target.control(frame.ctrl)
        return None
    return target.transmit(frame.apdu)


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
        self._stop = threading.Event()
        self._want = threading.Event()
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
        self._want.set()

    def disconnect(self) -> None:
        """The card went out: close the connection and stay away until ``connect``."""
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
            self._sock = sock
            if not self._want.is_set():  # removed while connecting
                sock.close()
                self._sock = None
                continue
            self.connected.set()
            log.info("%s: connected to vpcd on %s:%d", self.name, self.host, self.port)
            try:
                self._serve(sock)
            except OSError as exc:
                log.info("%s: vpcd connection lost (%s)", self.name, exc.strerror or exc)
            finally:
                self.connected.clear()
                self._sock = None
                sock.close()
                self._not_before = self._next_poll_after(time.monotonic())
            if not self._stop.is_set():
                self._stop.wait(RETRY_SECONDS)

    def _next_poll_after(self, now: float) -> float:
        """When vpcd's first poll after ``now`` will be over (plus a margin)."""
        periods = int((now - self._last_poll) / POLL_SECONDS) + 1
        return self._last_poll + periods * POLL_SECONDS + POLL_MARGIN_SECONDS

    def _serve(self, sock: socket.socket) -> None:
        decoder = VpcdDecoder()
        quickack = getattr(socket, "TCP_QUICKACK", None)
        recv, sendall, setsockopt = sock.recv, sock.sendall, sock.setsockopt
        while True:
            if quickack is not None:
                setsockopt(socket.IPPROTO_TCP, quickack, 1)
            data = recv(RECV_BYTES)
            if not data:
                log.info("%s: vpcd closed the connection", self.name)
                return
            try:
                frames = decoder.feed(data)
            except VpcdProtocolError as exc:
                log.warning("%s: %s; reconnecting", self.name, exc)
                return
            for frame in frames:
                if frame.ctrl is Ctrl.GET_ATR:
                    self._last_poll = time.monotonic()
                try:
                    reply = handle_frame(self.target, frame)
                except CardAbsent:
                    log.debug("%s: no card in the slot; closing the link", self.name)
                    return
                if reply is not None:
                    sendall(encode_frame(reply))
