"""PivSession: the PIV card edge (NIST SP 800-73-4 part 2) and the YubiKey extensions, host side.

What the Cardmod layer calls. Each method sends one command (two for the
management-key handshakes) through :class:`~minidriver.protocol.SmartCardProtocol`
and speaks in PIV terms: slots, algorithms, objects, PINs. Failures are
:class:`~minidriver.iso7816.ApduError` carrying the SW; a wrong PIN is
:class:`InvalidPinError` with the tries left, a blocked one :class:`PinBlockedError`.
PINs, keys and plaintexts are never logged.
"""

from __future__ import annotations

import gzip
import hmac
import logging
import os
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .iso7816 import (
    MAX_EXTENDED_NE,
    SW,
    ApduError,
    BadResponseError,
    CommandAPDU,
    encode_tlv,
    find_tlv,
    parse_tlvs,
    retries_left,
)
from .pcsc import Connection
from .protocol import SCPHostAny, SmartCardProtocol
from .scp11 import SCP11Host, SCP11Params

__all__ = [
    "MANAGEMENT_ALG_TDES",
    "PIV_AID",
    "Algorithm",
    "InvalidPinError",
    "KeySlot",
    "ObjectId",
    "PinBlockedError",
    "PinPolicy",
    "PivSession",
    "PublicKey",
    "SlotMetadata",
    "TouchPolicy",
    "certificate_object",
]

log = logging.getLogger(__name__)

#: PIV Card Application AID, version 01 00 (SP 800-73-4 part 1 §2.2)
PIV_AID = bytes.fromhex("A000000308000010000100")
PIN_LEN = 8  #: PIN and PUK travel padded with FF to 8 bytes (part 2 §2.4.3)
PIN_PAD = b"\xff"
ALL_DATA_P1P2 = (0x3F, 0xFF)  #: GET/PUT DATA: the current DF (part 2 §3.1.2)
MGMT_REF = 0x9B  #: the PIV Card Application Administration Key
RESET_STATUS_P1 = 0xFF  #: VERIFY P1 FF: reset the PIN's security status (part 2 §3.2.1)
CERT_INFO_GZIP = 0x01  #: CertInfo b1: certificate compressed (part 1 Table 10 note)
EC_SCALAR_LEN = {0x11: 32, 0x14: 48}
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class INS(IntEnum):
    """PIV card edge (part 2 §3) and YubiKey extensions."""

    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x47
    GENERAL_AUTHENTICATE = 0x87
    SELECT = 0xA4
    GET_DATA = 0xCB
    PUT_DATA = 0xDB
    GET_METADATA = 0xF7
    GET_SERIAL = 0xF8
    GET_VERSION = 0xFD
    IMPORT_ASYMMETRIC_KEY = 0xFE
    SET_MANAGEMENT_KEY = 0xFF


class Tag(IntEnum):
    """BER-TLV tags of PIV commands and responses (part 2 §3, part 1 Table 10)."""

    TAG_LIST = 0x5C
    DATA = 0x53
    DISCOVERY = 0x7E
    DYNAMIC_AUTH = 0x7C
    WITNESS = 0x80
    CHALLENGE = 0x81
    RESPONSE = 0x82
    EXPONENTIATION = 0x85
    ALGORITHM_TEMPLATE = 0xAC
    ALGORITHM = 0x80
    PUBLIC_KEY = 0x7F49
    RSA_MODULUS = 0x81
    RSA_EXPONENT = 0x82
    EC_POINT = 0x86
    CERTIFICATE = 0x70
    CERT_INFO = 0x71
    LRC = 0xFE
    PIN_POLICY = 0xAA
    TOUCH_POLICY = 0xAB


class KeySlot(IntEnum):
    """Key references of asymmetric keys (part 1 Table 4b)."""

    AUTHENTICATION = 0x9A
    SIGNATURE = 0x9C
    KEY_MANAGEMENT = 0x9D
    CARD_AUTH = 0x9E
    RETIRED1 = 0x82
    RETIRED2 = 0x83
    RETIRED3 = 0x84
    RETIRED4 = 0x85
    RETIRED5 = 0x86
    RETIRED6 = 0x87
    RETIRED7 = 0x88
    RETIRED8 = 0x89
    RETIRED9 = 0x8A
    RETIRED10 = 0x8B
    RETIRED11 = 0x8C
    RETIRED12 = 0x8D
    RETIRED13 = 0x8E
    RETIRED14 = 0x8F
    RETIRED15 = 0x90
    RETIRED16 = 0x91
    RETIRED17 = 0x92
    RETIRED18 = 0x93
    RETIRED19 = 0x94
    RETIRED20 = 0x95


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


MANAGEMENT_ALG_TDES = Algorithm.TDES
RSA_BITS = {Algorithm.RSA1024: 1024, Algorithm.RSA2048: 2048, Algorithm.RSA3072: 3072, Algorithm.RSA4096: 4096}
EC_CURVES: dict[int, ec.EllipticCurve] = {Algorithm.ECCP256: ec.SECP256R1(), Algorithm.ECCP384: ec.SECP384R1()}
MGMT_KEY_LEN = {Algorithm.TDES: 24, Algorithm.AES128: 16, Algorithm.AES192: 24, Algorithm.AES256: 32}


class ObjectId(IntEnum):
    """Data object tags (part 1 Table 3)."""

    CARD_AUTH_CERT = 0x5FC101
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
    RETIRED1_CERT = 0x5FC10D
    DISCOVERY = 0x7E


def certificate_object(slot: int) -> int:
    """The data object holding the certificate of ``slot`` (part 1 Table 4b)."""
    fixed = {
        KeySlot.AUTHENTICATION: ObjectId.AUTHENTICATION_CERT,
        KeySlot.SIGNATURE: ObjectId.SIGNATURE_CERT,
        KeySlot.KEY_MANAGEMENT: ObjectId.KEY_MANAGEMENT_CERT,
        KeySlot.CARD_AUTH: ObjectId.CARD_AUTH_CERT,
    }
    if slot in fixed:
        return int(fixed[KeySlot(slot)])
    if KeySlot.RETIRED1 <= slot <= KeySlot.RETIRED20:
        return ObjectId.RETIRED1_CERT + (slot - KeySlot.RETIRED1)
    raise ValueError(f"slot must be a PIV key reference (9A, 9C, 9D, 9E, 82-95), got {slot:#x}")


class PinPolicy(IntEnum):
    """YubiKey tag AA: when a private key needs the PIN."""

    DEFAULT = 0x00
    NEVER = 0x01
    ONCE = 0x02
    ALWAYS = 0x03


class TouchPolicy(IntEnum):
    """YubiKey tag AB."""

    DEFAULT = 0x00
    NEVER = 0x01
    ALWAYS = 0x02
    CACHED = 0x03


class InvalidPinError(ApduError):
    """Wrong PIN or PUK (63Cx): ``attempts_remaining`` tries left."""

    def __init__(self, attempts_remaining: int, sw: int | None = None, detail: str = "wrong PIN") -> None:
        super().__init__(0x63C0 | attempts_remaining if sw is None else sw, detail=detail)
        self.attempts_remaining = attempts_remaining


class PinBlockedError(ApduError):
    """The PIN (or PUK) is blocked (6983)."""

    def __init__(self, sw: int = SW.AUTH_METHOD_BLOCKED, detail: str = "PIN blocked") -> None:
        super().__init__(sw, detail=detail)
        self.attempts_remaining = 0


@dataclass(frozen=True, slots=True)
class SlotMetadata:
    """YubiKey GET METADATA (INS F7) of a key, a PIN/PUK or the management key."""

    key_ref: int
    algorithm: int  #: FF for a PIN/PUK
    pin_policy: int | None = None
    touch_policy: int | None = None
    generated: bool | None = None  #: origin: on card (True) or imported
    public_key: PublicKey | None = None
    is_default: bool | None = None
    retries_total: int | None = None
    retries_remaining: int | None = None


def _pin_block(value: bytes, what: str = "PIN") -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}")
    if not 1 <= len(value) <= PIN_LEN:
        raise ValueError(f"{what} must be 1-{PIN_LEN} bytes, got {len(value)}")
    return value.ljust(PIN_LEN, PIN_PAD)


def _tag_bytes(tag: int) -> bytes:
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big")


def _one(data: bytes, tag: int, what: str) -> bytes:
    found = find_tlv(data, tag)
    if found is None:
        raise BadResponseError(f"{what}: no tag {tag:X} in the card's answer")
    return found.value


def parse_public_key(algorithm: int, encoded: bytes) -> PublicKey:
    """Public key data objects (part 2 Table 10): 81 modulus + 82 exponent, or 86 point."""
    items = {t.tag: t.value for t in parse_tlvs(encoded)}
    try:
        if algorithm in EC_CURVES:
            return ec.EllipticCurvePublicKey.from_encoded_point(EC_CURVES[algorithm], items[Tag.EC_POINT])
        if algorithm in RSA_BITS:
            n, e = (int.from_bytes(items[t], "big") for t in (Tag.RSA_MODULUS, Tag.RSA_EXPONENT))
            return rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError) as exc:
        raise BadResponseError(f"public key of algorithm {algorithm:02X} does not decode: {exc}") from None
    raise ValueError(f"algorithm {algorithm:02X} is not an asymmetric PIV algorithm")


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        for alg, bits in RSA_BITS.items():
            if bits == key.key_size:
                return alg
    elif isinstance(key.curve, ec.SECP256R1):
        return Algorithm.ECCP256
    elif isinstance(key.curve, ec.SECP384R1):
        return Algorithm.ECCP384
    raise ValueError(f"a PIV card cannot hold this key ({type(key).__name__})")


def _mgmt_cipher(algorithm: int, key: bytes) -> Cipher[modes.ECB]:
    if algorithm not in MGMT_KEY_LEN:
        raise ValueError(f"management key algorithm must be TDES or AES, got {algorithm:02X}")
    if len(key) != MGMT_KEY_LEN[Algorithm(algorithm)]:
        raise ValueError(f"a {Algorithm(algorithm).name} management key has {MGMT_KEY_LEN[Algorithm(algorithm)]} bytes")
    algo = TripleDES(key) if algorithm == Algorithm.TDES else algorithms.AES(key)
    return Cipher(algo, modes.ECB())


def _ecb(cipher: Cipher[modes.ECB], data: bytes, *, decrypt: bool = False) -> bytes:
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def _advertised_algorithms(select_response: bytes) -> tuple[int, ...] | None:
    """Cryptographic algorithms of the SELECT answer (part 2 §3.1.1, Table 3: 61 / AC / 80)."""
    try:
        template = find_tlv(select_response, 0x61)
        algorithms_tlv = find_tlv(template.value, 0xAC) if template is not None else None
        items = parse_tlvs(algorithms_tlv.value) if algorithms_tlv is not None else None
    except BadResponseError:
        return None
    if items is None:
        return None
    return tuple(t.value[0] for t in items if t.tag == 0x80 and len(t.value) == 1)


class PivSession:
    """A PIV Card Application, selected on ``connection`` (optionally over SCP03/SCP02 or SCP11).

    ``scp``: an SCP03/SCP02 host (or an :class:`~minidriver.scp11.SCP11Host`);
    ``scp11``: SCP11 parameters, the session opens SCP11a/b/c with them (GPCS Amendment F).
    """

    def __init__(
        self,
        connection: Connection,
        *,
        scp: SCPHostAny | None = None,
        scp_kvn: int = 0,
        scp_level: int | None = None,
        scp11: SCP11Params | None = None,
        extended: bool | None = None,
    ) -> None:
        """``extended``: None reads extended-length support from the card's ATR (card
        capabilities, ISO 7816-4 §8.1.1.2.7); False always chains and pages with 61xx."""
        if scp is not None and scp11 is not None:
            raise ValueError("give scp or scp11, not both")
        self.protocol = SmartCardProtocol(connection, extended=extended)
        self.select()
        if scp is not None:
            self.protocol.open_scp(scp, kvn=scp_kvn, level=scp_level)
        elif scp11 is not None:
            self.protocol.open_scp11(SCP11Host(scp11))
        self.version = self._get_version()

    # -- application ----------------------------------------------------------------
    def select(self) -> None:
        """SELECT the PIV AID (part 2 §3.1.1); ApduError if the card has no PIV application."""
        self.protocol.close_scp()  # a SELECT ends any secure channel on the card
        data = self.protocol.send(CommandAPDU(0x00, INS.SELECT, 0x04, 0x00, PIV_AID, 256), detail="SELECT PIV")
        #: algorithm ids of the application property template (61 { AC { 80 ... } }), None if absent
        self.algorithms = _advertised_algorithms(data)
        log.debug("PIV selected")

    def _get_version(self) -> tuple[int, int, int] | None:
        resp = self.protocol.transceive(CommandAPDU(0x00, INS.GET_VERSION, 0, 0))
        return (resp.data[0], resp.data[1], resp.data[2]) if resp.ok and len(resp.data) == 3 else None

    def get_serial(self) -> int | None:
        """YubiKey GET SERIAL (INS F8); None if the card does not answer it."""
        resp = self.protocol.transceive(CommandAPDU(0x00, INS.GET_SERIAL, 0, 0))
        return int.from_bytes(resp.data, "big") if resp.ok and resp.data else None

    # -- PIN and PUK (part 2 §3.2.1-3.2.3) ------------------------------------------------
    def _pin_command(self, cmd: CommandAPDU, what: str) -> None:
        resp = self.protocol.transceive(cmd)
        if resp.sw == SW.OK:
            return
        if (left := retries_left(resp.sw)) is not None:
            raise InvalidPinError(left, resp.sw, f"{what}: wrong value")
        if resp.sw == SW.AUTH_METHOD_BLOCKED:
            raise PinBlockedError(resp.sw, f"{what}: blocked")
        raise ApduError(resp.sw, resp.data, what)

    def verify_pin(self, pin: bytes) -> None:
        log.debug("Verifying PIN")
        self._pin_command(CommandAPDU(0x00, INS.VERIFY, 0x00, 0x80, _pin_block(pin)), "VERIFY PIN")

    def get_pin_attempts(self) -> int:
        """Tries left: VERIFY without data spends none (63Cx). When the PIN is verified (9000)
        the count comes from metadata, or -1 if the card has none."""
        resp = self.protocol.transceive(CommandAPDU(0x00, INS.VERIFY, 0x00, 0x80))
        if (left := retries_left(resp.sw)) is not None:
            return left
        if resp.sw == SW.AUTH_METHOD_BLOCKED:
            return 0
        if resp.sw != SW.OK:
            raise ApduError(resp.sw, resp.data, "VERIFY (status)")
        try:
            meta = self.get_slot_metadata(0x80)
        except ApduError:
            return -1
        return meta.retries_remaining if meta is not None and meta.retries_remaining is not None else -1

    def get_puk_attempts(self) -> int | None:
        meta = self.get_slot_metadata(0x81)
        return None if meta is None else meta.retries_remaining

    def unverify_pin(self) -> None:
        self.protocol.send(CommandAPDU(0x00, INS.VERIFY, RESET_STATUS_P1, 0x80), detail="VERIFY (reset)")

    def _change(self, ins: int, ref: int, old: bytes, new: bytes, what: str) -> None:
        data = _pin_block(old, what) + _pin_block(new, what)
        self._pin_command(CommandAPDU(0x00, ins, 0x00, ref, data), what)

    def change_pin(self, old: bytes, new: bytes) -> None:
        log.debug("Changing PIN")
        self._change(INS.CHANGE_REFERENCE_DATA, 0x80, old, new, "CHANGE REFERENCE DATA (PIN)")

    def change_puk(self, old: bytes, new: bytes) -> None:
        log.debug("Changing PUK")
        self._change(INS.CHANGE_REFERENCE_DATA, 0x81, old, new, "CHANGE REFERENCE DATA (PUK)")

    def unblock_pin(self, puk: bytes, new_pin: bytes) -> None:
        log.debug("Unblocking PIN with the PUK")
        self._change(INS.RESET_RETRY_COUNTER, 0x80, puk, new_pin, "RESET RETRY COUNTER")

    # -- management key 9B (part 2 Appendix A.1-A.2) ------------------------------------------
    def _ga(self, algorithm: int, ref: int, body: bytes, what: str) -> bytes:
        cmd = CommandAPDU(0x00, INS.GENERAL_AUTHENTICATE, algorithm, ref, encode_tlv(Tag.DYNAMIC_AUTH, body), MAX_EXTENDED_NE)
        data = self.protocol.send(cmd, detail=what)
        return _one(data, Tag.DYNAMIC_AUTH, what) if data else b""

    def authenticate(self, key: bytes, algorithm: int = MANAGEMENT_ALG_TDES) -> None:
        """Mutual authentication: decrypt the card's witness, challenge the card, check its answer."""
        cipher = _mgmt_cipher(algorithm, key)
        log.debug("Authenticating with the management key")
        inner = self._ga(algorithm, MGMT_REF, encode_tlv(Tag.WITNESS), "GENERAL AUTHENTICATE (witness)")
        witness = _one(inner, Tag.WITNESS, "GENERAL AUTHENTICATE")
        challenge = os.urandom(len(witness))
        body = encode_tlv(Tag.WITNESS, _ecb(cipher, witness, decrypt=True)) + encode_tlv(Tag.CHALLENGE, challenge)
        inner = self._ga(algorithm, MGMT_REF, body, "GENERAL AUTHENTICATE (mutual)")
        answer = _one(inner, Tag.RESPONSE, "GENERAL AUTHENTICATE")
        if not hmac.compare_digest(answer, _ecb(cipher, challenge)):
            raise BadResponseError("the card's answer to our challenge is wrong: it does not hold this key")

    def get_witness(self, algorithm: int) -> bytes:
        """External authentication, step 1: the card's challenge for 9B (clear text)."""
        inner = self._ga(algorithm, MGMT_REF, encode_tlv(Tag.CHALLENGE), "GENERAL AUTHENTICATE (challenge)")
        return _one(inner, Tag.CHALLENGE, "GENERAL AUTHENTICATE")

    def respond_witness(self, algorithm: int, response: bytes) -> None:
        """External authentication, step 2: the challenge encrypted under the 9B key."""
        self._ga(algorithm, MGMT_REF, encode_tlv(Tag.RESPONSE, response), "GENERAL AUTHENTICATE (response)")

    def set_management_key(self, algorithm: int, key: bytes, *, require_touch: bool = False) -> None:
        """YubiKey SET MANAGEMENT KEY (INS FF); needs the current key authenticated."""
        _mgmt_cipher(algorithm, key)  # validates algorithm and length
        p2 = 0xFE if require_touch else 0xFF
        data = bytes((algorithm,)) + encode_tlv(MGMT_REF, key)
        self.protocol.send(CommandAPDU(0x00, INS.SET_MANAGEMENT_KEY, 0xFF, p2, data), detail="SET MANAGEMENT KEY")

    # -- data objects (part 2 §3.1.2, §3.3.2) ---------------------------------------------
    def get_data(self, object_id: int) -> bytes:
        """The content of the object (inside 53, or 7E for discovery); ApduError 6A82 if absent."""
        body = encode_tlv(Tag.TAG_LIST, _tag_bytes(object_id))
        data = self.protocol.send(CommandAPDU(0x00, INS.GET_DATA, *ALL_DATA_P1P2, body, MAX_EXTENDED_NE), detail="GET DATA")
        wrapper = Tag.DISCOVERY if object_id == ObjectId.DISCOVERY else Tag.DATA
        return _one(data, wrapper, f"GET DATA {object_id:X}")

    def put_data(self, object_id: int, data: bytes) -> None:
        """Write (or with empty ``data`` delete) an object; needs the management key."""
        if object_id == ObjectId.DISCOVERY:
            body = encode_tlv(Tag.DISCOVERY, data)
        else:
            body = encode_tlv(Tag.TAG_LIST, _tag_bytes(object_id)) + encode_tlv(Tag.DATA, data)
        self.protocol.send(CommandAPDU(0x00, INS.PUT_DATA, *ALL_DATA_P1P2, body), detail="PUT DATA")

    def get_certificate(self, slot: int) -> bytes:
        """The DER certificate of ``slot``, gunzipped when CertInfo says so."""
        items = {t.tag: t.value for t in parse_tlvs(self.get_data(certificate_object(slot)))}
        if Tag.CERTIFICATE not in items:
            raise BadResponseError(f"certificate object of slot {slot:02X} has no 70")
        info = items.get(Tag.CERT_INFO, b"\x00")
        if info and info[0] & CERT_INFO_GZIP:
            try:
                return gzip.decompress(items[Tag.CERTIFICATE])
            except (OSError, EOFError) as exc:
                raise BadResponseError(f"compressed certificate of slot {slot:02X}: {exc}") from None
        return items[Tag.CERTIFICATE]

    def put_certificate(self, slot: int, der: bytes, *, compress: bool = False) -> None:
        cert = gzip.compress(der) if compress else der
        body = (
            encode_tlv(Tag.CERTIFICATE, cert)
            + encode_tlv(Tag.CERT_INFO, bytes((CERT_INFO_GZIP if compress else 0,)))
            + encode_tlv(Tag.LRC)
        )
        self.put_data(certificate_object(slot), body)

    def delete_certificate(self, slot: int) -> None:
        self.put_data(certificate_object(slot), b"")

    # -- keys ------------------------------------------------------------------------------
    def generate_key(
        self,
        slot: int,
        algorithm: int,
        *,
        pin_policy: PinPolicy = PinPolicy.DEFAULT,
        touch_policy: TouchPolicy = TouchPolicy.DEFAULT,
    ) -> PublicKey:
        """GENERATE ASYMMETRIC KEY PAIR (part 2 §3.3.2); needs the management key."""
        template = encode_tlv(Tag.ALGORITHM, bytes((algorithm,)))
        if pin_policy:
            template += encode_tlv(Tag.PIN_POLICY, bytes((pin_policy,)))
        if touch_policy:
            template += encode_tlv(Tag.TOUCH_POLICY, bytes((touch_policy,)))
        cmd = CommandAPDU(
            0x00, INS.GENERATE_ASYMMETRIC_KEY_PAIR, 0x00, slot, encode_tlv(Tag.ALGORITHM_TEMPLATE, template), MAX_EXTENDED_NE
        )
        data = self.protocol.send(cmd, detail=f"GENERATE in slot {slot:02X}")
        return parse_public_key(algorithm, _one(data, Tag.PUBLIC_KEY, "GENERATE"))

    def put_key(
        self,
        slot: int,
        private_key: PrivateKey,
        *,
        pin_policy: PinPolicy = PinPolicy.DEFAULT,
        touch_policy: TouchPolicy = TouchPolicy.DEFAULT,
    ) -> None:
        """YubiKey IMPORT ASYMMETRIC KEY (INS FE): CRT components 01-05 or the EC scalar 06."""
        algorithm = algorithm_of(private_key)
        if isinstance(private_key, rsa.RSAPrivateKey):
            numbers = private_key.private_numbers()
            size = private_key.key_size // 16
            parts = (numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp)
            data = b"".join(encode_tlv(tag, v.to_bytes(size, "big")) for tag, v in enumerate(parts, start=1))
        else:
            scalar = private_key.private_numbers().private_value
            data = encode_tlv(0x06, scalar.to_bytes(EC_SCALAR_LEN[algorithm], "big"))
        if pin_policy:
            data += encode_tlv(Tag.PIN_POLICY, bytes((pin_policy,)))
        if touch_policy:
            data += encode_tlv(Tag.TOUCH_POLICY, bytes((touch_policy,)))
        cmd = CommandAPDU(0x00, INS.IMPORT_ASYMMETRIC_KEY, algorithm, slot, data)
        self.protocol.send(cmd, detail=f"IMPORT KEY into slot {slot:02X}")

    def get_slot_metadata(self, slot: int) -> SlotMetadata | None:
        """YubiKey GET METADATA (INS F7); None if the card lacks the command (6D00)."""
        resp = self.protocol.transceive(CommandAPDU(0x00, INS.GET_METADATA, 0x00, slot, ne=256))
        if resp.sw == SW.INS_NOT_SUPPORTED:
            return None
        data = resp.check(f"GET METADATA {slot:02X}")
        items = {t.tag: t.value for t in parse_tlvs(data)}
        alg = items.get(0x01, b"\xff")[0]
        policy, origin, retries = items.get(0x02, b""), items.get(0x03, b""), items.get(0x06, b"")
        public = parse_public_key(alg, items[0x04]) if 0x04 in items else None
        return SlotMetadata(
            key_ref=slot,
            algorithm=alg,
            pin_policy=policy[0] if len(policy) >= 1 else None,
            touch_policy=policy[1] if len(policy) >= 2 else None,
            generated=origin[0] == 0x01 if origin else None,
            public_key=public,
            is_default=bool(items[0x05][0]) if items.get(0x05) else None,
            retries_total=retries[0] if len(retries) == 2 else None,
            retries_remaining=retries[1] if len(retries) == 2 else None,
        )

    # -- private key operations (part 2 §3.2.4, Appendix A.3-A.5) -------------------------------
    def _private_op(self, slot: int, algorithm: int, tag: int, value: bytes, what: str) -> bytes:
        body = encode_tlv(Tag.RESPONSE) + encode_tlv(tag, value)
        return _one(self._ga(algorithm, slot, body, what), Tag.RESPONSE, what)

    def sign_raw(self, slot: int, algorithm: int, message: bytes) -> bytes:
        """RSA: the whole padded block in, the raw result out. ECDSA: the hash in, a DER signature out."""
        return self._private_op(slot, algorithm, Tag.CHALLENGE, message, f"GENERAL AUTHENTICATE (sign, {slot:02X})")

    def decrypt_raw(self, slot: int, algorithm: int, block: bytes) -> bytes:
        """RSA raw private operation on ``block`` (modulus length); padding is the caller's."""
        return self._private_op(slot, algorithm, Tag.CHALLENGE, block, f"GENERAL AUTHENTICATE (decrypt, {slot:02X})")

    def ecdh(self, slot: int, algorithm: int, peer_point: bytes) -> bytes:
        """The shared secret (x coordinate) with the peer's uncompressed point (tag 85)."""
        return self._private_op(
            slot, algorithm, Tag.EXPONENTIATION, peer_point, f"GENERAL AUTHENTICATE (ECDH, {slot:02X})"
        )

    def close(self) -> None:
        """End the secure channel, if any; the connection stays the caller's to close."""
        self.protocol.close()
