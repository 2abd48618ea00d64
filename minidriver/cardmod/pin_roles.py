"""The PIN ids of a PIV card and their PIN_INFO (minidriver-spec.md §3.3, §4, §6).

======================  ===========================================  ==============================
PIN id                  PIV credential                               PIN_INFO
======================  ===========================================  ==============================
ROLE_EVERYONE 0         none                                         EmptyPinType
ROLE_USER 1             PIV Card Application PIN (key ref 80)        AlphaNumeric, PrimaryCardPin
ROLE_ADMIN 2            card management key 9B (GENERAL AUTHENTICATE  ChallengeResponse,
                        challenge/response, 3DES or AES)             AdministratorPin
PIN_SIGN 3              the PIV PIN again, for "PIN always" keys     AlphaNumeric, DigitalSignature,
                        (9C): VERIFY right before each use           PinCacheAlwaysPrompt
PIN_PUK 4               PUK (key ref 81), only to unblock the PIN    AlphaNumeric, UnblockOnlyPin
======================  ===========================================  ==============================

CP_CARD_LIST_PINS = 0x1E. The flag constants of the PIN functions live here too.
"""

from __future__ import annotations

from .piv_map import PIN_PUK, PIN_SIGN
from .structs import PinCachePolicy, PinInfo
from .types import PinId, PinSet

__all__ = ["LIST_PINS", "PIN_BIT_PUK", "PIN_BIT_SIGN", "pin_info"]

CARD_AUTHENTICATE_GENERATE_SESSION_PIN = 0x10000000
CARD_AUTHENTICATE_SESSION_PIN = 0x20000000
CARD_PIN_SILENT_CONTEXT = 0x00000040
CARD_AUTHENTICATE_PIN_CHALLENGE_RESPONSE = 1
CARD_AUTHENTICATE_PIN_PIN = 2
PIN_CHANGE_FLAG_UNBLOCK = 0x01
PIN_CHANGE_FLAG_CHANGEPIN = 0x02
WSZ_USER, WSZ_ADMIN = "user", "admin"

# SECRET_TYPE, SECRET_PURPOSE, PIN_CACHE_POLICY_TYPE (§4)
ALPHANUMERIC, CHALLENGE_RESPONSE, EMPTY = 0, 2, 3
PURPOSE = {"auth": 0, "sign": 1, "admin": 4, "primary": 5, "unblock": 6}
CACHE_NORMAL, CACHE_ALWAYS_PROMPT = 0, 3

USER_PINS = (PinId.ROLE_USER, PIN_SIGN)  #: both are the PIV PIN (key ref 80)
PIN_BIT_SIGN = 1 << PIN_SIGN
PIN_BIT_PUK = 1 << PIN_PUK
#: CP_CARD_LIST_PINS: user, admin, sign PIN, PUK
LIST_PINS = int(PinSet.USER | PinSet.ADMIN) | PIN_BIT_SIGN | PIN_BIT_PUK


def _info(kind: int, purpose: str, change: int, unblock: int, cache: int = CACHE_NORMAL) -> PinInfo:
    return PinInfo(6, kind, PURPOSE[purpose], change, unblock, PinCachePolicy(6, cache, 0), 0)


PIN_INFO = {
    PinId.ROLE_EVERYONE: _info(EMPTY, "auth", 0, 0),
    PinId.ROLE_USER: _info(ALPHANUMERIC, "primary", PinSet.USER, PIN_BIT_PUK),
    PinId.ROLE_ADMIN: _info(CHALLENGE_RESPONSE, "admin", PinSet.ADMIN, 0),
    PIN_SIGN: _info(ALPHANUMERIC, "sign", PIN_BIT_SIGN, PIN_BIT_PUK, CACHE_ALWAYS_PROMPT),
    PIN_PUK: _info(ALPHANUMERIC, "unblock", PIN_BIT_PUK, 0),
}


def pin_info(pin_id: int) -> PinInfo | None:
    """PIN_INFO of a PIN id this card has (CP_CARD_PIN_INFO), None for an unknown id."""
    info = PIN_INFO.get(pin_id)
    return None if info is None else PinInfo.from_bytes(bytes(info))
