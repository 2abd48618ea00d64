"""Host-side GlobalPlatform client over PC/SC: secure channel, GET STATUS, keys.

This is the *host*: it speaks to a card in a reader through pyscard, with the
independent host-side SCP03/SCP02 code of :mod:`minidriver.scp`, exactly as
GlobalPlatformPro or yubikit would. It never imports the card side
(``emulator.gp``, ``emulator.applets``), so the end-to-end tests that use it
check one implementation against the other (design.md, "Host side and card
side are written apart").

Layers (style.md §1, yubikit)::

    Transport      bytes in, bytes out; PcscTransport adds 61xx/GET RESPONSE
    GPSession      SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, then
                   wrapped commands: GET STATUS (6310 paging), GET DATA E0,
                   PUT KEY, DELETE key, SET STATUS
    registry_lines the few lines ``vcard status`` prints about a card

Keys, cryptograms and decrypted data are never logged or put in a message.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from minidriver.scp import (
    SCP02_LEVELS,
    SCP03_LEVELS,
    AuthenticationError,
    SCP02Host,
    SCP03Host,
    SCPError,
    StaticKeys,
)

from .gpobjects import (
    FACTORY_KVN,
    GPClientError,
    KeyInfo,
    RegistryEntry,
    StatusScope,
    format_key_info,
    format_registry,
    parse_key_information,
    parse_status,
    scp02_i_from_card_data,
)

__all__ = [
    "DEFAULT_TEST_KEY",
    "FACTORY_KVN",
    "ISD_AID",
    "SW",
    "GPClientError",
    "GPSession",
    "KeyInfo",
    "PcscTransport",
    "RegistryEntry",
    "StatusScope",
    "Transport",
    "format_key_info",
    "format_registry",
    "logical_channel",
    "open_reader",
    "registry_lines",
    "release",
]

log = logging.getLogger(__name__)

ISD_AID = bytes.fromhex("A000000151000000")
#: the GlobalPlatform "VISA default" test key 40..4F (gp-scp.md §5); never a real key
DEFAULT_TEST_KEY = bytes(range(0x40, 0x50))
CHALLENGE_LEN = 8
SCP_ID_OFFSET = 11  #: KDD (10) || KVN || SCP id in the INITIALIZE UPDATE response
DEFAULT_SCP02_I = 0x15
SW_MORE_DATA = 0x61  #: SW1 of 61xx: xx more bytes wait for GET RESPONSE (ISO 7816-4 §5.3.3)
NEEDS_KEYS = "registry: needs issuer keys (vcard keys list --auth-key ...)"


class INS(IntEnum):
    """Instructions this client sends (ISO 7816-4 §11, GPCS §11)."""

    SELECT = 0xA4
    MANAGE_CHANNEL = 0x70
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCA
    GET_STATUS = 0xF2
    DELETE = 0xE4
    SET_STATUS = 0xF0


class SW(IntEnum):
    """Status words the client interprets (gp-scp.md §0)."""

    OK = 0x9000
    CARD_LOCKED = 0x6283  #: warning on SELECT of the ISD while the card is locked
    AUTHENTICATION_FAILED = 0x6300
    MORE_STATUS = 0x6310  #: GET STATUS: more entries follow
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    CONDITIONS_NOT_SATISFIED = 0x6985
    FILE_NOT_FOUND = 0x6A82
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    INS_NOT_SUPPORTED = 0x6D00


def sw_name(sw: int) -> str:
    try:
        return f"{sw:04X} ({SW(sw).name})"
    except ValueError:
        return f"{sw:04X}"


class Transport(Protocol):
    def transmit(self, apdu: bytes) -> bytes:
        """One command APDU out, ``data || SW1 SW2`` back."""
        ...


def _split(response: bytes) -> tuple[bytes, int]:
    if len(response) < 2:
        raise GPClientError(f"card answered {len(response)} bytes; a response ends with SW1 SW2")
    return response[:-2], int.from_bytes(response[-2:], "big")


class PcscTransport:
    """A pyscard connection; collects 61xx with GET RESPONSE (ISO 7816-4 §5.3.3).

    The whole response is reassembled before the secure channel sees it, as
    the card computes the R-MAC over the complete response.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def _raw(self, apdu: bytes) -> bytes:
        from smartcard.Exceptions import SmartcardException

        try:
            data, sw1, sw2 = self.connection.transmit(list(apdu))
        except SmartcardException as exc:
            raise GPClientError(f"transmit failed: {exc}") from None
        return bytes(data) + bytes((sw1, sw2))

    def transmit(self, apdu: bytes) -> bytes:
        out = b""
        response = self._raw(apdu)
        cla = apdu[0] & 0x03  # GET RESPONSE: same logical channel, no SM, interindustry class
        while response[-2] == SW_MORE_DATA:
            out += response[:-2]
            response = self._raw(bytes((cla, INS.GET_RESPONSE, 0x00, 0x00, response[-1])))
        return out + response


@contextmanager
def open_reader(reader: str) -> Iterator[PcscTransport]:
    """A shared T=1 connection to the card in ``reader``, left as it is on close.

    The card is not reset on disconnect so other applications sharing it keep
    their state; work on a logical channel (:meth:`GPSession.open_channel`) to
    leave the basic channel alone too.
    """
    from smartcard.Exceptions import SmartcardException
    from smartcard.scard import SCARD_LEAVE_CARD
    from smartcard.System import readers

    try:
        found = next((r for r in readers() if str(r) == reader), None)
    except SmartcardException as exc:
        raise GPClientError(f"cannot list readers: {exc}") from None
    if found is None:
        raise GPClientError(f"no reader {reader!r} in pcscd")
    conn = found.createConnection()
    try:
        conn.connect(disposition=SCARD_LEAVE_CARD)
    except SmartcardException as exc:
        release(conn)
        raise GPClientError(
            f"cannot connect to the card in {reader!r}: {exc} (is a card inserted? try: vcard status)"
        ) from None
    try:
        yield PcscTransport(conn)
    finally:
        release(conn)


def release(connection: Any) -> None:
    """Disconnect and release the connection's PC/SC context now.

    pyscard otherwise releases it in ``__del__``, which raises from the
    garbage collector once pcscd is gone.
    """
    from smartcard.Exceptions import SmartcardException

    with suppress(SmartcardException):
        connection.release()


# -- the session ------------------------------------------------------------------
@dataclass
class GPSession:
    """An open SCP03 or SCP02 secure channel to a security domain on one logical channel.

    Build it with :meth:`open`. :meth:`send` wraps a plain command and unwraps
    the answer; the GP commands below all go through it.
    """

    transport: Transport
    host: SCP03Host | SCP02Host
    scp: int
    kvn: int
    level: int
    channel: int = 0
    i: int = 0
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def open(
        cls,
        transport: Transport,
        keys: StaticKeys,
        *,
        kvn: int = 0,
        level: int | None = None,
        channel: int = 0,
        sd_aid: bytes = ISD_AID,
        select: bool = True,
        scp02_i: int | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> GPSession:
        """SELECT ``sd_aid`` (unless ``select`` is false), INITIALIZE UPDATE, EXTERNAL AUTHENTICATE.

        ``kvn`` 0 lets the card pick its first key set. SCP02 or SCP03 is taken
        from the card's INITIALIZE UPDATE response (its 12th byte), so one call
        opens either. ``level`` None picks the strongest level both sides
        offer: 33/13/03 for SCP03 by the card's i-parameter, 03 for SCP02.
        SCP02's i-parameter is not in that response; it comes from card data
        (GET DATA 66) when the card advertises SCP02, else 15.
        """
        if not 0x00 <= kvn <= 0xFF:
            raise GPClientError(f"key version must be 0x00-0xFF, got 0x{kvn:02X}")
        cla = channel & 0x03
        if select:
            _, sw = _split(transport.transmit(bytes((cla, INS.SELECT, 0x04, 0x00, len(sd_aid))) + sd_aid + b"\x00"))
            if sw not in (SW.OK, SW.CARD_LOCKED):
                raise GPClientError(
                    f"SELECT of the security domain {sd_aid.hex().upper()} failed: SW {sw_name(sw)}", sw=sw
                )
            if scp02_i is None:
                data, sw = _split(transport.transmit(bytes((0x80 | cla, INS.GET_DATA, 0x00, 0x66, 0x00))))
                scp02_i = scp02_i_from_card_data(data) if sw == SW.OK else None
        challenge = random(CHALLENGE_LEN)
        probe = SCP03Host(keys, host_challenge=challenge, sd_aid=sd_aid, channel=channel)
        data, sw = _split(transport.transmit(probe.initialize_update_apdu(kvn)))
        if sw == SW.REFERENCED_DATA_NOT_FOUND:
            raise GPClientError(f"the card has no key set {kvn:02X} (INITIALIZE UPDATE: SW {sw:04X})", sw=sw)
        if sw != SW.OK:
            raise GPClientError(f"INITIALIZE UPDATE refused: SW {sw_name(sw)}", sw=sw)
        if len(data) <= SCP_ID_OFFSET:
            raise GPClientError(f"INITIALIZE UPDATE response of {len(data)} bytes is too short")
        scp = data[SCP_ID_OFFSET]
        host: SCP03Host | SCP02Host
        try:
            if scp == 0x03:
                host = probe
            elif scp == 0x02:
                host = SCP02Host(keys, i=scp02_i or DEFAULT_SCP02_I, host_challenge=challenge, channel=channel)
                host.initialize_update_apdu(kvn)  # same challenge: puts the host in CHALLENGED
            else:
                raise GPClientError(f"the card answered with SCP{scp:02X}; only SCP02 and SCP03 are supported")
            info = host.process_initialize_update_response(data)
        except AuthenticationError:
            raise GPClientError(
                f"card cryptogram mismatch: wrong keys for key set {data[10]:02X} (SCP{scp:02X})"
            ) from None
        except (SCPError, ValueError) as exc:
            raise GPClientError(f"secure channel: {exc}") from None
        i = getattr(info, "i", scp02_i or DEFAULT_SCP02_I)
        if level is None:
            level = _auto_level(scp, i)
        allowed = SCP03_LEVELS if scp == 0x03 else SCP02_LEVELS
        if level not in allowed:
            choices = " ".join(f"{x:02X}" for x in sorted(allowed))
            raise GPClientError(f"SCP{scp:02X} security level must be one of {choices}, got {level:02X}")
        try:
            ea = host.external_authenticate_apdu(level)
        except (SCPError, ValueError) as exc:
            raise GPClientError(f"secure channel: {exc}") from None
        response = transport.transmit(ea)
        try:
            host.process_external_authenticate_response(response)
        except AuthenticationError as exc:
            raise GPClientError(f"EXTERNAL AUTHENTICATE refused: SW {sw_name(exc.sw or 0)}", sw=exc.sw) from None
        log.debug("secure channel open: SCP%02X, key set %02X, level %02X", scp, data[10], level)
        return cls(transport, host, scp=scp, kvn=data[10], level=level, channel=channel, i=i)

    # -- wrapped commands -----------------------------------------------------
    def send(self, apdu: bytes) -> tuple[bytes, int]:
        """Wrap one plain command (CLA without the SM bit), transmit, unwrap: ``(data, SW)``."""
        try:
            wire = self.host.wrap(apdu)
        except SCPError as exc:
            raise GPClientError(f"secure channel: {exc}") from None
        response = self.transport.transmit(wire)
        try:
            plain = self.host.unwrap(response)
        except SCPError as exc:
            raise GPClientError(f"secure channel: {exc}", sw=exc.sw) from None
        return _split(plain)

    def _cla(self) -> int:
        return 0x80 | self.channel

    def _check(self, what: str, sw: int) -> None:
        if sw != SW.OK:
            raise GPClientError(f"{what} refused: SW {sw_name(sw)}", sw=sw)

    def get_data(self, tag: int) -> bytes:
        """GET DATA (GPCS §11.3): the whole TLV the card returns for ``tag``."""
        data, sw = self.send(bytes((self._cla(), INS.GET_DATA, tag >> 8, tag & 0xFF, 0x00)))
        self._check(f"GET DATA {tag:04X}", sw)
        return data

    def key_information(self) -> list[KeyInfo]:
        """GET DATA E0, the key information template."""
        return parse_key_information(self.get_data(0x00E0))

    def get_status(self, scope: StatusScope, *, aid_prefix: bytes = b"") -> list[RegistryEntry]:
        """GET STATUS in TLV form (GPCS §11.4), following 6310 with P2 'next occurrence'.

        No matching entry (6A88) is an empty list.
        """
        query = bytes((0x4F, len(aid_prefix))) + aid_prefix
        p2 = 0x02
        out = b""
        for _ in range(256):
            data, sw = self.send(bytes((self._cla(), INS.GET_STATUS, scope, p2, len(query))) + query + b"\x00")
            if sw == SW.REFERENCED_DATA_NOT_FOUND and p2 == 0x02:
                return []
            if sw not in (SW.OK, SW.MORE_STATUS):
                raise GPClientError(f"GET STATUS {scope.name} refused: SW {sw_name(sw)}", sw=sw)
            out += data
            if sw == SW.OK:
                return parse_status(scope, out)
            p2 = 0x03
        raise GPClientError("GET STATUS: the card never stopped answering 6310")

    def registry(self) -> list[RegistryEntry]:
        """The ISD, the applications and the executable load files with their modules."""
        return [
            *self.get_status(StatusScope.ISD),
            *self.get_status(StatusScope.APPLICATIONS),
            *self.get_status(StatusScope.LOAD_FILES_AND_MODULES),
        ]

    def put_key(self, new_keys: StaticKeys, *, replace_kvn: int = 0) -> None:
        """PUT KEY (GPCS §11.8): add (``replace_kvn`` 0) or replace a whole ENC/MAC/DEK key set.

        SCP03 sends AES keys under the static DEK, SCP02 3DES keys under the
        session DEK; the card's KVN||KCV answer is checked.
        """
        if not 0x01 <= new_keys.kvn <= 0x7F:
            raise GPClientError(f"new key set KVN must be 0x01-0x7F, got 0x{new_keys.kvn:02X}")
        lengths = {len(new_keys.enc), len(new_keys.mac), len(new_keys.dek)}
        if self.scp == 0x02 and lengths != {16}:
            raise GPClientError("an SCP02 session puts 3DES key sets: every key must be 16 bytes")
        try:
            command = self.host.put_key(new_keys)
            apdu = command.apdu(replace_kvn=replace_kvn)
        except (SCPError, ValueError) as exc:
            raise GPClientError(f"PUT KEY: {exc}") from None
        apdu = bytes((apdu[0] | self.channel,)) + apdu[1:]
        data, sw = self.send(apdu)
        if sw == SW.REFERENCED_DATA_NOT_FOUND and replace_kvn:
            raise GPClientError(f"PUT KEY: the card has no key set {replace_kvn:02X} to replace", sw=sw)
        self._check("PUT KEY", sw)
        try:
            command.check_reply(data + sw.to_bytes(2, "big"))
        except SCPError as exc:
            raise GPClientError(f"PUT KEY: {exc}", sw=exc.sw) from None

    def delete_key(self, kvn: int) -> None:
        """DELETE a whole key set: ``D2 01 KVN`` (GPCS §11.2.2.3)."""
        if not 0x01 <= kvn <= 0xFF:
            raise GPClientError(f"key version must be 0x01-0xFF, got 0x{kvn:02X}")
        _, sw = self.send(bytes((self._cla(), INS.DELETE, 0x00, 0x00, 3, 0xD2, 0x01, kvn, 0x00)))
        if sw == SW.REFERENCED_DATA_NOT_FOUND:
            raise GPClientError(f"DELETE: the card has no key set {kvn:02X}", sw=sw)
        self._check("DELETE key", sw)

    def set_status(self, scope: int, state: int, aid: bytes = b"") -> None:
        """SET STATUS (GPCS §11.10): P1 80 card life cycle, P1 40 lock (80) / unlock (00) an application."""
        body = bytes((len(aid),)) + aid if aid else b""
        _, sw = self.send(bytes((self._cla(), INS.SET_STATUS, scope, state)) + body)
        self._check("SET STATUS", sw)

    def close(self) -> None:
        """Forget the session keys (the card ends its side on SELECT, reset or channel close)."""
        if not self._closed:
            self.host.close()
            self._closed = True


def _auto_level(scp: int, i: int) -> int:
    """The strongest level both sides offer (Amd D §5.1 i-parameter bits 20 R-MAC, 40 R-ENC)."""
    if scp == 0x02:
        return 0x03
    if i & 0x40:
        return 0x33
    if i & 0x20:
        return 0x13
    return 0x03


# -- logical channels ----------------------------------------------------------------
@contextmanager
def logical_channel(transport: Transport) -> Iterator[int]:
    """MANAGE CHANNEL open / close (ISO 7816-4 §11.1.2), so the basic channel is left alone.

    Yields 0 (the basic channel) when the card has no free channel. Closing
    the channel also ends any secure channel opened on it.
    """
    data, sw = _split(transport.transmit(bytes((0x00, INS.MANAGE_CHANNEL, 0x00, 0x00, 0x01))))
    if sw != SW.OK or len(data) != 1 or not 1 <= data[0] <= 3:
        yield 0
        return
    number = data[0]
    try:
        yield number
    finally:
        with suppress(GPClientError):
            transport.transmit(bytes((number, INS.MANAGE_CHANNEL, 0x80, number)))


def registry_lines(
    reader: str, *, keys: StaticKeys | None = None, kvn: int | None = None, prefix: str = "registry: "
) -> list[str]:
    """What ``vcard status`` prints about the card in ``reader``: GET STATUS over a secure channel.

    Without ``keys`` this only tries the factory test key set (KVN FF, key
    40..4F), and only if the card still lists it in GET DATA E0: once the
    issuer has put its own keys, it answers :data:`NEEDS_KEYS`. Works on a
    logical channel so other applications' basic channel is undisturbed.
    Never raises for a card that is absent, busy or refuses; says so in one line.
    """
    try:
        with open_reader(reader) as transport, logical_channel(transport) as channel:
            if keys is None:
                if not _factory_keys_listed(transport, channel):
                    return [NEEDS_KEYS]
                keys, kvn = StaticKeys.same(DEFAULT_TEST_KEY, kvn=FACTORY_KVN), FACTORY_KVN
            try:
                session = GPSession.open(transport, keys, kvn=kvn or 0, channel=channel)
            except GPClientError as exc:
                if exc.sw is None or exc.sw in (SW.AUTHENTICATION_FAILED, SW.REFERENCED_DATA_NOT_FOUND):
                    return [NEEDS_KEYS]
                raise
            try:
                return [prefix + line for line in format_registry(session.registry())]
            finally:
                session.close()
    except GPClientError as exc:
        return [f"{prefix}unavailable: {exc}"]


def _factory_keys_listed(transport: Transport, channel: int) -> bool:
    """SELECT the ISD on ``channel`` and look for key set FF in GET DATA E0 (no authentication needed)."""
    cla = channel & 0x03
    _, sw = _split(transport.transmit(bytes((cla, INS.SELECT, 0x04, 0x00, len(ISD_AID))) + ISD_AID + b"\x00"))
    if sw not in (SW.OK, SW.CARD_LOCKED):
        raise GPClientError(
            f"no security domain {ISD_AID.hex().upper()} on this card (SELECT: SW {sw_name(sw)})", sw=sw
        )
    data, sw = _split(transport.transmit(bytes((0x80 | cla, INS.GET_DATA, 0x00, 0xE0, 0x00))))
    if sw != SW.OK:
        return False
    return any(k.kvn == FACTORY_KVN for k in parse_key_information(data))
