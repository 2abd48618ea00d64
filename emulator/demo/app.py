"""The demo application: a real PC/SC program that unlocks a session with a PIV card.

It reaches the card the way any application does, through pcscd, with the
host side of this project (:mod:`minidriver.pcsc`, :mod:`minidriver.piv`),
never through the emulator's internals. What it does:

1. waits for a card in its reader (pcscd's ``SCardGetStatusChange``, a blocking
   wait in pcscd, no polling of the card);
2. asks for the PIN and VERIFYs it (SP 800-73-4 part 2 §3.2.1);
3. proves possession of the 9A key: signs a fresh random challenge on the card
   (GENERAL AUTHENTICATE, part 2 §3.2.4) and verifies the signature with the
   public key of the 9A certificate; then the session is unlocked;
4. locks the moment pcscd reports the card gone, whatever it was doing.

The app never prints: it keeps a :class:`Snapshot` that a view draws, and a
list of :class:`Event` lines (the transcript). APDUs are recorded on the app
side with their data hidden (header, length, status word, time).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from minidriver.iso7816 import ApduError, BadResponseError, sw_name
from minidriver.pcsc import PcscCode, PcscConnection, PcscError, ReaderEvent, ReaderWatch, list_readers
from minidriver.piv import INS, InvalidPinError, KeySlot, PinBlockedError, PivSession, algorithm_of

__all__ = ["ApduRecord", "DemoApp", "Event", "Phase", "ReaderLine", "Snapshot"]

APDU_HISTORY = 8
EVENT_HISTORY = 200
WATCH_TIMEOUT = 0.25  #: longest blocking wait in pcscd before the watcher checks whether to stop
#: DigestInfo prefix of SHA-256 (RFC 8017 §9.2 note 1), for a raw RSA signature on the card
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
INS_NAMES = {int(i): i.name.replace("_", " ") for i in INS} | {0xC0: "GET RESPONSE"}


class Phase(Enum):
    """What the application is doing; the view colours it."""

    WAITING = "waiting for a card"
    PIN_REQUIRED = "card present: PIN required"
    CHECKING = "checking PIN and key"
    UNLOCKED = "session unlocked"
    LOCKED = "session locked: card removed"


@dataclass(frozen=True)
class ApduRecord:
    """One command and its answer, as the app saw it; never the data (it may hold a PIN)."""

    at: float
    header: str  #: CLA INS P1 P2 in hex
    name: str
    lc: int
    sw: str  #: status word name, or the PC/SC error
    ms: float
    note: str = ""  #: card side: applet, secure messaging, redaction, fault


@dataclass(frozen=True)
class Event:
    at: float  #: seconds since the app started
    kind: str  #: "state", "card", "apdu-error", "sign", "info", "script"
    text: str


@dataclass(frozen=True)
class ReaderLine:
    name: str
    present: bool
    atr: bytes


@dataclass(frozen=True)
class Snapshot:
    """Everything a view draws, taken at one instant."""

    reader: str
    phase: Phase
    detail: str
    readers: tuple[ReaderLine, ...]
    apdus: tuple[ApduRecord, ...]
    events: tuple[Event, ...]
    signatures: int
    signing: bool
    lock_cause: str = ""
    script_step: str = ""
    pin_entry: int | None = None  #: digits typed so far (interactive), None when not asking
    elapsed: float = 0.0
    card_apdus: tuple[ApduRecord, ...] = ()  #: what the card saw (the daemon's trace), when it streams
    card_trace: bool = False


class RecordingConnection:
    """A :class:`~minidriver.pcsc.Connection` that keeps a short, redacted log of what crossed it."""

    def __init__(self, conn: PcscConnection, record: Callable[[ApduRecord], None], clock: Callable[[], float]) -> None:
        self.conn = conn
        self._record = record
        self._clock = clock

    @property
    def atr(self) -> bytes:
        return self.conn.atr

    def transmit(self, apdu: bytes) -> bytes:
        start = time.perf_counter()
        header = apdu[:4].hex(" ").upper()
        name = INS_NAMES.get(apdu[1], f"INS {apdu[1]:02X}") if len(apdu) > 1 else "?"
        lc = apdu[4] if len(apdu) > 5 and apdu[4] else 0
        try:
            out = self.conn.transmit(apdu)
        except PcscError as exc:
            self._record(ApduRecord(self._clock(), header, name, lc, str(exc), (time.perf_counter() - start) * 1e3))
            raise
        sw = int.from_bytes(out[-2:], "big")
        self._record(ApduRecord(self._clock(), header, name, lc, sw_name(sw), (time.perf_counter() - start) * 1e3))
        return out


class DemoApp:
    """The application; thread-safe. Start it, feed it PINs, read :meth:`snapshot`."""

    def __init__(self, reader: str, *, on_change: Callable[[], None] | None = None) -> None:
        self.reader = reader
        self._on_change = on_change or (lambda: None)
        self._t0 = time.monotonic()
        self._state = threading.Lock()  # guards the fields below
        self._io = threading.Lock()  # one card operation at a time
        self._phase = Phase.WAITING
        self._detail = "insert the card"
        self._readers: dict[str, ReaderLine] = {}
        self._apdus: deque[ApduRecord] = deque(maxlen=APDU_HISTORY)
        self._card_apdus: deque[ApduRecord] = deque(maxlen=APDU_HISTORY)
        self._card_trace = False
        self._events: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self._listeners: list[Callable[[Event], None]] = []
        self._signatures = 0
        self._signing = False
        self._lock_cause = ""
        self._script_step = ""
        self._pin_entry: int | None = None
        self._session: tuple[PcscConnection, PivSession, x509.Certificate | None] | None = None
        self._generation = 0  # bumped on every lock: a worker of an older session stops
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watch: ReaderWatch | None = None

    # -- clock, events, snapshot ------------------------------------------------------
    @property
    def started(self) -> float:
        """When the app started, on the monotonic clock (event times count from here)."""
        return self._t0

    def now(self) -> float:
        return time.monotonic() - self._t0

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """``listener`` gets every event from now on (called in the thread that made it)."""
        self._listeners.append(listener)

    def event(self, kind: str, text: str) -> None:
        ev = Event(self.now(), kind, text)
        with self._state:
            self._events.append(ev)
        for listener in self._listeners:
            listener(ev)
        self._on_change()

    def set_script_step(self, text: str) -> None:
        with self._state:
            self._script_step = text
        self.event("script", text)

    def set_pin_entry(self, digits: int | None) -> None:
        with self._state:
            self._pin_entry = digits
        self._on_change()

    def snapshot(self) -> Snapshot:
        with self._state:
            return Snapshot(
                reader=self.reader,
                phase=self._phase,
                detail=self._detail,
                readers=tuple(self._readers[name] for name in sorted(self._readers)),
                apdus=tuple(self._apdus),
                events=tuple(self._events),
                signatures=self._signatures,
                signing=self._signing,
                lock_cause=self._lock_cause,
                script_step=self._script_step,
                pin_entry=self._pin_entry,
                elapsed=self.now(),
                card_apdus=tuple(self._card_apdus),
                card_trace=self._card_trace,
            )

    def _set_phase(self, phase: Phase, detail: str, *, cause: str = "") -> None:
        with self._state:
            changed = phase != self._phase
            self._phase, self._detail = phase, detail
            if phase is Phase.LOCKED:
                self._lock_cause = cause
        if changed:
            self.event("state", f"{phase.name} ({cause or detail})")
        else:
            self._on_change()

    def _record_apdu(self, record: ApduRecord) -> None:
        with self._state:
            self._apdus.append(record)
        self._on_change()

    def record_card_apdu(self, record: ApduRecord) -> None:
        """An APDU as the card saw it (emulator/demo/cardside.py feeds these)."""
        with self._state:
            self._card_apdus.append(record)
            self._card_trace = True
        self._on_change()

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Watch every reader pcscd knows (PcscError if pcscd is unreachable); the app's own must be one."""
        readers = list_readers()
        if self.reader not in readers:
            raise PcscError(
                PcscCode.SCARD_E_UNKNOWN_READER,
                f"pcscd has no reader {self.reader!r} (readers: {', '.join(readers) or 'none'})",
            )
        self._watch = ReaderWatch(readers)
        self._on_readers(self._watch.current())
        self._watcher = threading.Thread(target=self._watch_loop, name="demo-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        self.stop_signing()
        if self._watch is not None:
            self._watch.cancel()
        if self._watcher is not None:
            self._watcher.join(timeout=2)
        if self._watch is not None:
            self._watch.close()
        self._close_session()

    def _watch_loop(self) -> None:
        assert self._watch is not None
        while not self._stop.is_set():
            try:
                events = self._watch.wait(WATCH_TIMEOUT)
            except PcscError as exc:
                if self._stop.is_set():
                    return
                self.event("info", f"watching pcscd failed: {exc}; retrying")
                time.sleep(0.5)
                continue
            if events:
                self._on_readers(events)

    def _on_readers(self, events: list[ReaderEvent]) -> None:
        for ev in events:
            line = ReaderLine(ev.reader, ev.present, ev.atr)
            with self._state:
                before = self._readers.get(line.name)
                self._readers[line.name] = line
            if before is not None and before.present == line.present:
                continue
            atr = f"(ATR {line.atr.hex(' ').upper()})"
            if before is not None:
                what = f"card inserted {atr}" if line.present else "card removed"
                self.event("card", f"pcscd: {what} in {line.name}")
            elif line.name == self.reader:
                self.event("card", f"pcscd: {line.name}: {f'card present {atr}' if line.present else 'no card'}")
            if line.name != self.reader:
                continue
            if line.present:
                if self._phase in (Phase.WAITING, Phase.LOCKED):
                    self._set_phase(Phase.PIN_REQUIRED, "enter the PIN to unlock")
            else:
                self._lock(f"pcscd reported the card removed from {line.name}")
        self._on_change()

    # -- locking ------------------------------------------------------------------------
    def _lock(self, cause: str) -> None:
        with self._state:
            self._generation += 1
            was = self._phase
            self._signing = False
        if was in (Phase.UNLOCKED, Phase.CHECKING, Phase.PIN_REQUIRED):
            self._set_phase(Phase.LOCKED, "insert the card and enter the PIN to unlock again", cause=cause)
        else:
            self._set_phase(Phase.WAITING, "insert the card")
        self._close_session()

    def _close_session(self) -> None:
        with self._io:  # a command in flight finishes (or fails) first
            with self._state:
                session, self._session = self._session, None
            if session is not None:
                session[0].close()

    # -- what the user does ---------------------------------------------------------------
    def unlock(self, pin: str) -> bool:
        """VERIFY the PIN, then prove the 9A key; True when the session is unlocked."""
        with self._state:
            if self._phase is not Phase.PIN_REQUIRED:
                return False
            generation = self._generation
        self._set_phase(Phase.CHECKING, "VERIFY PIN, then a signature with the 9A key")
        try:
            with self._io:
                conn = PcscConnection(self.reader)
                try:
                    piv = PivSession(RecordingConnection(conn, self._record_apdu, self.now))
                except BaseException:
                    conn.close()
                    raise
                with self._state:
                    self._session = (conn, piv, None)
                piv.verify_pin(pin.encode())
                cert = x509.load_der_x509_certificate(piv.get_certificate(KeySlot.AUTHENTICATION))
                with self._state:
                    self._session = (conn, piv, cert)
                ms = self._prove(piv, cert)
        except InvalidPinError as exc:
            self._close_session()
            self._fail(generation, f"wrong PIN: {exc.attempts_remaining} tries left")
            return False
        except PinBlockedError:
            self._close_session()
            self._fail(generation, "the PIN is blocked (unblock it with the PUK)")
            return False
        except (PcscError, ApduError, BadResponseError, InvalidSignature, ValueError) as exc:
            self._close_session()
            self._fail(generation, f"unlock failed: {_why(exc)}")
            return False
        with self._state:
            if generation != self._generation:  # pulled while we checked
                return False
        subject = cert.subject.rfc4514_string() or "(no subject)"
        self.event("sign", f"challenge signed by the 9A key and verified with its certificate ({ms:.1f} ms)")
        self._set_phase(Phase.UNLOCKED, f"9A key proven: {subject}")
        return True

    def _fail(self, generation: int, text: str) -> None:
        self.event("info", text)
        with self._state:
            stale = generation != self._generation
        if not stale:
            self._set_phase(Phase.PIN_REQUIRED, text)

    def _prove(self, piv: PivSession, cert: x509.Certificate) -> float:
        """Sign a fresh 32-byte challenge on the card; verify it with the certificate's key."""
        challenge = os.urandom(32)
        digest = hashlib.sha256(challenge).digest()
        key = cert.public_key()
        start = time.perf_counter()
        if isinstance(key, ec.EllipticCurvePublicKey):
            alg = algorithm_of(key)
            signature = piv.sign_raw(KeySlot.AUTHENTICATION, alg, digest)
            key.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            size = key.key_size // 8
            info = SHA256_DIGEST_INFO + digest
            block = b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info  # EMSA-PKCS1-v1_5
            signature = piv.sign_raw(KeySlot.AUTHENTICATION, algorithm_of(key), block)
            key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise ValueError(f"the 9A certificate holds a {type(key).__name__}, not an RSA or EC key")
        with self._state:
            self._signatures += 1
        return (time.perf_counter() - start) * 1e3

    def start_signing(self, pause: float = 0.05) -> bool:
        """Sign fresh challenges in a loop (a worker) until stopped, locked or failed."""
        with self._state:
            if self._phase is not Phase.UNLOCKED or self._signing:
                return False
            self._signing = True
            generation = self._generation
        self.event("info", "signature loop started")
        threading.Thread(target=self._sign_loop, args=(generation, pause), name="demo-sign", daemon=True).start()
        return True

    def stop_signing(self) -> None:
        with self._state:
            self._signing = False

    def sign_once(self) -> bool:
        """One proof in the unlocked session; False if it did not verify (or the session is gone)."""
        with self._state:
            generation = self._generation
        return self._sign_step(generation)

    def _sign_loop(self, generation: int, pause: float) -> None:
        failed = False
        while not self._stop.is_set():
            with self._state:
                if not self._signing or generation != self._generation:
                    break
            if not self._sign_step(generation):
                failed = True
                break
            time.sleep(pause)
        with self._state:
            self._signing = False
            why = "session locked" if generation != self._generation else "a signature failed" if failed else "stopped"
        self.event("info", f"signature loop ended: {why}")

    def _sign_step(self, generation: int) -> bool:
        with self._io:
            with self._state:
                session = self._session if generation == self._generation else None
                n = self._signatures + 1
            if session is None or session[2] is None:
                return False
            try:
                ms = self._prove(session[1], session[2])
            except (PcscError, ApduError, BadResponseError, InvalidSignature) as exc:
                self.event("sign", f"signature {n} interrupted: {_why(exc)}")
                return False
        self.event("sign", f"signature {n} verified ({ms:.1f} ms)")
        return True

    def wait_for(self, phase: Phase, timeout: float) -> bool:
        """Block until the app is in ``phase`` (for scripts); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.snapshot().phase is phase:
                return True
            time.sleep(0.005)
        return False

    def lock_cause(self) -> str:
        return self.snapshot().lock_cause


def _why(exc: Exception) -> str:
    if isinstance(exc, InvalidSignature):
        return "the signature does not verify with the certificate's key"
    return str(exc) or type(exc).__name__
