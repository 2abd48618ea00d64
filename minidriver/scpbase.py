"""Shared vocabulary of the host-side secure channels: errors, states, levels, keys, APDUs.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum, IntFlag, auto

__all__ = [
    "INS",
    "SW",
    "AuthenticationError",
    "ChannelState",
    "CommandAPDU",
    "IntegrityError",
    "SCPError",
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
