"""Status words (ISO/IEC 7816-4 §5.6, GPCS 2.3.1 §11.1.3).

Families that carry a number (61xx, 63Cx, 6Cxx) are small functions, not
members, so that ``SW`` stays a closed list of names a log can print.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["SW", "sw_more_data", "sw_name", "sw_retries_left", "sw_wrong_le"]


class SW(IntEnum):
    OK = 0x9000
    WARNING_NO_INFO = 0x6200
    SELECTED_FILE_INVALIDATED = 0x6283  #: GP: ISD selected while card is locked
    MORE_DATA_AVAILABLE = 0x6310  #: GP GET STATUS: more entries follow
    VERIFY_FAILED = 0x6300  #: GP EXTERNAL AUTHENTICATE: host cryptogram wrong
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    COMMAND_CHAINING_NOT_SUPPORTED = 0x6884
    COMMAND_INCOMPATIBLE = 0x6981
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    SM_DATA_OBJECTS_MISSING = 0x6987
    SM_DATA_OBJECTS_INCORRECT = 0x6988
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    LC_INCONSISTENT_WITH_P1P2 = 0x6A87
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00
    ALGORITHM_NOT_SUPPORTED = 0x9484  #: GP PUT KEY
    INVALID_KEY_CHECK_VALUE = 0x9485  #: GP PUT KEY


def sw_more_data(n: int) -> int:
    """61xx: ``n`` bytes wait for GET RESPONSE; xx=00 means 256 or more."""
    return 0x6100 | (n if n < 256 else 0)


def sw_wrong_le(n: int) -> int:
    """6Cxx: wrong Le; ``n`` bytes are available (xx=00 means 256)."""
    return 0x6C00 | (n if n < 256 else 0)


def sw_retries_left(n: int) -> int:
    """63Cx: verification failed (or status query), ``n`` tries remain."""
    return 0x63C0 | min(n, 15)


def sw_name(sw: int) -> str:
    """A readable name for logs: the enum name, or the family with its count."""
    try:
        return SW(sw).name
    except ValueError:
        pass
    if sw & 0xFF00 == 0x6100:
        return f"MORE_DATA({sw & 0xFF})"
    if sw & 0xFF00 == 0x6C00:
        return f"WRONG_LE({sw & 0xFF})"
    if sw & 0xFFF0 == 0x63C0:
        return f"RETRIES_LEFT({sw & 0x0F})"
    return f"{sw:04X}"
