"""What travels in ``pbInput``/``ppbOutput`` of the SKI functions: our relay messages and the
Cardmod.h secure-function structures (minidriver-spec.md §5.2, §5.4).

**Relay messages (ours, version 1).** Cardmod.h leaves the key-establishment data of
CardGetSharedKeyHandle to the minidriver ("outside the scope of this specification"). Ours carry
a GlobalPlatform SCP03 handshake (gp-scp.md §1.2, §1.3, §2) between a server in NO_CARD_MODE and
a client holding the card. Every message starts with ``53 01 <type>`` (magic ``S``, version 1)
and has one exact length; anything else (unknown magic, version or type, a short or long
message, a field out of range) is refused with SCARD_E_INVALID_PARAMETER before any state changes
or any APDU is sent::

    type 01 HELLO      server -> client  (server's CardGetSharedKeyHandle(no input) output;
                                          client round 1 input)
        53 01 01 | KVN (1) | host challenge (8)                                 = 12 bytes
    type 02 CHALLENGE  client -> server  (client round 1 output; server round 2 input)
        53 01 02 | channel (1, 1-3) | host challenge (8) | len (1, 29 or 32)
                 | INITIALIZE UPDATE response data (len)                       = 42 or 45 bytes
    type 03 AUTH       server -> client  (server round 2 output; client round 2 input)
        53 01 03 | EXTERNAL AUTHENTICATE APDU 8x 82 SL 00 10 <cryptogram> <C-MAC> = 24 bytes
    type 04 COMMAND    server -> client  (one CARD_ENCRYPTED_DATA of MDEncryptData)
        53 01 04 | function (1) | index (1) | count (1) | role (1) | protected APDU (7-261)

``KVN`` is P1 of INITIALIZE UPDATE (00: the card's first key set). ``channel`` is the logical
channel the client opened for the session; the server builds every later command for it. The host
challenge in CHALLENGE is the one from HELLO, so one server context can run several handshakes
at once and each answer finds its own. In COMMAND, ``function`` is 1 import key pair, 2 change
authenticator, 3 authenticate; ``index``/``count`` number the blobs of one MDEncryptData call
(0-based, all present, in order); ``role`` 1 = an action whose status word is the result,
2 = a query (GET METADATA of the authenticating PIN) that reads the tries left. The APDU is a
short command with the SM bit, CLA on the handle's channel, protected by SCP03 (C-MAC and, at
the levels we allow, C-DECRYPTION): the client can read its header, never its data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from .codes import MinidriverError, ScardCode

__all__ = [
    "CSF_AUTHENTICATE",
    "CSF_CHANGE_AUTHENTICATOR",
    "CSF_IMPORT_KEYPAIR",
    "CardAuthenticate",
    "CardChangeAuthenticator",
    "CardEncryptedData",
    "CardImportKeyPair",
    "Challenge",
    "Command",
    "Function",
    "Hello",
    "Role",
    "authenticate_response",
    "change_authenticator_response",
    "parse_auth",
]

MAGIC = 0x53
VERSION = 1
HEADER_LEN = 3
CHALLENGE_LEN = 8
IU_RESPONSE_LENS = (29, 32)  #: SCP03 S8 INITIALIZE UPDATE response, without / with sequence counter
EA_APDU_LEN = 21
SKI_STRUCT_VERSION = 7  #: dwVersion of every secure-function structure (§5.2)

#: secure function names (Cardmod.h CSF_*)
CSF_IMPORT_KEYPAIR = "Import Key Pair"
CSF_CHANGE_AUTHENTICATOR = "Change Authenticator"
CSF_AUTHENTICATE = "Authenticate"


class MessageType(IntEnum):
    HELLO = 0x01
    CHALLENGE = 0x02
    AUTH = 0x03
    COMMAND = 0x04


class Function(IntEnum):
    """The secure function a COMMAND blob belongs to."""

    IMPORT_KEYPAIR = 1
    CHANGE_AUTHENTICATOR = 2
    AUTHENTICATE = 3

    @classmethod
    def from_name(cls, name: object) -> Function:
        """A CSF_* name -> the function; anything else -> SCARD_E_INVALID_PARAMETER."""
        table = {
            CSF_IMPORT_KEYPAIR: cls.IMPORT_KEYPAIR,
            CSF_CHANGE_AUTHENTICATOR: cls.CHANGE_AUTHENTICATOR,
            CSF_AUTHENTICATE: cls.AUTHENTICATE,
        }
        if not isinstance(name, str) or name not in table:
            raise bad(f"unknown secure function {name!r}")
        return table[name]


class Role(IntEnum):
    ACTION = 1
    QUERY = 2


def bad(why: str) -> MinidriverError:
    return MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, why)


def _header(data: bytes, kind: MessageType) -> bytes:
    """The body of a message of ``kind``; a wrong magic, version or type -> INVALID_PARAMETER."""
    if len(data) < HEADER_LEN:
        raise bad(f"message of {len(data)} bytes is shorter than its header")
    if data[0] != MAGIC or data[1] != VERSION:
        raise bad(f"not a version-{VERSION} SKI message (starts {data[:2].hex()})")
    if data[2] != kind:
        raise bad(f"expected a {kind.name} message, got type {data[2]:02X}")
    return data[HEADER_LEN:]


def _head(kind: MessageType) -> bytes:
    return bytes((MAGIC, VERSION, kind))


@dataclass(frozen=True)
class Hello:
    kvn: int
    host_challenge: bytes

    def __bytes__(self) -> bytes:
        return _head(MessageType.HELLO) + bytes((self.kvn,)) + self.host_challenge

    @classmethod
    def parse(cls, data: bytes) -> Hello:
        body = _header(data, MessageType.HELLO)
        if len(body) != 1 + CHALLENGE_LEN:
            raise bad(f"HELLO is {HEADER_LEN + 1 + CHALLENGE_LEN} bytes, got {len(data)}")
        return cls(body[0], body[1:])


@dataclass(frozen=True)
class Challenge:
    channel: int
    host_challenge: bytes
    card_response: bytes  #: INITIALIZE UPDATE response data, no SW

    def __bytes__(self) -> bytes:
        return (
            _head(MessageType.CHALLENGE)
            + bytes((self.channel,))
            + self.host_challenge
            + bytes((len(self.card_response),))
            + self.card_response
        )

    @classmethod
    def parse(cls, data: bytes) -> Challenge:
        body = _header(data, MessageType.CHALLENGE)
        if len(body) < 2 + CHALLENGE_LEN:
            raise bad(f"CHALLENGE of {len(data)} bytes is too short")
        channel, challenge, size = body[0], body[1 : 1 + CHALLENGE_LEN], body[1 + CHALLENGE_LEN]
        rest = body[2 + CHALLENGE_LEN :]
        if not 1 <= channel <= 3:
            raise bad(f"channel {channel} is not a logical channel 1-3")
        if size not in IU_RESPONSE_LENS or len(rest) != size:
            raise bad(f"CHALLENGE card response of {len(rest)} bytes (length byte {size}); expected 29 or 32")
        return cls(channel, challenge, rest)


def parse_auth(data: bytes, channel: int) -> bytes:
    """The EXTERNAL AUTHENTICATE APDU of an AUTH message, which must be for ``channel``."""
    body = _header(data, MessageType.AUTH)
    if len(body) != EA_APDU_LEN:
        raise bad(f"AUTH is {HEADER_LEN + EA_APDU_LEN} bytes, got {len(data)}")
    if body[0] != 0x84 | channel or body[1] != 0x82 or body[3] != 0x00 or body[4] != 0x10:
        raise bad(f"AUTH does not carry EXTERNAL AUTHENTICATE for channel {channel} ({body[:5].hex()})")
    return bytes(body)


def auth_message(apdu: bytes) -> bytes:
    return _head(MessageType.AUTH) + apdu


@dataclass(frozen=True)
class Command:
    function: Function
    index: int
    count: int
    role: Role
    apdu: bytes = field(repr=False)

    def __bytes__(self) -> bytes:
        return _head(MessageType.COMMAND) + bytes((self.function, self.index, self.count, self.role)) + self.apdu

    @classmethod
    def parse(cls, data: bytes, channel: int) -> Command:
        """A COMMAND blob for a session on ``channel``; the APDU must be short, protected, on it."""
        body = _header(data, MessageType.COMMAND)
        if len(body) < 4 + 5:
            raise bad(f"COMMAND of {len(data)} bytes is too short")
        try:
            function, role = Function(body[0]), Role(body[3])
        except ValueError:
            raise bad(f"COMMAND function {body[0]:02X} / role {body[3]:02X} unknown") from None
        index, count, apdu = body[1], body[2], body[4:]
        if not index < count:
            raise bad(f"COMMAND index {index} of {count}")
        cla = apdu[0]
        if cla & 0x40 or not cla & 0x04 or cla & 0x03 != channel or cla & ~0x97 & 0xFF:
            raise bad(f"COMMAND CLA {cla:02X} is not a protected command on channel {channel}")
        lc = apdu[4]
        if lc < 8 or len(apdu) not in (5 + lc, 6 + lc):
            raise bad(f"COMMAND APDU length {len(apdu)} does not match Lc {lc}")
        return cls(function, index, count, role, bytes(apdu))


# -- Cardmod.h secure-function structures (§5.2 table; little-endian, natural alignment) --------
def _version(data: bytes, name: str) -> None:
    if len(data) < 4:
        raise bad(f"{name} shorter than dwVersion")
    (version,) = struct.unpack_from("<I", data)
    if version != SKI_STRUCT_VERSION:
        raise MinidriverError(ScardCode.ERROR_REVISION_MISMATCH, f"{name}.dwVersion {version}, expected 7")


@dataclass(frozen=True)
class CardImportKeyPair:
    """CARD_IMPORT_KEYPAIR: 0 dwVersion, 4 bContainerIndex, 8 PinId, 12 dwKeySpec, 16 dwKeySize,
    20 cbInput, 24 key blob."""

    bContainerIndex: int
    PinId: int
    dwKeySpec: int
    dwKeySize: int
    pbInput: bytes = field(repr=False)
    dwVersion: int = SKI_STRUCT_VERSION

    def __bytes__(self) -> bytes:
        head = struct.pack("<IB3xIIII", self.dwVersion, self.bContainerIndex, self.PinId, self.dwKeySpec,
                           self.dwKeySize, len(self.pbInput))  # fmt: skip
        return head + self.pbInput

    @classmethod
    def parse(cls, data: bytes) -> CardImportKeyPair:
        _version(data, "CARD_IMPORT_KEYPAIR")
        if len(data) < 24:
            raise bad(f"CARD_IMPORT_KEYPAIR of {len(data)} bytes is shorter than its 24-byte head")
        version, index, pin_id, spec, size, cb = struct.unpack_from("<IB3xIIII", data)
        if len(data) != 24 + cb:
            raise bad(f"CARD_IMPORT_KEYPAIR.cbInput {cb} but {len(data) - 24} bytes follow")
        return cls(index, pin_id, spec, size, bytes(data[24:]), version)


@dataclass(frozen=True)
class CardChangeAuthenticator:
    """CARD_CHANGE_AUTHENTICATOR: 0 dwVersion, 4 dwFlags, 8 dwAuthenticatingPinId,
    12 cbAuthenticatingPinData, 16 dwTargetPinId, 20 cbTargetData, 24 cRetryCount, 28 data."""

    dwFlags: int
    dwAuthenticatingPinId: int
    pbAuthenticatingPinData: bytes = field(repr=False)
    dwTargetPinId: int = 0
    pbTargetData: bytes = field(default=b"", repr=False)
    cRetryCount: int = 0
    dwVersion: int = SKI_STRUCT_VERSION

    def __bytes__(self) -> bytes:
        auth, target = self.pbAuthenticatingPinData, self.pbTargetData
        head = struct.pack("<IIIIIII", self.dwVersion, self.dwFlags, self.dwAuthenticatingPinId, len(auth),
                           self.dwTargetPinId, len(target), self.cRetryCount)  # fmt: skip
        return head + auth + target

    @classmethod
    def parse(cls, data: bytes) -> CardChangeAuthenticator:
        _version(data, "CARD_CHANGE_AUTHENTICATOR")
        if len(data) < 28:
            raise bad(f"CARD_CHANGE_AUTHENTICATOR of {len(data)} bytes is shorter than its 28-byte head")
        version, flags, auth_id, cb_auth, target_id, cb_target, retries = struct.unpack_from("<IIIIIII", data)
        if len(data) != 28 + cb_auth + cb_target:
            raise bad("CARD_CHANGE_AUTHENTICATOR lengths do not add up to the buffer")
        auth = bytes(data[28 : 28 + cb_auth])
        return cls(flags, auth_id, auth, target_id, bytes(data[28 + cb_auth :]), retries, version)


@dataclass(frozen=True)
class CardAuthenticate:
    """CARD_AUTHENTICATE: 0 dwVersion, 4 dwFlags, 8 PinId, 12 cbPinData, 16 pbPinData."""

    dwFlags: int
    PinId: int
    pbPinData: bytes = field(repr=False)
    dwVersion: int = SKI_STRUCT_VERSION

    def __bytes__(self) -> bytes:
        return struct.pack("<IIII", self.dwVersion, self.dwFlags, self.PinId, len(self.pbPinData)) + self.pbPinData

    @classmethod
    def parse(cls, data: bytes) -> CardAuthenticate:
        _version(data, "CARD_AUTHENTICATE")
        if len(data) < 16:
            raise bad(f"CARD_AUTHENTICATE of {len(data)} bytes is shorter than its 16-byte head")
        version, flags, pin_id, cb = struct.unpack_from("<IIII", data)
        if len(data) != 16 + cb:
            raise bad(f"CARD_AUTHENTICATE.cbPinData {cb} but {len(data) - 16} bytes follow")
        return cls(flags, pin_id, bytes(data[16:]), version)


def change_authenticator_response(attempts: int) -> bytes:
    """CARD_CHANGE_AUTHENTICATOR_RESPONSE {dwVersion 7, cAttemptsRemaining}: 8 bytes."""
    return struct.pack("<II", SKI_STRUCT_VERSION, attempts & 0xFFFFFFFF)


def authenticate_response(attempts: int) -> bytes:
    """CARD_AUTHENTICATE_RESPONSE {dwVersion 7, cbSessionPin 0, cAttemptsRemaining}: 12 bytes."""
    return struct.pack("<III", SKI_STRUCT_VERSION, 0, attempts & 0xFFFFFFFF)


@dataclass
class CardEncryptedData:
    """CARD_ENCRYPTED_DATA {pbEncryptedData, cbEncryptedData}; the buffer comes from pfnCspAlloc."""

    pbEncryptedData: bytes | bytearray | None
    cbEncryptedData: int = 0
