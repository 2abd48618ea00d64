"""PIV data objects: which tags exist, who may read them, their default content.

SP 800-73-4 part 1 Table 3 lists the containers and their access rules.
Objects are stored as the value of their 53 template (7E for the discovery
object) and answered wrapped in it again. Tags the spec does not list but
that sit in the PIV (5FC1xx) or vendor (5FFFxx) ranges are kept as opaque
BER-TLV, readable by anyone, as PIV middleware expects from real cards.
"""

from __future__ import annotations

import os
from enum import Enum, IntEnum

from ...iso7816 import encode_tlv
from .consts import PIV_AID, KeyRef

__all__ = [
    "MAX_OBJECT_LEN",
    "ObjectID",
    "ReadAccess",
    "cert_object_for_slot",
    "certificate_object",
    "default_ccc",
    "default_chuid",
    "default_discovery",
    "is_valid_object",
    "read_access",
]

MAX_OBJECT_LEN = 12 * 1024  #: larger PUT DATA is refused with 6A84 (YubiKey 5: about 3 KB)
GUID_LEN = 16


class ObjectID(IntEnum):
    """Data object tags (SP 800-73-4 part 1 Table 3; YubiKey 5FFF01)."""

    CARD_AUTHENTICATION_CERT = 0x5FC101
    CHUID = 0x5FC102
    FINGERPRINTS = 0x5FC103
    AUTHENTICATION_CERT = 0x5FC105
    SECURITY_OBJECT = 0x5FC106
    CCC = 0x5FC107
    FACIAL_IMAGE = 0x5FC108
    PRINTED_INFORMATION = 0x5FC109
    SIGNATURE_CERT = 0x5FC10A
    KEY_MANAGEMENT_CERT = 0x5FC10B
    KEY_HISTORY = 0x5FC10C
    RETIRED_CERT_1 = 0x5FC10D
    RETIRED_CERT_20 = 0x5FC120
    IRIS_IMAGES = 0x5FC121
    BIOMETRIC_GROUP_TEMPLATE = 0x5FC122
    SM_CERT_SIGNER = 0x5FC123
    PAIRING_CODE = 0x5FC124
    DISCOVERY = 0x7E
    BIT_GROUP_TEMPLATE = 0x7F61
    ATTESTATION_CERT = 0x5FFF01


class ReadAccess(Enum):
    ALWAYS = "always"
    PIN = "pin"  #: SP 800-73-4: "PIN" or "PIN or OCC"


#: objects whose GET DATA needs the PIN (SP 800-73-4 part 1 Table 3)
_PIN_PROTECTED = frozenset(
    {
        ObjectID.FINGERPRINTS,
        ObjectID.FACIAL_IMAGE,
        ObjectID.PRINTED_INFORMATION,
        ObjectID.IRIS_IMAGES,
        ObjectID.PAIRING_CODE,
    }
)

_SLOT_CERTS = {
    KeyRef.AUTHENTICATION: ObjectID.AUTHENTICATION_CERT,
    KeyRef.SIGNATURE: ObjectID.SIGNATURE_CERT,
    KeyRef.KEY_MANAGEMENT: ObjectID.KEY_MANAGEMENT_CERT,
    KeyRef.CARD_AUTHENTICATION: ObjectID.CARD_AUTHENTICATION_CERT,
    KeyRef.ATTESTATION: ObjectID.ATTESTATION_CERT,
}


def cert_object_for_slot(slot: int) -> int:
    """The certificate container of a key slot (retired 82..95 -> 5FC10D..5FC120)."""
    if slot in _SLOT_CERTS:
        return int(_SLOT_CERTS[KeyRef(slot)])
    if 0x82 <= slot <= 0x95:
        return ObjectID.RETIRED_CERT_1 + (slot - 0x82)
    raise ValueError(f"slot must be a key slot (9A/9C/9D/9E/82-95/F9), got {slot:#04x}")


def is_valid_object(tag: int) -> bool:
    """Tags GET DATA / PUT DATA accept: PIV containers, 7E, 7F61 and vendor 5FFFxx."""
    if tag in (ObjectID.DISCOVERY, ObjectID.BIT_GROUP_TEMPLATE):
        return True
    return 0x5FC101 <= tag <= 0x5FC1FF or 0x5FFF00 <= tag <= 0x5FFFFF


def read_access(tag: int) -> ReadAccess:
    return ReadAccess.PIN if tag in _PIN_PROTECTED else ReadAccess.ALWAYS


def certificate_object(der: bytes) -> bytes:
    """Content of a certificate container: 70 cert, 71 CertInfo (uncompressed), FE LRC."""
    return encode_tlv(0x70, der) + encode_tlv(0x71, b"\x00") + encode_tlv(0xFE, b"")


#: FASC-N of a non-government card (agency 9999, SP 800-73-4 part 1 §3.1.2):
#: OpenSC then uses the GUID as the card identity (minidriver-spec.md §6).
NON_FEDERAL_FASCN = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")


def default_chuid(*, guid: bytes | None = None, expiry: str = "20991231") -> bytes:
    """A CHUID (SP 800-73-4 part 1 §3.1.2) with a random non-zero GUID; no issuer signature."""
    if guid is None:
        guid = os.urandom(GUID_LEN)
        while not any(guid):  # pragma: no cover - 2**-128
            guid = os.urandom(GUID_LEN)
    if len(guid) != GUID_LEN:
        raise ValueError(f"guid must be {GUID_LEN} bytes, got {len(guid)}")
    return b"".join(
        (
            encode_tlv(0x30, NON_FEDERAL_FASCN),  # FASC-N
            encode_tlv(0x34, guid),  # GUID
            encode_tlv(0x35, expiry.encode("ascii")),  # expiration date YYYYMMDD
            encode_tlv(0x3E, b""),  # issuer asymmetric signature (absent)
            encode_tlv(0xFE, b""),  # error detection code
        )
    )


def default_ccc() -> bytes:
    """A Card Capability Container (SP 800-73-4 part 1 §3.1.1, Table 8)."""
    card_id = bytes.fromhex("A000000116") + b"\xff\x02" + os.urandom(14)  # GSC-RID, mfr, type, id
    fields = (
        (0xF0, card_id),
        (0xF1, b"\x21"),  # capability container version
        (0xF2, b"\x21"),  # capability grammar version
        (0xF3, b""),  # applications CardURL
        (0xF4, b"\x00"),  # PKCS#15
        (0xF5, b"\x10"),  # registered data model number
        (0xF6, b""),  # access control rule table
        (0xF7, b""),  # card APDUs
        (0xFA, b""),  # redirection tag
        (0xFB, b""),  # capability tuples
        (0xFC, b""),  # status tuples
        (0xFD, b""),  # next CCC
        (0xFE, b""),  # error detection code
    )
    return b"".join(encode_tlv(tag, value) for tag, value in fields)


def default_discovery() -> bytes:
    """Discovery object content (part 1 §3.3.2): our AID and PIN usage policy 40 00 (PIV PIN only)."""
    return encode_tlv(0x4F, PIV_AID) + encode_tlv(0x5F2F, b"\x40\x00")
