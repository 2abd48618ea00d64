"""VirtualCard: power, ATR, logical channels, SELECT, routing and secure messaging.

One ``VirtualCard`` is one card in one reader slot. ``transmit`` takes the
raw bytes of a command APDU and returns the raw response; it never raises:
``CardError`` becomes its status word, anything else is logged with its
traceback and answered ``6F00`` (style.md §2.4).

Order of work for one command (ISO 7816-4 §5, GPCS §10.8):
parse -> channel -> secure messaging unwrap -> command chaining ->
card-level INS (SELECT, MANAGE CHANNEL, GET RESPONSE) or the selected
applet -> secure messaging wrap -> 61xx split for short Le.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import IntEnum

from .applets.base import Applet, CommandContext
from .channels import Channel
from .gp.levels import SecurityLevel
from .iso7816 import (
    EXTENDED_LE_MAX,
    SHORT_LE_MAX,
    SW,
    CardError,
    CommandAPDU,
    ResponseAPDU,
    sw_more_data,
)
from .logutil import TRAFFIC
from .registry import Registry
from .trace import ApduEvent, ApduRecord, Secret

__all__ = ["INS", "Power", "VirtualCard"]

log = logging.getLogger(__name__)


class INS(IntEnum):
    """Instructions the card runtime itself handles (ISO 7816-4 §11)."""

    SELECT = 0xA4
    MANAGE_CHANNEL = 0x70
    GET_RESPONSE = 0xC0
    INITIALIZE_UPDATE = 0x50
    EXTERNAL_AUTHENTICATE = 0x82


#: SCP11 PERFORM SECURITY OPERATION, MUTUAL and INTERNAL AUTHENTICATE (GPCS Amendment F §7)
SCP11_HANDSHAKE = frozenset({0x2A, 0x82, 0x88})


class Power(IntEnum):
    OFF = 0
    ON = 1


class SelectP1(IntEnum):
    BY_DF_NAME = 0x04


_FILE_SELECT_P1 = frozenset({0x00, 0x01, 0x02, 0x03, 0x08, 0x09})


class VirtualCard:
    """A card: ATR, registry of applets, logical channels. Thread-safe."""

    def __init__(self, atr: bytes, registry: Registry, *, logical_channels: int = 4) -> None:
        self.atr = bytes(atr)
        self.registry = registry
        self.max_channels = logical_channels
        self.power = Power.OFF
        self.channels: dict[int, Channel] = {}
        self._lock = threading.RLock()
        #: called with no arguments after every power-off/reset (e.g. to end tracing of a session)
        self.on_reset: list[Callable[[], None]] = []
        #: called with the record of every command answered (traces; see emulator/trace.py)
        self.observer: Callable[[ApduRecord], None] | None = None
        self._rec = ApduRecord(b"")
        self._card_ins: dict[int, Callable[[CommandAPDU, Channel], ResponseAPDU]] = {
            INS.SELECT: self._select,
            INS.MANAGE_CHANNEL: self._manage_channel,
            INS.GET_RESPONSE: self._get_response,
        }

    # -- power ----------------------------------------------------------------
    def power_on(self) -> None:
        with self._lock:
            self._clear_transient()
            self.power = Power.ON
            basic = Channel(0)
            default = self.registry.default
            if default is not None and default.selectable:
                basic.selected = default.applet
            self.channels = {0: basic}

    def power_off(self) -> None:
        with self._lock:
            self._clear_transient()
            self.power = Power.OFF

    def reset(self) -> None:
        """Warm reset: like power off then on (transient state cleared)."""
        self.power_on()

    def _clear_transient(self) -> None:
        for channel in self.channels.values():
            channel.clear()
        self.channels = {}
        for entry in self.registry:
            entry.applet.reset()
        for hook in self.on_reset:
            hook()

    # -- APDU entry point ----------------------------------------------------
    def transmit(self, raw: bytes) -> bytes:
        """One command APDU in, one response APDU out. Never raises."""
        with self._lock:
            start = time.perf_counter_ns()
            rec = self._rec = ApduRecord(raw)
            try:
                if self.power is Power.OFF:
                    self.power_on()  # vpcd may send an APDU without a power-on first
                resp = self._process(raw)
            except CardError as exc:
                resp = ResponseAPDU(sw=exc.sw)
                log.debug("%s", exc)
            except Exception:
                log.exception("internal error while processing an APDU; answering 6F00")
                resp = ResponseAPDU(sw=SW.NO_PRECISE_DIAGNOSIS)
            out = bytes(resp)
            rec.response = out
            rec.duration_ns = time.perf_counter_ns() - start
            if not rec.ins_name:  # failed before the runtime knew what it was: hide its data
                rec.secret |= Secret.COMMAND
            if log.isEnabledFor(TRAFFIC):
                _log_traffic(rec)
            if self.observer is not None:
                self.observer(rec)
            return out

    def selected_applet(self, raw: bytes) -> str:
        """Name of the applet selected on the logical channel ``raw`` is sent on ("" if none)."""
        cla = raw[0] if raw else 0
        number = (cla & 0x0F) + 4 if cla & 0x40 else cla & 0x03
        with self._lock:
            channel = self.channels.get(number)
            return channel.selected.name if channel is not None and channel.selected is not None else ""

    def _process(self, raw: bytes) -> ResponseAPDU:
        cmd = CommandAPDU.parse(raw)
        channel = self.channels.get(cmd.channel)
        if channel is None:
            if cmd.channel >= self.max_channels:
                raise CardError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED, f"channel {cmd.channel}")
            raise CardError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED, f"channel {cmd.channel} is not open")
        rec = self._rec
        rec.channel = channel.number
        if log.isEnabledFor(logging.DEBUG):
            log.debug("ch%d %s %02X %02X", channel.number, _ins_name(cmd.ins), cmd.p1, cmd.p2)
        if cmd.ins == INS.GET_RESPONSE and not cmd.proprietary:
            rec.ins_name, rec.applet = INS.GET_RESPONSE.name, "card"
            if channel.pending_secret:  # the rest of a secret response
                rec.secret = Secret.RESPONSE
            return self._get_response(cmd, channel)
        channel.pending = b""
        session = channel.session
        was_open = session is not None and session.is_open
        wrapped = cmd.secure_messaging
        cmd = self._unwrap(cmd, channel)
        if was_open and session is not None:
            rec.sm_level = int(session.level)
            if wrapped and session.level & SecurityLevel.C_DECRYPTION:
                rec.secret |= Secret.COMMAND  # decrypted under secure messaging
        self._describe(cmd, channel)
        whole = channel.collect(cmd)
        resp = ResponseAPDU() if whole is None else self._dispatch(whole, channel)
        if was_open and session is not None and channel.session is session and session.is_open:
            if session.level & SecurityLevel.R_ENCRYPTION and resp.data:
                rec.secret |= Secret.RESPONSE
            resp = session.wrap(resp)
        return self._limit(resp, cmd, channel)

    def _describe(self, cmd: CommandAPDU, channel: Channel) -> None:
        """INS name, applet and secret data of ``cmd``, from the table of whoever answers it."""
        rec = self._rec
        if not cmd.proprietary and cmd.ins in self._card_ins:
            rec.ins_name, rec.applet = INS(cmd.ins).name, "card"
            return
        applet = channel.selected
        if applet is None:
            rec.ins_name = _ins_name(cmd.ins)
            rec.secret |= Secret.COMMAND  # nobody declared it: hide its data
            return
        name, secret = applet.describe(cmd)
        rec.ins_name, rec.applet = name, applet.name
        rec.secret |= secret

    def _unwrap(self, cmd: CommandAPDU, channel: Channel) -> CommandAPDU:
        """Secure messaging (GPCS §10.8): unwrap, or refuse a plain command."""
        session = channel.session
        if session is None or not session.is_open:
            if cmd.secure_messaging and cmd.ins != INS.EXTERNAL_AUTHENTICATE:
                raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "secure messaging without a session")
            return cmd
        if cmd.secure_messaging:
            try:
                return session.unwrap(cmd)
            except CardError:
                channel.close_session()
                raise
        exempt = cmd.ins in (INS.SELECT, INS.MANAGE_CHANNEL, INS.INITIALIZE_UPDATE) and not (
            cmd.ins == INS.SELECT and cmd.proprietary
        )
        # a new SCP11 handshake (CLA 80) starts a new session, as INITIALIZE UPDATE does (Amd F §7)
        exempt = exempt or (cmd.proprietary and cmd.ins in SCP11_HANDSHAKE)
        if session.level & SecurityLevel.C_MAC and not exempt:
            channel.close_session()
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "plain command inside a C-MAC session")
        if not exempt:  # SCP02 level 10 R-MACs the answer to a plain command (GPCS §E.4.5)
            session.observe_plain(cmd)
        return cmd

    def _dispatch(self, cmd: CommandAPDU, channel: Channel) -> ResponseAPDU:
        handler = None if cmd.proprietary else self._card_ins.get(cmd.ins)
        if handler is not None:
            return handler(cmd, channel)
        applet = channel.selected
        if applet is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no application selected")
        ctx = CommandContext(channel=channel.number, session=channel.session)
        try:
            return applet.process(cmd, ctx)
        finally:
            if ctx.new_session is not None:
                channel.close_session()
                channel.session = ctx.new_session
            elif channel.session is not None and ctx.session is None:
                channel.close_session()  # the applet ended the session

    def _limit(self, resp: ResponseAPDU, cmd: CommandAPDU, channel: Channel) -> ResponseAPDU:
        """Split a long response with 61xx for GET RESPONSE (ISO 7816-4 §5.3.3)."""
        limit = cmd.ne or (EXTENDED_LE_MAX if cmd.extended else SHORT_LE_MAX)
        if len(resp.data) <= limit or resp.sw != SW.OK:
            return resp
        channel.pending = resp.data[limit:]
        channel.pending_secret = bool(self._rec.secret & Secret.RESPONSE)
        return ResponseAPDU(resp.data[:limit], sw_more_data(len(channel.pending)))

    # -- card-level commands ---------------------------------------------------
    def _get_response(self, cmd: CommandAPDU, channel: Channel) -> ResponseAPDU:
        if cmd.p1 or cmd.p2:
            raise CardError(SW.INCORRECT_P1P2, "GET RESPONSE takes P1=P2=00")
        if not channel.pending:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no response data waiting")
        n = cmd.ne or SHORT_LE_MAX
        data, channel.pending = channel.pending[:n], channel.pending[n:]
        return ResponseAPDU(data, sw_more_data(len(channel.pending)) if channel.pending else SW.OK)

    def _select(self, cmd: CommandAPDU, channel: Channel) -> ResponseAPDU:
        if cmd.p1 != SelectP1.BY_DF_NAME:
            if cmd.p1 in _FILE_SELECT_P1:
                raise CardError(SW.FILE_NOT_FOUND, "this card has no file system")
            raise CardError(SW.INCORRECT_P1P2, f"SELECT P1 {cmd.p1:02X}")
        occurrence, answer = cmd.p2 & 0x03, cmd.p2 & 0x0C
        if occurrence not in (0x00, 0x02) or cmd.p2 & 0xF0:
            raise CardError(SW.INCORRECT_P1P2, f"SELECT P2 {cmd.p2:02X}")
        if not cmd.data:
            default = self.registry.default
            target = default.applet if default is not None and default.selectable else None
        else:
            if len(cmd.data) > 16:
                raise CardError(SW.WRONG_LENGTH, "AID longer than 16 bytes")
            after = channel.selected if occurrence == 0x02 else None
            target = self.registry.find(cmd.data, after=after)
        if target is None:
            # ISO 7816-4: a failed SELECT leaves the current selection in place,
            # but GP ends the secure channel on any SELECT (GPCS §10.2.3).
            channel.close_session()
            raise CardError(SW.FILE_NOT_FOUND, "no application with that AID")
        if target is channel.selected:
            # SP 800-73-4 pt 2 §3.1.1: re-selecting the current application keeps
            # its security status; GP still ends the secure channel (GPCS §10.2.3).
            channel.close_session()
            channel.abort_chain()
        else:
            channel.clear()
            channel.selected = target
        ctx = CommandContext(channel=channel.number)
        resp = target.select(cmd, ctx)
        self._rec.applet = target.name
        log.info("channel %d: selected %s %s", channel.number, target.name, target.aid.hex().upper())
        return ResponseAPDU(b"", resp.sw) if answer == 0x0C else resp

    def _manage_channel(self, cmd: CommandAPDU, channel: Channel) -> ResponseAPDU:
        """MANAGE CHANNEL (ISO 7816-4 §11.1.2): open (P1=00) or close (P1=80)."""
        if cmd.p1 == 0x00:
            if cmd.data:
                raise CardError(SW.WRONG_LENGTH, "MANAGE CHANNEL open takes no data")
            if cmd.p2 == 0x00:
                if cmd.ne not in (0, 1, SHORT_LE_MAX):  # hosts send Le 01, 00 or none
                    raise CardError(SW.WRONG_LENGTH, "MANAGE CHANNEL open returns one byte")
                free = [n for n in range(1, self.max_channels) if n not in self.channels]
                if not free:
                    raise CardError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED, "no free logical channel")
                number = free[0]
            else:
                number = cmd.p2
                if not 1 <= number < self.max_channels:
                    raise CardError(SW.INCORRECT_P1P2, f"channel {number} is beyond the card's channels")
                if number in self.channels:
                    raise CardError(SW.CONDITIONS_NOT_SATISFIED, f"channel {number} is already open")
            new = Channel(number)
            # §11.1.2: opened from the basic channel -> the default application;
            # from another channel -> the application selected there.
            if channel.number == 0:
                default = self.registry.default
                new.selected = default.applet if default is not None and default.selectable else None
            else:
                new.selected = channel.selected
            self.channels[number] = new
            log.info("opened logical channel %d", number)
            return ResponseAPDU(bytes((number,)) if cmd.p2 == 0 else b"")
        if cmd.p1 == 0x80:
            number = cmd.p2 or channel.number
            if number == 0:
                raise CardError(SW.INCORRECT_P1P2, "the basic channel cannot be closed")
            closing = self.channels.pop(number, None)
            if closing is None:
                raise CardError(SW.INCORRECT_P1P2, f"channel {number} is not open")
            closing.clear()
            log.info("closed logical channel %d", number)
            return ResponseAPDU()
        raise CardError(SW.INCORRECT_P1P2, f"MANAGE CHANNEL P1 {cmd.p1:02X}")


def _log_traffic(rec: ApduRecord) -> None:
    """The TRAFFIC lines of ``--trace``: the trace event's fields, secrets redacted as declared."""
    ev = ApduEvent.from_record(-1, rec).redacted()
    head = f"{ev.cla:02X} {ev.ins:02X} {ev.p1:02X} {ev.p2:02X}"
    if ev.lc:
        data = f"[{ev.lc} bytes redacted]" if ev.command_data is None else ev.command_data
        log.log(TRAFFIC, "=> ch%d %s %s %s", ev.channel, ev.ins_name, head, data)
    else:
        log.log(TRAFFIC, "=> ch%d %s %s", ev.channel, ev.ins_name, head)
    if ev.resp_len:
        data = f"[{ev.resp_len} bytes redacted]" if ev.response_data is None else ev.response_data
        log.log(TRAFFIC, "<= %s %04X %s", data, ev.sw, ev.sw_name)
    else:
        log.log(TRAFFIC, "<= %04X %s", ev.sw, ev.sw_name)


def _ins_name(ins: int) -> str:
    try:
        return INS(ins).name
    except ValueError:
        return f"INS_{ins:02X}"


def applet_by_name(card: VirtualCard, name: str) -> Applet | None:
    for entry in card.registry:
        if entry.applet.name == name:
            return entry.applet
    return None
