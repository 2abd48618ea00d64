"""Shared part of the host-side secure channels: errors, states, levels, keys, APDUs,
and :class:`SCPHost`, the state machine both protocols run.

The host classes (:class:`minidriver.scp03.SCP03Host`,
:class:`minidriver.scp02.SCP02Host`) are sans-I/O: they build command bytes and
check response bytes, and the caller moves them (pyscard, a relay server, a
test). Each host is a small state machine::

    IDLE --initialize_update_apdu--> CHALLENGED
    CHALLENGED --process_initialize_update_response--> CARD_VERIFIED
    CARD_VERIFIED --external_authenticate_apdu--> OPEN
    OPEN --wrap/unwrap--> OPEN
    any --failure or close()--> CLOSED      (session keys dropped)
    any --initialize_update_apdu--> CHALLENGED  (a new INITIALIZE UPDATE ends a session)

Any other call raises :class:`SCPStateError` naming the call and the state.
:class:`SCPHost` owns the states, the host challenge, the APDU headers, Lc
limits and the SM bit; a protocol module adds only its crypto, through the
``_``-prefixed hooks.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum, IntFlag, auto
from typing import ClassVar, Generic, TypeVar

__all__ = [
    "INS",
    "SW",
    "AuthenticationError",
    "ChannelState",
    "CommandAPDU",
    "HostSession",
    "IntegrityError",
    "SCPError",
    "SCPHost",
    "SCPStateError",
    "SecurityLevel",
    "StaticKeys",
    "split_response",
]

CHALLENGE_LEN = 8  #: host and card challenge, S8 mode (bytes)
CRYPTOGRAM_LEN = 8  #: card/host cryptogram, S8 mode (bytes)
MAC_LEN = 8  #: C-MAC / R-MAC appended to a message (bytes)
KDD_LEN = 10  #: key diversification data at the start of the IU response (bytes)
MAX_SHORT_LC = 255  #: largest Lc of a short APDU
SW_LEN = 2

CLA_GP = 0x80  #: GlobalPlatform proprietary class
CLA_SM = 0x04  #: secure messaging indication bit (ISO 7816-4 §5.4.1)
CLA_CHANNEL_MASK = 0x03  #: logical channel 0-3 in first-interindustry/GP classes
CLA_FURTHER_INTERINDUSTRY = 0x40  #: CLA 40-7F: channels 4-19, SM bit elsewhere


class SCPError(Exception):
    """Base of every secure-channel failure; ``sw`` is the card's status word if one caused it."""

    def __init__(self, message: str, *, sw: int | None = None) -> None:
        super().__init__(message)
        self.sw = sw


class SCPStateError(SCPError):
    """A method was called in a state that does not allow it (e.g. wrap before EXTERNAL AUTHENTICATE)."""


class AuthenticationError(SCPError):
    """The card failed to prove it holds the keys: card cryptogram or pseudo-random challenge wrong,
    or EXTERNAL AUTHENTICATE refused."""


class IntegrityError(SCPError):
    """A protected response failed its R-MAC check or R-ENC padding; the session is closed."""


class ChannelState(Enum):
    """Where a host-side secure channel is in its life cycle (GPCS §10, Amd D §5)."""

    IDLE = auto()  #: nothing sent yet
    CHALLENGED = auto()  #: INITIALIZE UPDATE built; awaiting the card's response
    CARD_VERIFIED = auto()  #: card cryptogram checked; EXTERNAL AUTHENTICATE next
    OPEN = auto()  #: session keys live; commands wrapped per the security level
    CLOSED = auto()  #: failure or close(); session keys dropped


class SecurityLevel(IntFlag):
    """P1 of EXTERNAL AUTHENTICATE (GPCS §11.10.2, Amd D §7.1.2)."""

    NONE = 0x00  #: authentication only; commands go unprotected
    C_MAC = 0x01  #: command MAC
    C_DECRYPTION = 0x02  #: command data encrypted (needs C_MAC)
    R_MAC = 0x10  #: response MAC
    R_ENCRYPTION = 0x20  #: response data encrypted (needs R_MAC)


class INS(IntEnum):
    """Instructions this module builds (GPCS §11)."""

    INITIALIZE_UPDATE = 0x50
    EXTERNAL_AUTHENTICATE = 0x82
    PUT_KEY = 0xD8


class SW(IntEnum):
    """Status words the host side interprets."""

    OK = 0x9000


def is_success_or_warning(sw: int) -> bool:
    """9000, 62xx and 63xx: the status words a card protects with R-MAC (Amd D §6.2.5)."""
    return sw == SW.OK or (sw >> 8) in (0x62, 0x63)


def split_response(response: bytes) -> tuple[bytes, int]:
    """Split ``data || SW1 SW2`` into data and the status word."""
    if len(response) < SW_LEN:
        raise SCPError(f"response must end with SW1 SW2, got {len(response)} bytes")
    return response[:-SW_LEN], int.from_bytes(response[-SW_LEN:], "big")


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """A static key set of a security domain: ENC, MAC and DEK under one key version number.

    AES-128/192/256 for SCP03, two-key 3DES (16 bytes) for SCP02. The key bytes
    are kept out of ``repr`` so a stray ``log.debug("%r", keys)`` stays safe.
    """

    kvn: int
    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kvn, int) or not 0x00 <= self.kvn <= 0xFF:
            raise ValueError(f"kvn must be an int 0x00-0xFF, got {self.kvn!r}")
        for name in ("enc", "mac", "dek"):
            value = getattr(self, name)
            if not isinstance(value, bytes):
                raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
            if len(value) not in (16, 24, 32):
                raise ValueError(f"{name} must be 16, 24 or 32 bytes, got {len(value)}")

    @classmethod
    def same(cls, key: bytes, *, kvn: int) -> StaticKeys:
        """ENC = MAC = DEK = ``key``, as test and factory key sets are."""
        return cls(kvn=kvn, enc=key, mac=key, dek=key)


@dataclass(frozen=True, slots=True)
class CommandAPDU:
    """A short command APDU split into the fields secure messaging needs (ISO 7816-4 §5.1)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = field(default=b"", repr=False)  # may be a secret (PUT KEY, VERIFY)
    has_le: bool = False
    le: int = 0  #: as encoded: 00 means 256

    @classmethod
    def parse(cls, raw: bytes) -> CommandAPDU:
        """Cases 1-4, short form only; extended length raises ``SCPError``."""
        if len(raw) < 4:
            raise SCPError(f"command APDU must have at least 4 bytes, got {len(raw)}")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, has_le=True, le=body[0])
        lc = body[0]
        if lc == 0:
            raise SCPError("extended-length APDUs are not supported under secure messaging")
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, body[1:])
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, body[1:-1], has_le=True, le=body[-1])
        raise SCPError(f"command APDU length {len(raw)} does not match Lc {lc}")

    def __bytes__(self) -> bytes:
        if len(self.data) > MAX_SHORT_LC:
            raise SCPError(f"command data of {len(self.data)} bytes does not fit a short APDU")
        out = bytes([self.cla, self.ins, self.p1, self.p2])
        if self.data:
            out += bytes([len(self.data)]) + self.data
        if self.has_le:
            out += bytes([self.le])
        return out


def check_cla_for_sm(cla: int) -> None:
    """Refuse classes we cannot mark as secure messaging (ISO 7816-4 §5.4.1).

    Only first-interindustry (``0x``) and GP (``8x``) classes on channels 0-3
    are handled; a class that already has the SM bit would be wrapped twice.
    """
    if cla == 0xFF or cla & CLA_FURTHER_INTERINDUSTRY:
        raise SCPError(f"CLA {cla:02X}: only channels 0-3 (CLA 0x/8x) can be wrapped")
    if cla & CLA_SM:
        raise SCPError(f"CLA {cla:02X} already indicates secure messaging; pass the plain command")


def check_channel(channel: int) -> None:
    """Logical channel for INITIALIZE UPDATE / EXTERNAL AUTHENTICATE: 0-3."""
    if not 0 <= channel <= CLA_CHANNEL_MASK:
        raise ValueError(f"channel must be 0-3, got {channel}")


def initialize_update_apdu(kvn: int, host_challenge: bytes, channel: int) -> bytes:
    """``80 50 KVN 00 08 <host challenge> 00`` (GPCS §11.12.2, gp-scp.md §1.2)."""
    if not 0x00 <= kvn <= 0xFF:
        raise ValueError(f"kvn must be 0x00-0xFF, got {kvn}")
    cmd = CommandAPDU(
        cla=CLA_GP | channel,
        ins=INS.INITIALIZE_UPDATE,
        p1=kvn,
        p2=0x00,
        data=host_challenge,
        has_le=True,
    )
    return bytes(cmd)


@dataclass(slots=True, kw_only=True)
class HostSession:
    """Live session material, from a verified card cryptogram until close; protocols add their keys."""

    host_cryptogram: bytes = field(repr=False)
    level: SecurityLevel = SecurityLevel.NONE
    commands: int = 0  #: commands passed through wrap()
    response_pending: bool = False


SessionT = TypeVar("SessionT", bound=HostSession)
InitResponseT = TypeVar("InitResponseT")


class SCPHost(ABC, Generic[SessionT, InitResponseT]):
    """Host side of one secure channel: the state machine above; subclasses add the crypto.

    A failed check of the card's INITIALIZE UPDATE response, EXTERNAL
    AUTHENTICATE status or a protected response closes the channel: the
    hooks only raise, and this class drops the keys.
    """

    PROTOCOL: ClassVar[str]  #: "SCP03" or "SCP02", for log lines
    _log: ClassVar[logging.Logger]  #: the protocol module's logger
    #: host challenge length; SCP03 S16 mode sets 16 (Amd D v1.2 §6.2.2)
    _challenge_len: int = CHALLENGE_LEN
    #: cryptogram, C-MAC and R-MAC length; SCP03 S16 mode sets 16
    _mac_len: int = MAC_LEN

    def __init__(
        self, keys: StaticKeys, *, host_challenge: bytes | None, random: Callable[[int], bytes], channel: int
    ) -> None:
        if host_challenge is not None and len(host_challenge) != self._challenge_len:
            raise ValueError(f"host_challenge must be {self._challenge_len} bytes, got {len(host_challenge)}")
        check_channel(channel)
        self._keys = keys
        self._random = random
        self._channel = channel
        self._pinned_challenge = host_challenge
        self._host_challenge = b""
        self._session: SessionT | None = None
        self._state = ChannelState.IDLE

    @property
    def state(self) -> ChannelState:
        return self._state

    @property
    def level(self) -> SecurityLevel:
        """The security level in force (NONE unless OPEN)."""
        if self._state is ChannelState.OPEN and self._session is not None:
            return self._session.level
        return SecurityLevel.NONE

    # --- state helpers -------------------------------------------------------

    def _require(self, call: str, *allowed: ChannelState) -> None:
        if self._state not in allowed:
            raise SCPStateError(f"{call} cannot be used in state {self._state.name}")

    def _live(self, call: str) -> SessionT:
        if self._session is None:
            raise SCPStateError(f"{call}: no session in state {self._state.name}")
        return self._session

    def _move(self, new: ChannelState) -> None:
        self._log.debug("%s %s -> %s", self.PROTOCOL, self._state.name, new.name)
        self._state = new

    def close(self) -> None:
        """End the session and drop its keys (after a failure, reset or SELECT; gp-scp.md §2.7)."""
        self._session = None
        self._host_challenge = b""
        self._move(ChannelState.CLOSED)

    def _fail(self, error: SCPError) -> SCPError:
        self.close()
        return error

    # --- handshake -----------------------------------------------------------

    def initialize_update_apdu(self, kvn: int = 0) -> bytes:
        """``80 50 KVN 00 08 <host challenge> 00`` (GPCS E.5.1, Amd D §7.1.1).

        Allowed in any state: a new INITIALIZE UPDATE ends any current session.
        ``kvn`` 0 lets the card pick its first key set.
        """
        challenge = self._pinned_challenge or self._random(self._challenge_len)
        self._pinned_challenge = None
        if len(challenge) != self._challenge_len:
            raise ValueError(f"random() returned {len(challenge)} bytes, wanted {self._challenge_len}")
        apdu = initialize_update_apdu(kvn, challenge, self._channel)
        self._session = None
        self._host_challenge = challenge
        self._move(ChannelState.CHALLENGED)
        return apdu

    def process_initialize_update_response(self, resp_data: bytes) -> InitResponseT:
        """Check the card's INITIALIZE UPDATE response data (no SW) and derive session keys.

        A malformed response or a wrong card cryptogram (:class:`AuthenticationError`:
        the card does not hold our keys) closes the channel.
        """
        self._require("process_initialize_update_response", ChannelState.CHALLENGED)
        try:
            info = self._parse_initialize_update_response(resp_data)
            session = self._authenticate_card(info)
        except SCPError as exc:
            raise self._fail(exc) from None
        self._session = session
        self._move(ChannelState.CARD_VERIFIED)
        return info

    def external_authenticate_apdu(self, level: int) -> bytes:
        """``84 82 SL 00 10 <host cryptogram> <C-MAC>`` and open the channel (GPCS E.5.2, Amd D §7.1.2).

        This C-MAC starts the chain; it is computed before the level applies,
        so even level 00 MACs this command.
        """
        self._require("external_authenticate_apdu", ChannelState.CARD_VERIFIED)
        session = self._live("external_authenticate_apdu")
        sl = self._security_level(session, level)
        cla = CLA_GP | CLA_SM | self._channel
        header = bytes([cla, INS.EXTERNAL_AUTHENTICATE, sl, 0x00, 2 * self._mac_len])
        mac = self._external_authenticate_mac(session, header)
        session.level = sl
        self._move(ChannelState.OPEN)
        return header + session.host_cryptogram + mac

    def process_external_authenticate_response(self, response: bytes) -> None:
        """Optional: check the card accepted EXTERNAL AUTHENTICATE (data + SW).

        Anything but 9000 (usually 6300) closes the channel and raises
        :class:`AuthenticationError`. Callers that never see the response (relay
        mode) may skip this.
        """
        self._require("process_external_authenticate_response", ChannelState.OPEN)
        if self._live("process_external_authenticate_response").commands:
            raise SCPStateError("process_external_authenticate_response after commands were wrapped")
        _, sw = split_response(response)
        if sw != SW.OK:
            raise self._fail(AuthenticationError(f"EXTERNAL AUTHENTICATE refused with SW {sw:04X}", sw=sw))

    # --- command and response protection -------------------------------------

    def wrap(self, apdu: bytes) -> bytes:
        """Protect one command per the level: C-DECRYPTION of the data, then the C-MAC.

        The transmitted CLA keeps its channel bits and gains bit 04; a command
        with Le keeps it. A command that does not fit (Lc over 255 once
        protected) raises :class:`SCPError` and leaves the chain untouched.
        Below C-MAC the command passes unchanged.
        """
        self._require("wrap", ChannelState.OPEN)
        session = self._live("wrap")
        cmd = CommandAPDU.parse(apdu)
        if session.level & SecurityLevel.C_MAC:
            check_cla_for_sm(cmd.cla)
            data = cmd.data
            if session.level & SecurityLevel.C_DECRYPTION and data:
                data = self._encrypt_command_data(session, data)
            lc = len(data) + self._mac_len
            if lc > MAX_SHORT_LC:
                raise SCPError(f"command data too long for secure messaging: Lc would be {lc}")
            mac = self._command_mac(session, cmd, data)
            wrapped = CommandAPDU(
                cla=cmd.cla | CLA_SM, ins=cmd.ins, p1=cmd.p1, p2=cmd.p2, data=data + mac, has_le=cmd.has_le
            )
            apdu = bytes(wrapped)
        else:
            self._plain_command(session, cmd)
        session.commands += 1
        session.response_pending = True
        return apdu

    def unwrap(self, response: bytes) -> bytes:
        """Return the response to the last wrapped command (``data || SW1 SW2``), unprotected.

        One response per wrapped command. A response that fails its R-MAC or
        R-ENCRYPTION check closes the channel and raises :class:`IntegrityError`.
        """
        self._require("unwrap", ChannelState.OPEN)
        session = self._live("unwrap")
        if not session.response_pending:
            raise SCPStateError("unwrap without a wrapped command awaiting its response")
        data, sw = split_response(response)
        session.response_pending = False
        try:
            return self._unprotect_response(session, response, data, sw)
        except SCPError as exc:
            raise self._fail(exc) from None

    # --- protocol hooks --------------------------------------------------------

    @abstractmethod
    def _parse_initialize_update_response(self, data: bytes) -> InitResponseT:
        """Parse and vet the response data; ``SCPError`` if this host cannot use it."""

    @abstractmethod
    def _authenticate_card(self, info: InitResponseT) -> SessionT:
        """Derive the session and check the card cryptogram; ``AuthenticationError`` if wrong."""

    @abstractmethod
    def _security_level(self, session: SessionT, level: int) -> SecurityLevel:
        """``level`` as a :class:`SecurityLevel`; ``ValueError``/``SCPError`` if not offered."""

    @abstractmethod
    def _external_authenticate_mac(self, session: SessionT, header: bytes) -> bytes:
        """The C-MAC of EXTERNAL AUTHENTICATE (``header`` is its 5 bytes); starts the chain."""

    @abstractmethod
    def _encrypt_command_data(self, session: SessionT, data: bytes) -> bytes:
        """C-DECRYPTION of non-empty command data."""

    @abstractmethod
    def _command_mac(self, session: SessionT, cmd: CommandAPDU, data: bytes) -> bytes:
        """The C-MAC of ``cmd`` whose data is now ``data`` (maybe encrypted); advances the chain."""

    def _plain_command(self, session: SessionT, cmd: CommandAPDU) -> None:
        """A command sent unprotected (level below C-MAC); SCP02 level 10 still R-MACs its answer."""

    def _unprotect_response(self, session: SessionT, response: bytes, data: bytes, sw: int) -> bytes:
        """Check and strip response protection; without R-MAC there is none."""
        return response
