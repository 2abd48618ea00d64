"""APDU framing between sessions and a :class:`~minidriver.pcsc.Connection`: a stack of processors.

Each processor does one job and hands the command on (yubikit's shape,
style.md §1)::

    CommandChaining   data longer than one APDU: CLA|10 links (ISO 7816-4 §5.1.1.1)
    Scp               wrap each link, unwrap each answer (GPCS §10.8, Amd D §6.2)
    ResponseChaining  61xx -> GET RESPONSE, 6Cxx -> resend with Le (ISO 7816-4 §5.3.3-4)
    Transmit          encode short or extended (when the card allows it), move bytes

The whole response is gathered below the secure channel, because the card
computes its R-MAC over the complete response. :class:`SmartCardProtocol`
builds the stack (again when a secure channel opens) and turns a status word
other than 9000 into :class:`~minidriver.iso7816.ApduError`.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .iso7816 import (
    CLA_CHAINING,
    MAX_SHORT_LC,
    MAX_SHORT_NE,
    SW,
    TRAFFIC,
    ApduError,
    BadResponseError,
    CommandAPDU,
    ResponseAPDU,
    describe_command,
    describe_response,
    exact_length,
    more_data,
)
from .pcsc import Connection
from .scp02 import SCP02_LEVELS
from .scp03 import SCP03_LEVELS, SCP03Host
from .scp11 import SCP11_LEVEL, SCP11Host
from .scpbase import SCPError, SCPHost

__all__ = [
    "INS_GET_RESPONSE",
    "CommandChainingProcessor",
    "Processor",
    "ResponseChainingProcessor",
    "ScpProcessor",
    "SmartCardProtocol",
    "TransmitProcessor",
    "atr_supports_extended",
    "strongest_level",
]

log = logging.getLogger(__name__)

INS_GET_RESPONSE = 0xC0
MAX_GET_RESPONSE = 4096  #: more GET RESPONSE rounds than this: the card is looping
#: room a secure channel needs in each link: C-MAC (8) and padding to a 16-byte block (<= 16)
SCP_OVERHEAD = 8 + 16
SCPHostAny = SCPHost[Any, Any]


class Processor(Protocol):
    def send(self, cmd: CommandAPDU) -> ResponseAPDU: ...


def get_response_cla(cla: int) -> int:
    """GET RESPONSE on the same logical channel, interindustry class, no SM (ISO 7816-4 §5.4.1)."""
    if cla & 0x40:  # further interindustry: channels 4-19
        return 0x40 | (cla & 0x0F)
    return cla & 0x03


class TransmitProcessor:
    """Encode and move one APDU; ``extended`` allows the extended form when a command needs it."""

    def __init__(self, connection: Connection, *, extended: bool) -> None:
        self.connection = connection
        self.extended = extended

    def send(self, cmd: CommandAPDU) -> ResponseAPDU:
        if not self.extended and cmd.ne > MAX_SHORT_NE:
            cmd = CommandAPDU(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, MAX_SHORT_NE)
        raw = cmd.encode(extended=None if self.extended else False)
        return ResponseAPDU.from_bytes(self.connection.transmit(raw))


class ResponseChainingProcessor:
    """Collect 61xx with GET RESPONSE and answer 6Cxx by resending with the right Le."""

    def __init__(self, delegate: Processor) -> None:
        self.delegate = delegate

    def send(self, cmd: CommandAPDU) -> ResponseAPDU:
        resp = self.delegate.send(cmd)
        if (ne := exact_length(resp.sw)) is not None:
            resp = self.delegate.send(CommandAPDU(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, ne))
        data = b""
        for _ in range(MAX_GET_RESPONSE):
            if (pending := more_data(resp.sw)) is None:
                return ResponseAPDU(data + resp.data, resp.sw)
            data += resp.data
            resp = self.delegate.send(CommandAPDU(get_response_cla(cmd.cla), INS_GET_RESPONSE, 0, 0, ne=pending))
        raise BadResponseError(f"the card kept answering 61xx after {MAX_GET_RESPONSE} GET RESPONSEs")


class ScpProcessor:
    """Wrap every command and unwrap every answer with an open secure channel (short APDUs only)."""

    def __init__(self, delegate: Processor, host: SCPHostAny) -> None:
        self.delegate = delegate
        self.host = host

    def send(self, cmd: CommandAPDU) -> ResponseAPDU:
        if cmd.ne > MAX_SHORT_NE:  # secure messaging here is short-only; 61xx brings the rest
            cmd = CommandAPDU(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, MAX_SHORT_NE)
        wire = CommandAPDU.parse(self.host.wrap(cmd.encode(extended=False)))
        resp = self.delegate.send(wire)
        return ResponseAPDU.from_bytes(self.host.unwrap(bytes(resp)))


class CommandChainingProcessor:
    """Split command data into links of ``max_chunk`` bytes, CLA bit 10 on all but the last.

    A link answered with anything but 9000 ends the chain and that answer is returned.
    """

    def __init__(self, delegate: Processor, *, max_chunk: int = MAX_SHORT_LC) -> None:
        self.delegate = delegate
        self.max_chunk = max_chunk

    def send(self, cmd: CommandAPDU) -> ResponseAPDU:
        data = cmd.data
        if len(data) <= self.max_chunk:
            return self.delegate.send(cmd)
        for start in range(0, len(data) - self.max_chunk, self.max_chunk):
            link = CommandAPDU(cmd.cla | CLA_CHAINING, cmd.ins, cmd.p1, cmd.p2, data[start : start + self.max_chunk])
            resp = self.delegate.send(link)
            if resp.sw != SW.OK:
                return resp
        last = data[start + self.max_chunk :]
        return self.delegate.send(CommandAPDU(cmd.cla, cmd.ins, cmd.p1, cmd.p2, last, cmd.ne))


def atr_supports_extended(atr: bytes) -> bool:
    """Card capabilities (compact-TLV 7x, third byte b7) in the ATR's historical bytes (ISO 7816-4 §8.1.1.2.7)."""
    if len(atr) < 2:
        return False
    count = atr[1] & 0x0F
    pos, y = 2, atr[1] >> 4
    while y:
        pos += bin(y & 0x07).count("1")  # TA, TB, TC
        if y & 0x08:  # TD: next Y and protocol
            if pos >= len(atr):
                return False
            y = atr[pos] >> 4
            pos += 1
        else:
            y = 0
    hist = atr[pos : pos + count]
    if not hist or hist[0] != 0x80:  # only category 80 is compact-TLV throughout
        return False
    i = 1
    while i < len(hist):
        tag, length = hist[i] >> 4, hist[i] & 0x0F
        value = hist[i + 1 : i + 1 + length]
        if tag == 0x7 and len(value) >= 3:
            return bool(value[2] & 0x40)
        i += 1 + length
    return False


def strongest_level(scp: int, i: int) -> int:
    """The strongest level both sides offer: SCP03 i bits 20 (R-MAC) / 40 (R-ENC), else C-MAC+C-DEC."""
    if scp == 0x03 and i & 0x40:
        return 0x33
    if scp == 0x03 and i & 0x20:
        return 0x13
    return 0x03


class SmartCardProtocol:
    """Send :class:`CommandAPDU` values to a connection through the processor stack.

    ``extended`` None reads the card's capabilities from its ATR; True/False
    forces the choice. A secure channel opened with :meth:`open_scp` protects
    every later command until :meth:`close_scp`, :meth:`close` or a failure.
    """

    def __init__(self, connection: Connection, *, extended: bool | None = None) -> None:
        self.connection = connection
        self.extended = atr_supports_extended(connection.atr) if extended is None else extended
        self._scp: SCPHostAny | None = None
        self._processor: Processor = self._build()

    def _build(self) -> Processor:
        processor: Processor = ResponseChainingProcessor(TransmitProcessor(self.connection, extended=self.extended))
        if self._scp is not None:
            processor = ScpProcessor(processor, self._scp)
            return CommandChainingProcessor(processor, max_chunk=MAX_SHORT_LC - SCP_OVERHEAD)
        if self.extended:
            return processor
        return CommandChainingProcessor(processor)

    @property
    def scp(self) -> SCPHostAny | None:
        """The open secure channel, if any."""
        return self._scp

    def transceive(self, cmd: CommandAPDU) -> ResponseAPDU:
        """Send ``cmd`` and return the answer whatever its status word."""
        secure = self._scp is not None
        log.log(TRAFFIC, ">> %s", describe_command(cmd, secure=secure))
        try:
            resp = self._processor.send(cmd)
        except SCPError:
            self.close_scp()
            raise
        log.log(TRAFFIC, "<< %s", describe_response(cmd.ins, resp, secure=secure))
        return resp

    def send(self, cmd: CommandAPDU, *, detail: str = "") -> bytes:
        """Send ``cmd``; its data on 9000, else :class:`ApduError` with the SW."""
        resp = self.transceive(cmd)
        if resp.sw != SW.OK:
            raise ApduError(resp.sw, resp.data, detail)
        return resp.data

    def open_scp(self, host: SCPHostAny, *, kvn: int = 0, level: int | None = None) -> int:
        """INITIALIZE UPDATE and EXTERNAL AUTHENTICATE to the selected application; returns the level.

        An :class:`~minidriver.scp11.SCP11Host` opens with its own handshake
        (:meth:`open_scp11`; ``kvn`` and ``level`` are its parameters' and 33).

        ``level`` None picks :func:`strongest_level`. A refused or failed
        handshake raises (``ApduError`` for a refused INITIALIZE UPDATE,
        ``SCPError`` for a wrong cryptogram) and leaves the stack plain.
        """
        self.close_scp()
        if isinstance(host, SCP11Host):
            return self.open_scp11(host)
        iu = CommandAPDU.parse(host.initialize_update_apdu(kvn))
        data = self.send(iu, detail="INITIALIZE UPDATE")
        info = host.process_initialize_update_response(data)
        if level is None:
            scp = 0x03 if isinstance(host, SCP03Host) else 0x02
            level = strongest_level(scp, getattr(info, "i", 0))
        allowed = SCP03_LEVELS if isinstance(host, SCP03Host) else SCP02_LEVELS
        if level not in allowed:
            host.close()
            raise ValueError(f"security level must be one of {' '.join(f'{x:02X}' for x in sorted(allowed))}")
        ea = CommandAPDU.parse(host.external_authenticate_apdu(level))
        resp = self.transceive(ea)
        host.process_external_authenticate_response(bytes(resp))
        self.use_scp(host)
        log.debug("secure channel open at level %02X", level)
        return level

    def open_scp11(self, host: SCP11Host) -> int:
        """SCP11 (Amd F): the OCE certificates (11a/c), then INTERNAL / MUTUAL AUTHENTICATE; returns 33.

        A refused command raises ``ApduError``; a wrong receipt ``AuthenticationError``
        (the card does not hold the key ``host.params.pk_sd`` names). Either leaves the stack plain.
        """
        self.close_scp()
        for cmd in host.certificate_commands():
            self.send(cmd, detail="PERFORM SECURITY OPERATION (OCE certificate)")
        data = self.send(CommandAPDU.parse(host.authenticate_apdu()), detail=f"{host.params.variant.name} authenticate")
        host.process_authenticate_response(data)
        self.use_scp(host)
        log.debug("%s secure channel open at level %02X", host.params.variant.name, SCP11_LEVEL)
        return SCP11_LEVEL

    def use_scp(self, host: SCPHostAny) -> None:
        """Protect later commands with ``host``, a channel the caller opened (state OPEN)."""
        if self._scp is not None and self._scp is not host:
            self._scp.close()
        self._scp = host
        self._processor = self._build()

    def close_scp(self) -> None:
        """Forget the secure channel's keys; later commands go plain."""
        if self._scp is not None:
            self._scp.close()
            self._scp = None
            self._processor = self._build()

    def close(self) -> None:
        self.close_scp()
