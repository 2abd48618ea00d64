"""ISO/IEC 7816-4 building blocks: APDUs, status words, BER-TLV. Sans-I/O."""

from .apdu import EXTENDED_LE_MAX, SHORT_LE_MAX, CLAKind, CommandAPDU, ResponseAPDU
from .errors import CardError
from .sw import SW, sw_more_data, sw_name, sw_retries_left, sw_wrong_le
from .tlv import TLV, encode_length, encode_tlv, find_tlv, iter_tlvs, parse_tlvs, tag_bytes

__all__ = [
    "EXTENDED_LE_MAX",
    "SHORT_LE_MAX",
    "SW",
    "TLV",
    "CLAKind",
    "CardError",
    "CommandAPDU",
    "ResponseAPDU",
    "encode_length",
    "encode_tlv",
    "find_tlv",
    "iter_tlvs",
    "parse_tlvs",
    "sw_more_data",
    "sw_name",
    "sw_retries_left",
    "sw_wrong_le",
    "tag_bytes",
]
