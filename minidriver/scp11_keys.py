"""SCP11 key management commands, host side (Amd F; yubikit ``SecurityDomainSession`` is the reference client).

Pure builders and parsers; :class:`minidriver.gp.GPSession` sends them inside an
authenticated session (SCP03, or SCP11a: the OCE must be authenticated).

* PUT KEY, P2 = KID: ``KVN || B1 L AES-CBC(DEK, IV 0, d) || F0 01 00 || 00`` for an
  SD key pair (KID 11/13/15; DEK = static DEK under SCP03, S-DEK under SCP11),
  ``KVN || B0 41 point || F0 01 00 || 00`` for a CA-KLOC public key (KID 10, 20-2F);
  the card answers ``KVN``.
* GENERATE KEY ``80 F1 replace-KVN KID  KVN F0 01 00`` -> ``B0 41 point``.
* STORE DATA (P1 90): ``A6{83 KID KVN} BF21{certificates}``, ``A6{83 ref} 70{93 serial}*``,
  ``A6{80 klcc, 42 SKI, 83 ref}``.
* GET DATA BF21 with ``A6{83 ref}``: the certificates, concatenated, leaf last.
* DELETE ``D0 KID`` and/or ``D2 KVN``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import minidriver.gpcrypto as gpcrypto
from minidriver.iso7816 import BadResponseError, CommandAPDU, encode_tlv, parse_tlvs

__all__ = [
    "CA_KIDS",
    "SD_KIDS",
    "delete_key_command",
    "generate_key_command",
    "get_certificates_command",
    "parse_certificates",
    "parse_generated_key",
    "put_ec_key_command",
    "store_allow_list_command",
    "store_ca_issuer_command",
    "store_certificates_command",
]

CLA_GP = 0x80
CURVE_P256 = 0x00  #: key parameter reference of secp256r1 (yubikit ``Curve.SECP256R1``)
SD_KIDS = frozenset({0x11, 0x13, 0x15})
CA_KIDS = frozenset({0x10, *range(0x20, 0x30)})
STORE_DATA_LAST_BER = 0x90  #: STORE DATA P1: last block, BER-TLV (GPCS §11.11.2.1)


class INS(IntEnum):
    GET_DATA = 0xCA
    PUT_KEY = 0xD8
    STORE_DATA = 0xE2
    DELETE = 0xE4
    GENERATE_KEY = 0xF1


class Tag(IntEnum):
    ECC_PUBLIC_KEY = 0xB0
    ECC_PRIVATE_KEY = 0xB1
    ECC_KEY_PARAMETERS = 0xF0
    CONTROL_REFERENCE = 0xA6
    KEY_REFERENCE = 0x83
    KLCC_FLAG = 0x80
    ISSUER_ID = 0x42
    CERTIFICATE_STORE = 0xBF21
    ALLOW_LIST = 0x70
    SERIAL = 0x93
    KEY_ID = 0xD0
    KEY_VERSION = 0xD2


def _ref(kid: int, kvn: int) -> bytes:
    if not 0 <= kid <= 0xFF or not 0 <= kvn <= 0xFF:
        raise ValueError("kid and kvn are bytes")
    return encode_tlv(Tag.CONTROL_REFERENCE, encode_tlv(Tag.KEY_REFERENCE, bytes((kid, kvn))))


def _check_p256(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"SCP11 keys are P-256 here, got {key.curve.name}")


def put_ec_key_command(
    kid: int,
    kvn: int,
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey,
    *,
    dek: bytes | None = None,
    replace_kvn: int = 0,
    encrypt: Callable[[bytes], bytes] | None = None,
) -> CommandAPDU:
    """PUT KEY of one SCP11 key: a private key (SD key pair) or a CA public key.

    The private key is encrypted AES-CBC, IV 0, under ``dek``, or by ``encrypt``
    (a host's ``dek_encrypt``: the session's DEK without handing it out).
    """
    if not 0x01 <= kvn <= 0x7F:
        raise ValueError(f"kvn must be 0x01-0x7F, got 0x{kvn:02X}")
    _check_p256(key)
    params = encode_tlv(Tag.ECC_KEY_PARAMETERS, bytes((CURVE_P256,))) + b"\x00"  # no KCV
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if kid not in SD_KIDS:
            raise ValueError(f"KID 0x{kid:02X} does not take a private key (SD keys are 11, 13, 15)")
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        if encrypt is not None:
            wrapped = encrypt(scalar)
        elif dek is not None:
            wrapped = gpcrypto.aes_cbc_encrypt(dek, bytes(16), scalar)
        else:
            raise ValueError("a private key travels under the session's DEK: pass dek or encrypt")
        body = encode_tlv(Tag.ECC_PRIVATE_KEY, wrapped)
    else:
        if kid not in CA_KIDS:
            raise ValueError(f"KID 0x{kid:02X} does not take a public key (CA keys are 10, 20-2F)")
        point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        body = encode_tlv(Tag.ECC_PUBLIC_KEY, point)
    return CommandAPDU(CLA_GP, INS.PUT_KEY, replace_kvn, kid, bytes((kvn,)) + body + params, 256)


def generate_key_command(kid: int, kvn: int, *, replace_kvn: int = 0) -> CommandAPDU:
    """GENERATE KEY of an SD key pair (the YubiKey's command; yubikit ``generate_ec_key``)."""
    if kid not in SD_KIDS:
        raise ValueError(f"KID 0x{kid:02X} is not an SCP11 key pair (11, 13, 15)")
    data = bytes((kvn,)) + encode_tlv(Tag.ECC_KEY_PARAMETERS, bytes((CURVE_P256,)))
    return CommandAPDU(CLA_GP, INS.GENERATE_KEY, replace_kvn, kid, data, 256)


def parse_generated_key(data: bytes) -> ec.EllipticCurvePublicKey:
    items = parse_tlvs(data)
    if len(items) != 1 or items[0].tag != Tag.ECC_PUBLIC_KEY:
        raise BadResponseError("GENERATE KEY: expected B0 with the public point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), items[0].value)
    except ValueError:
        raise BadResponseError("GENERATE KEY: not a P-256 point") from None


def store_certificates_command(kid: int, kvn: int, certificates: Iterable[bytes]) -> CommandAPDU:
    """STORE DATA of the certificate chain of key ``kid``/``kvn`` (DER, leaf last)."""
    body = encode_tlv(Tag.CERTIFICATE_STORE, b"".join(certificates))
    return CommandAPDU(CLA_GP, INS.STORE_DATA, STORE_DATA_LAST_BER, 0x00, _ref(kid, kvn) + body)


def store_allow_list_command(kid: int, kvn: int, serials: Iterable[int]) -> CommandAPDU:
    """STORE DATA of the OCE certificate serial numbers key ``kid``/``kvn`` accepts (none: any)."""
    entries = b""
    for serial in serials:
        raw = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")
        entries += encode_tlv(Tag.SERIAL, b"\x00" + raw if raw[0] & 0x80 else raw)
    return CommandAPDU(
        CLA_GP, INS.STORE_DATA, STORE_DATA_LAST_BER, 0x00, _ref(kid, kvn) + encode_tlv(Tag.ALLOW_LIST, entries)
    )


def store_ca_issuer_command(kid: int, kvn: int, ski: bytes, *, klcc: bool = False) -> CommandAPDU:
    """STORE DATA of the CA issuer identifier (SKI) of key ``kid``/``kvn``: KLOC (00) or KLCC (01)."""
    crt = (
        encode_tlv(Tag.KLCC_FLAG, b"\x01" if klcc else b"\x00")
        + encode_tlv(Tag.ISSUER_ID, ski)
        + encode_tlv(Tag.KEY_REFERENCE, bytes((kid, kvn)))
    )
    return CommandAPDU(CLA_GP, INS.STORE_DATA, STORE_DATA_LAST_BER, 0x00, encode_tlv(Tag.CONTROL_REFERENCE, crt))


def get_certificates_command(kid: int, kvn: int) -> CommandAPDU:
    """GET DATA BF21 for key ``kid``/``kvn``."""
    return CommandAPDU(CLA_GP, INS.GET_DATA, 0xBF, 0x21, _ref(kid, kvn), 256)


def parse_certificates(data: bytes) -> list[bytes]:
    """The DER certificates of a GET DATA BF21 answer, leaf last."""
    return [bytes(t) for t in parse_tlvs(data)]


def delete_key_command(*, kid: int | None = None, kvn: int | None = None) -> CommandAPDU:
    """DELETE of SCP11 keys by KID and/or KVN (GPCS §11.2.2.3)."""
    if kid is None and kvn is None:
        raise ValueError("name a kid, a kvn or both")
    data = b""
    if kid is not None:
        data += encode_tlv(Tag.KEY_ID, bytes((kid,)))
    if kvn is not None:
        data += encode_tlv(Tag.KEY_VERSION, bytes((kvn,)))
    return CommandAPDU(CLA_GP, INS.DELETE, 0x00, 0x00, data, 256)
