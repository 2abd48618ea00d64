"""Secure functions as PIV commands: what MDEncryptData protects and CardProcessEncryptedData reads.

The server turns a Cardmod.h secure-function structure (minidriver-spec.md §5.2) into plain
PIV commands, each with a role (:class:`~.ski_wire.Role`), before SCP03 protects them:

* CSF_IMPORT_KEYPAIR -> IMPORT ASYMMETRIC KEY (YubiKey INS FE, emulator/applets/piv/EXTENSIONS.md)
  into the slot of container ``bContainerIndex`` (piv_map's fixed index: 0=9A 1=9C 2=9D 3=9E
  4..23=82..95), command-chained in blocks that still fit a short APDU once C-DECRYPTION pads
  them. The container map entry is derived from the slot (piv_map reads the key's metadata), so
  the key *is* the entry; ``PinId`` becomes the key's PIN policy (tag AA): ROLE_EVERYONE ->
  never, ROLE_USER -> once, PIN_SIGN (3) -> always. The card accepts the import because the
  session has issuer rights (emulator/applets/piv/scp_rights.py).
* CSF_CHANGE_AUTHENTICATOR -> CHANGE REFERENCE DATA (PIN_CHANGE_FLAG_CHANGEPIN: ROLE_USER = PIN
  80 or PIN_PUK (4) = PUK 81, authenticating = target) or RESET RETRY COUNTER
  (PIN_CHANGE_FLAG_UNBLOCK: PIN_PUK unblocks ROLE_USER), then GET METADATA of the authenticating
  reference (a query) for the tries left.
* CSF_AUTHENTICATE -> VERIFY of PIN 80 (ROLE_USER or PIN_SIGN), then GET METADATA 80.

Every parameter is checked here, before the MAC chain advances: a refused structure leaves the
session usable.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..iso7816 import encode_tlv, parse_tlvs
from ..piv import RSA_BITS, Algorithm, PinPolicy
from . import blobs
from .codes import MinidriverError, ScardCode
from .piv_map import PIN_PUK, PIN_SIGN, slot_for_index
from .ski_wire import CardAuthenticate, CardChangeAuthenticator, CardImportKeyPair, Function, Role, bad
from .types import KeySpec, PinId

__all__ = ["MAX_PLAIN_BLOCK", "PlainCommand", "attempts_from_metadata", "build"]

#: the most command data that still fits a short APDU after M2 padding and the C-MAC (gp-scp.md §0)
MAX_PLAIN_BLOCK = 239
PIN_LEN = 8
INS_VERIFY, INS_CHANGE, INS_RESET_RETRY, INS_IMPORT, INS_METADATA = 0x20, 0x24, 0x2C, 0xFE, 0xF7
REF_PIN, REF_PUK = 0x80, 0x81
TAG_PIN_POLICY, TAG_RETRIES = 0xAA, 0x06
PIN_CHANGE_FLAG_UNBLOCK = 0x01
PIN_CHANGE_FLAG_CHANGEPIN = 0x02
CARD_PIN_SILENT_CONTEXT = 0x40
CARD_AUTHENTICATE_GENERATE_SESSION_PIN = 0x10000000
CARD_AUTHENTICATE_SESSION_PIN = 0x20000000

PlainCommand = tuple[Role, bytes]

_POLICY_OF_PIN = {PinId.ROLE_EVERYONE: PinPolicy.NEVER, PinId.ROLE_USER: PinPolicy.ONCE, PIN_SIGN: PinPolicy.ALWAYS}
_EC_SPECS = {
    KeySpec.AT_ECDSA_P256: ("secp256r1", False),
    KeySpec.AT_ECDSA_P384: ("secp384r1", False),
    KeySpec.AT_ECDHE_P256: ("secp256r1", True),
    KeySpec.AT_ECDHE_P384: ("secp384r1", True),
}
_RSA_SPECS = (KeySpec.AT_KEYEXCHANGE, KeySpec.AT_SIGNATURE)
_UNSUPPORTED_SPECS = (KeySpec.AT_ECDSA_P521, KeySpec.AT_ECDHE_P521)


def _apdu(
    channel: int, ins: int, p1: int, p2: int, data: bytes = b"", *, le: bool = False, chain: bool = False
) -> bytes:
    cla = channel | (0x10 if chain else 0x00)
    out = bytes((cla, ins, p1, p2))
    if data:
        out += bytes((len(data),)) + data
    return out + (b"\x00" if le else b"")


def _pin_block(value: bytes, what: str) -> bytes:
    if not 1 <= len(value) <= PIN_LEN or b"\xff" in value:
        raise bad(f"{what} must be 1-{PIN_LEN} bytes")
    return value.ljust(PIN_LEN, b"\xff")


def _metadata_query(channel: int, ref: int) -> PlainCommand:
    return Role.QUERY, _apdu(channel, INS_METADATA, 0x00, ref, le=True)


# -- CSF_IMPORT_KEYPAIR ---------------------------------------------------------------------------
def _private_key(spec: int, blob: bytes, size: int) -> tuple[int, bytes]:
    """(PIV algorithm, key component TLVs) of the key blob, checked against dwKeySpec/dwKeySize."""
    try:
        if spec in _RSA_SPECS:
            key, _ = blobs.parse_rsa_private_blob(blob)
            return _rsa_components(key, size)
        if spec in _EC_SPECS:
            ec_key, kind = blobs.parse_ecc_private_blob(blob)
            curve, ecdh = _EC_SPECS[KeySpec(spec)]
            if kind.curve.name != curve or kind.ecdh != ecdh:
                raise bad(f"key blob ({kind.curve.name}, {'ECDH' if kind.ecdh else 'ECDSA'}) does not match dwKeySpec")
            return _ec_components(ec_key, size)
    except blobs.BlobError as exc:
        raise bad(f"key blob: {exc}") from None
    if spec in _UNSUPPORTED_SPECS:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "a PIV card holds no P-521 key")
    raise bad(f"dwKeySpec {spec} is not an AT_* value")


def _rsa_components(key: rsa.RSAPrivateKey, size: int) -> tuple[int, bytes]:
    bits = key.key_size
    algorithm = next((alg for alg, b in RSA_BITS.items() if b == bits), None)
    if algorithm is None:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"a PIV card holds no {bits}-bit RSA key")
    if size != bits:
        raise bad(f"dwKeySize {size} but the blob holds a {bits}-bit key")
    n = key.private_numbers()
    half = bits // 16
    parts = (n.p, n.q, n.dmp1, n.dmq1, n.iqmp)
    return algorithm, b"".join(
        encode_tlv(tag, v.to_bytes(half, "big")) for tag, v in zip(range(1, 6), parts, strict=True)
    )


def _ec_components(key: ec.EllipticCurvePrivateKey, size: int) -> tuple[int, bytes]:
    bits = key.curve.key_size
    if size != bits:
        raise bad(f"dwKeySize {size} but the blob holds a {bits}-bit EC key")
    algorithm = Algorithm.ECCP256 if bits == 256 else Algorithm.ECCP384
    return algorithm, encode_tlv(0x06, key.private_numbers().private_value.to_bytes(bits // 8, "big"))


def _import(data: bytes, channel: int) -> list[PlainCommand]:
    req = CardImportKeyPair.parse(data)
    slot = slot_for_index(req.bContainerIndex)
    if slot is None:
        raise MinidriverError(ScardCode.SCARD_E_NO_KEY_CONTAINER, f"container index {req.bContainerIndex}")
    policy = _POLICY_OF_PIN.get(req.PinId)
    if policy is None:
        raise bad(f"PinId {req.PinId}: a PIV key is bound to ROLE_EVERYONE, ROLE_USER or PIN_SIGN (3)")
    algorithm, components = _private_key(req.dwKeySpec, req.pbInput, req.dwKeySize)
    body = components + encode_tlv(TAG_PIN_POLICY, bytes((policy,)))
    blocks = [body[i : i + MAX_PLAIN_BLOCK] for i in range(0, len(body), MAX_PLAIN_BLOCK)]
    return [
        (Role.ACTION, _apdu(channel, INS_IMPORT, algorithm, slot, block, chain=i < len(blocks) - 1))
        for i, block in enumerate(blocks)
    ]


# -- CSF_CHANGE_AUTHENTICATOR -----------------------------------------------------------------------
def _change(data: bytes, channel: int) -> list[PlainCommand]:
    req = CardChangeAuthenticator.parse(data)
    flags = req.dwFlags & ~CARD_PIN_SILENT_CONTEXT
    if req.cRetryCount != 0:
        raise bad("cRetryCount: a PIV card cannot change its retry limit this way")
    refs = {PinId.ROLE_USER: REF_PIN, PIN_SIGN: REF_PIN, PIN_PUK: REF_PUK}
    if flags == PIN_CHANGE_FLAG_CHANGEPIN:
        if req.dwAuthenticatingPinId != req.dwTargetPinId:
            raise bad("a PIN change authenticates with the PIN it changes")
        if req.dwAuthenticatingPinId == PinId.ROLE_ADMIN:
            raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "the 9B management key is not changed by SKI")
        ref = refs.get(req.dwAuthenticatingPinId)
        if ref is None:
            raise bad(f"PIN id {req.dwAuthenticatingPinId} is not a PIN of this card")
        body = _pin_block(req.pbAuthenticatingPinData, "current PIN") + _pin_block(req.pbTargetData, "new PIN")
        action = _apdu(channel, INS_CHANGE, 0x00, ref, body)
    elif flags == PIN_CHANGE_FLAG_UNBLOCK:
        if req.dwAuthenticatingPinId != PIN_PUK or req.dwTargetPinId not in (PinId.ROLE_USER, PIN_SIGN):
            raise bad("unblock: the PUK (PIN id 4) unblocks the user PIN")
        ref = REF_PUK
        body = _pin_block(req.pbAuthenticatingPinData, "PUK") + _pin_block(req.pbTargetData, "new PIN")
        action = _apdu(channel, INS_RESET_RETRY, 0x00, REF_PIN, body)
    else:
        raise bad(f"dwFlags {req.dwFlags:#x}: PIN_CHANGE_FLAG_UNBLOCK or _CHANGEPIN")
    return [(Role.ACTION, action), _metadata_query(channel, ref)]


# -- CSF_AUTHENTICATE ---------------------------------------------------------------------------------
def _authenticate(data: bytes, channel: int) -> list[PlainCommand]:
    req = CardAuthenticate.parse(data)
    session_flags = req.dwFlags & (CARD_AUTHENTICATE_GENERATE_SESSION_PIN | CARD_AUTHENTICATE_SESSION_PIN)
    if req.dwFlags & ~(
        CARD_PIN_SILENT_CONTEXT | CARD_AUTHENTICATE_GENERATE_SESSION_PIN | CARD_AUTHENTICATE_SESSION_PIN
    ):
        raise bad(f"dwFlags {req.dwFlags:#x}")
    if session_flags == CARD_AUTHENTICATE_GENERATE_SESSION_PIN | CARD_AUTHENTICATE_SESSION_PIN:
        raise bad("GENERATE_SESSION_PIN and SESSION_PIN together")
    if req.PinId not in (PinId.ROLE_USER, PIN_SIGN):
        raise bad(f"PinId {req.PinId}: only the PIV PIN is verified (ROLE_USER or PIN_SIGN)")
    if session_flags:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "session PINs are not offered")
    action = _apdu(channel, INS_VERIFY, 0x00, REF_PIN, _pin_block(req.pbPinData, "PIN"))
    return [(Role.ACTION, action), _metadata_query(channel, REF_PIN)]


_BUILDERS = {
    Function.IMPORT_KEYPAIR: _import,
    Function.CHANGE_AUTHENTICATOR: _change,
    Function.AUTHENTICATE: _authenticate,
}


def build(function: Function, data: bytes, channel: int) -> list[PlainCommand]:
    """The plain commands of ``function`` for a session on ``channel`` (all checks done here)."""
    return _BUILDERS[function](data, channel)


def attempts_from_metadata(data: bytes) -> int | None:
    """Tries left from a GET METADATA answer (tag 06: total, remaining), None if unreadable."""
    try:
        for item in parse_tlvs(data):
            if item.tag == TAG_RETRIES and len(item.value) == 2:
                return item.value[1]
    except ValueError:
        return None
    return None
