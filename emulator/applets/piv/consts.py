"""Names for the numbers of the PIV card edge (NIST SP 800-73-4 part 1 and 2).

Instructions, key references, algorithm identifiers and data object tags,
plus the YubiKey vendor values that PIV tools expect (EXTENSIONS.md).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ASYMMETRIC_SLOTS",
    "CURVE25519_ALGORITHMS",
    "EC_ALGORITHMS",
    "EC_CURVE_NAMES",
    "INS",
    "MGMT_ALGORITHMS",
    "PIN_LEN",
    "PIN_PAD",
    "PIV_AID",
    "PIV_RID",
    "RETIRED_SLOTS",
    "RSA_ALGORITHMS",
    "RSA_BITS",
    "VENDOR_INS",
    "Algorithm",
    "KeyRef",
    "MetadataTag",
    "Origin",
    "PIVTag",
    "PinPolicy",
    "TouchPolicy",
]

#: NIST RID + PIX of the PIV Card Application, version 01 00 (SP 800-73-4 part 1 §2.2)
PIV_AID = bytes.fromhex("A000000308000010000100")
PIV_RID = PIV_AID[:5]
PIN_LEN = 8  #: PIN and PUK travel padded to 8 bytes (SP 800-73-4 part 2 §2.4.3)
PIN_PAD = 0xFF


class INS(IntEnum):
    """Instructions of the PIV card edge (SP 800-73-4 part 2 §3) and vendor extensions."""

    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x47
    GENERAL_AUTHENTICATE = 0x87
    GET_DATA = 0xCB
    PUT_DATA = 0xDB
    #: GlobalPlatform, handed to the ISD's secure channel service
    INITIALIZE_UPDATE = 0x50
    EXTERNAL_AUTHENTICATE = 0x82
    #: YubiKey extensions (EXTENSIONS.md)
    MOVE_KEY = 0xF6
    GET_METADATA = 0xF7
    GET_SERIAL = 0xF8
    ATTEST = 0xF9
    SET_PIN_RETRIES = 0xFA
    RESET = 0xFB
    GET_VERSION = 0xFD
    IMPORT_ASYMMETRIC_KEY = 0xFE
    SET_MANAGEMENT_KEY = 0xFF


class PIVTag(IntEnum):
    """BER-TLV tags of commands and responses (SP 800-73-4 part 2 §3, part 1 Table 3)."""

    APPLICATION_PROPERTY_TEMPLATE = 0x61
    AID = 0x4F
    COEXISTENT_TAG_ALLOCATION_AUTHORITY = 0x79
    APPLICATION_LABEL = 0x50
    CRYPTOGRAPHIC_ALGORITHMS = 0xAC
    ALGORITHM = 0x80
    OID = 0x06
    TAG_LIST = 0x5C
    DATA = 0x53
    DISCOVERY = 0x7E
    DYNAMIC_AUTH_TEMPLATE = 0x7C
    WITNESS = 0x80
    CHALLENGE = 0x81
    RESPONSE = 0x82
    EXPONENTIATION = 0x85
    PUBLIC_KEY_TEMPLATE = 0x7F49
    RSA_MODULUS = 0x81
    RSA_EXPONENT = 0x82
    EC_POINT = 0x86
    CERTIFICATE = 0x70
    CERT_INFO = 0x71
    LRC = 0xFE
    #: YubiKey: key policies in GENERATE / IMPORT
    PIN_POLICY = 0xAA
    TOUCH_POLICY = 0xAB


class KeyRef(IntEnum):
    """Key references (SP 800-73-4 part 1 Table 4b) and the YubiKey attestation slot."""

    GLOBAL_PIN = 0x00
    PIN = 0x80
    PUK = 0x81
    CARD_MANAGEMENT = 0x9B
    AUTHENTICATION = 0x9A
    SIGNATURE = 0x9C
    KEY_MANAGEMENT = 0x9D
    CARD_AUTHENTICATION = 0x9E
    ATTESTATION = 0xF9


#: retired key management slots 82..95 (SP 800-73-4 part 1 §3.3.2)
RETIRED_SLOTS = tuple(range(0x82, 0x96))
#: slots GENERATE and GENERAL AUTHENTICATE accept for asymmetric keys
ASYMMETRIC_SLOTS = (
    KeyRef.AUTHENTICATION,
    KeyRef.SIGNATURE,
    KeyRef.KEY_MANAGEMENT,
    KeyRef.CARD_AUTHENTICATION,
    *RETIRED_SLOTS,
)


class Algorithm(IntEnum):
    """Cryptographic mechanism identifiers (SP 800-78-4 Table 6-2)."""

    TDES = 0x03
    RSA3072 = 0x05
    RSA1024 = 0x06
    RSA2048 = 0x07
    AES128 = 0x08
    AES192 = 0x0A
    AES256 = 0x0C
    ECCP256 = 0x11
    ECCP384 = 0x14
    RSA4096 = 0x16
    #: YubiKey 5.7 (not in SP 800-78-4): RFC 8032 Ed25519 signatures, RFC 7748 X25519 key agreement
    ED25519 = 0xE0
    X25519 = 0xE1
    #: YubiKey metadata: "this reference is a PIN" (not an algorithm)
    PIN = 0xFF


MGMT_ALGORITHMS = (Algorithm.TDES, Algorithm.AES128, Algorithm.AES192, Algorithm.AES256)
RSA_BITS = {Algorithm.RSA1024: 1024, Algorithm.RSA2048: 2048, Algorithm.RSA3072: 3072, Algorithm.RSA4096: 4096}
RSA_ALGORITHMS = tuple(RSA_BITS)
EC_CURVE_NAMES = {Algorithm.ECCP256: "secp256r1", Algorithm.ECCP384: "secp384r1"}
EC_ALGORITHMS = tuple(EC_CURVE_NAMES)
#: Edwards / Montgomery keys of YubiKey 5.7: 32-byte raw public keys in tag 86
CURVE25519_ALGORITHMS = (Algorithm.ED25519, Algorithm.X25519)
#: every vendor instruction; a persona (emulator/personas.py) says which of them the card answers
VENDOR_INS = frozenset(
    {
        INS.MOVE_KEY,
        INS.GET_METADATA,
        INS.GET_SERIAL,
        INS.ATTEST,
        INS.SET_PIN_RETRIES,
        INS.RESET,
        INS.GET_VERSION,
        INS.IMPORT_ASYMMETRIC_KEY,
        INS.SET_MANAGEMENT_KEY,
    }
)


class PinPolicy(IntEnum):
    """When a private key needs the PIN (YubiKey tag AA; 0 = the slot's default)."""

    DEFAULT = 0x00
    NEVER = 0x01
    ONCE = 0x02  #: once per session (SP 800-73-4 "PIN")
    ALWAYS = 0x03  #: before every use (SP 800-73-4 "PIN Always")


class TouchPolicy(IntEnum):
    """Recorded only: a virtual card has no button (YubiKey tag AB)."""

    DEFAULT = 0x00
    NEVER = 0x01
    ALWAYS = 0x02
    CACHED = 0x03


class Origin(IntEnum):
    GENERATED = 0x01
    IMPORTED = 0x02


class MetadataTag(IntEnum):
    """Fields of the GET METADATA answer (YubiKey extension, EXTENSIONS.md)."""

    ALGORITHM = 0x01
    POLICY = 0x02
    ORIGIN = 0x03
    PUBLIC_KEY = 0x04
    IS_DEFAULT = 0x05
    RETRIES = 0x06
