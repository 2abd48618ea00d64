"""What each vpcd message *is*: control, ATR request, presence poll or APDU (sans-I/O).

vpcd frames a control message and a command APDU the same way, so a 1-byte
``SCardTransmit`` of 00, 01, 02 or 04 arrives exactly like power off, power
on, reset or GET ATR. Answering an APDU as if it were control wedges the
reader (vpcd waits forever for the reply it is owed, holding pcscd's reader
lock); answering control as if it were an APDU puts a reply in vpcd's stream
that it did not ask for, and every later reply is read one request late.

The rule, from vsmartcard's ``ifd-vpcd.c``/``vpcd.c`` 0.8 and pcsc-lite
1.9.9's ``eventhandler.c``/``winscard.c``, measured on this stack:

* vpcd sends nothing while it waits for a reply (one lock per slot covers
  send + receive). So a 1-byte APDU is never followed by another message
  until it is answered, and any message that follows a 1-byte payload proves
  that payload was control.
* Power on (01) and reset (02) come from ``IFDHPowerICC``, which always sends
  GET ATR (04) right after, in the same call (measured gap: 0.1 ms). So 01/02
  is control when a message follows within ``FOLLOW_SECONDS``; otherwise it
  was an APDU and gets 6700.
* Power off (00) is followed by nothing in particular: the next message is
  pcscd's presence poll (a GET ATR every 400 ms from the reader's event
  thread, which also sends a grace-period power off just before its poll), or
  a power on. So 00 is control when a message follows before the next poll is
  due plus ``POLL_MARGIN_SECONDS``; otherwise it was an APDU and gets 6700.
  A poll already overdue is waiting for pcscd's reader lock, which a 1-byte
  APDU holds until it is answered and a power off releases at once.
  (Measured: the poll period is 400.4 ms and was never more than 15 ms late
  with the CPUs three times oversubscribed.)
* A GET ATR that follows power on/reset asks for the ATR. Any other GET ATR
  is a presence poll, for which vpcd 0.8 only checks that the answer is not
  empty, or a 1-byte APDU 04: both get 6700, so an APDU is never answered
  with the ATR. (vpcd 0.8 has no other use of GET ATR; a later vpcd that
  serves ``SCARD_ATTR_ATR_STRING`` from it would read 6700 there.)
* Every other 1-byte payload is an APDU (6700 from the card), never an error.
* A 1-byte payload guessed to be an APDU and answered, then followed by a
  power on that proves to be control (its GET ATR follows), means the guess
  was wrong and vpcd's stream is one reply ahead: the link must be dropped.
* A 0-byte ``SCardTransmit`` reaches the card as nothing at all (vpcd skips
  the send and waits for a reply), so the only sign is silence: no presence
  poll for ``WATCHDOG_SECONDS``. Then the server drops the link, which frees
  the reader (see ``server.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .vpcd import Ctrl, Frame

__all__ = [
    "FOLLOW_SECONDS",
    "POLL_MARGIN_SECONDS",
    "POLL_PERIOD_SECONDS",
    "PRESENT",
    "WATCHDOG_SECONDS",
    "Event",
    "Kind",
    "LinkDesync",
    "VpcdLink",
]

#: pcscd's presence poll period (PCSCLITE_STATUS_POLL_RATE 400 ms; 400.4 ms measured)
POLL_PERIOD_SECONDS = 0.41
#: how long after 01/02 its GET ATR may take (measured: 0.1 ms)
FOLLOW_SECONDS = 0.25
#: how late pcscd's next presence poll may be after a power off (measured: < 15 ms)
POLL_MARGIN_SECONDS = 0.3
#: no message at all for this long: vpcd waits for a reply it was never owed
WATCHDOG_SECONDS = 3.0
#: answer to a presence poll and to a 1-byte APDU 04 (ISO 7816-4 wrong length)
PRESENT = b"\x67\x00"


class Kind(Enum):
    CONTROL = "control"  #: power off/on/reset: no reply
    ATR = "atr"  #: GET ATR after power on/reset: reply the ATR
    POLL = "poll"  #: lone GET ATR (presence poll or 1-byte APDU 04): reply PRESENT
    APDU = "apdu"  #: reply the card's response


@dataclass(frozen=True, slots=True)
class Event:
    kind: Kind
    ctrl: Ctrl | None = None
    apdu: bytes = b""

    @property
    def needs_reply(self) -> bool:
        return self.kind is not Kind.CONTROL


class LinkDesync(Exception):
    """A guessed APDU was control after all: vpcd holds a reply it did not ask for."""


class VpcdLink:
    """Turns the frames of one vpcd connection into events, holding back ambiguous bytes."""

    def __init__(self) -> None:
        self._pending: Ctrl | None = None
        self._deadline: float | None = None
        self._guessed = False  #: the last reply answered a held-back byte as an APDU
        #: when the last presence poll arrived (pcscd's poll phase)
        self.last_poll: float | None = None

    @property
    def deadline(self) -> float | None:
        """When the held-back 1-byte payload (if any) becomes an APDU."""
        return self._deadline

    @property
    def pending(self) -> Ctrl | None:
        return self._pending

    def feed(self, frame: Frame, now: float) -> list[Event]:
        """One frame from vpcd; the events to carry out, in order.

        Raises :class:`LinkDesync` when the stream is provably out of step.
        """
        guessed, self._guessed = self._guessed, False
        events: list[Event] = []
        held = self._take_pending()
        ctrl = frame.ctrl
        if ctrl is Ctrl.GET_ATR:
            if held in (Ctrl.POWER_ON, Ctrl.RESET):
                if guessed and held is Ctrl.POWER_ON:
                    raise LinkDesync("a power on came right after a 1-byte APDU was answered")
                return [Event(Kind.CONTROL, held), Event(Kind.ATR)]
            if held is not None:
                events.append(Event(Kind.CONTROL, held))
            self.last_poll = now
            events.append(Event(Kind.POLL))
            return events
        if held is not None:
            events.append(Event(Kind.CONTROL, held))
        if ctrl is None:
            events.append(Event(Kind.APDU, apdu=frame.apdu))
            return events
        self._pending = ctrl
        self._deadline = now + self._wait_for(ctrl, now)
        if guessed and held is None:
            self._guessed = True  # still unproven: the next frame tells
        return events

    def expire(self, now: float) -> list[Event]:
        """Time passed: a held-back byte whose deadline is over was a 1-byte APDU."""
        if self._deadline is None or now < self._deadline:
            return []
        held = self._take_pending()
        assert held is not None
        self._guessed = True
        return [Event(Kind.APDU, apdu=bytes((held,)))]

    def _take_pending(self) -> Ctrl | None:
        held, self._pending, self._deadline = self._pending, None, None
        return held

    def _wait_for(self, ctrl: Ctrl, now: float) -> float:
        if ctrl is not Ctrl.POWER_OFF:
            return FOLLOW_SECONDS
        last = self.last_poll
        if last is None:
            return POLL_PERIOD_SECONDS + POLL_MARGIN_SECONDS  # phase unknown: a whole period
        # An overdue poll waits for pcscd's reader lock: it comes as soon as a power
        # off's sender lets go of it, and never while a 1-byte APDU holds it.
        return max(last + POLL_PERIOD_SECONDS - now, 0.0) + POLL_MARGIN_SECONDS
