"""Card side of SCP11 (GPCS v2.3 Amendment F), the key agreement and its session. Sans-I/O.

SCP11 replaces SCP03's shared static keys by an elliptic-curve key agreement
(ECKA, BSI TR-03111 / NIST SP 800-56A) between the security domain (SD) and
the off-card entity (OCE). The OCE sends a control reference template and its
ephemeral public key; the card answers its own ephemeral public key and a
receipt::

    80 88 KVN KID  A6{90 11 pp, 95 usage, 80 88, 81 len} 5F49 ePK.OCE    (SCP11b)
    80 82 KVN KID  (same data)                                          (SCP11a/c, after
                                                                          PERFORM SECURITY OPERATION)
    <- 5F49 ePK.SD  86 receipt

Key derivation (Amd F §3.1.2 in v1.3; yubikit cites the same):

* ShSee = ECDH(eSK.SD, ePK.OCE); ShSes = ECDH(SK.SD, PK.OCE), where PK.OCE is
  the OCE's certified static key (SCP11a/c) or ePK.OCE again (SCP11b);
* ``X9.63-KDF(SHA-256, ShSee || ShSes, SharedInfo = usage || type || length)``
  gives five keys of ``length`` bytes: the receipt key, S-ENC, S-MAC, S-RMAC
  and S-DEK;
* receipt = AES-CMAC(receipt key, command data || 5F49 ePK.SD TLV).

The session then runs SCP03 secure messaging (Amd F §6.2.4-§6.2.7): the MAC
chain starts at the receipt, the encryption counter at 1, the level is C-MAC,
C-DECRYPTION, R-MAC and R-ENCRYPTION (usage 3C). :class:`SCP11Card` is that
session: an :class:`SCP03Card` opened with :meth:`SCP03Card.with_session_keys`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU, encode_tlv, parse_tlvs
from .crypto import AES_KEY_LENS, aes_cmac
from .levels import SecurityLevel
from .scp03 import SCP03Card
from .state import ChannelState

__all__ = [
    "CA_KEY_IDS",
    "FULL_LEVEL",
    "SD_KEY_IDS",
    "AuthRequest",
    "SCP11Card",
    "SCP11KeyID",
    "SCP11Tag",
    "authenticate",
    "derive_session_keys",
    "encode_point",
    "generate_key",
    "public_key_from_point",
]

SCP11_ID = 0x11  #: first byte of tag 90: the protocol
POINT_LEN = 65  #: uncompressed P-256 point (04 || X || Y)
KEY_USAGE_FULL = 0x3C  #: C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION (Amd F §7.6.2.3, yubikit sends it)
AES_KEY_TYPE = 0x88  #: key type of the session keys (GPCS table 11-16)
SESSION_KEYS = 5  #: receipt key, S-ENC, S-MAC, S-RMAC, S-DEK
FULL_LEVEL = (
    SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION | SecurityLevel.R_MAC | SecurityLevel.R_ENCRYPTION
)  #: every SCP11 session is at this level (usage 3C)


class SCP11KeyID(IntEnum):
    """Key identifiers of SCP11 keys in a security domain (Amd F §4, yubikit ``ScpKid``)."""

    OCE_CA = 0x10  #: CA-KLOC public key that issues OCE certificates (also 20-2F)
    SCP11A = 0x11  #: SD ECKA key pair for SCP11a
    SCP11B = 0x13  #: SD ECKA key pair for SCP11b
    SCP11C = 0x15  #: SD ECKA key pair for SCP11c


SD_KEY_IDS = frozenset({SCP11KeyID.SCP11A, SCP11KeyID.SCP11B, SCP11KeyID.SCP11C})
CA_KEY_IDS = frozenset({int(SCP11KeyID.OCE_CA), *range(0x20, 0x30)})
#: the parameter byte of tag 90 for each variant (Amd F §7.1.1)
VARIANT_PARAMS = {SCP11KeyID.SCP11A: 0x01, SCP11KeyID.SCP11B: 0x00, SCP11KeyID.SCP11C: 0x03}


class SCP11Tag(IntEnum):
    """Data objects of the SCP11 authenticate commands (Amd F §7.6.2.3)."""

    CONTROL_REFERENCE = 0xA6
    SCP_PARAMETERS = 0x90
    KEY_USAGE = 0x95
    KEY_TYPE = 0x80
    KEY_LENGTH = 0x81
    HOST_ID = 0x84
    EPHEMERAL_PUBLIC_KEY = 0x5F49
    RECEIPT = 0x86


# -- primitives ----------------------------------------------------------------------------
def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key pair (the only curve this card offers for SCP11)."""
    return ec.generate_private_key(ec.SECP256R1())


def encode_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """Uncompressed point ``04 || X || Y`` (SEC 1 §2.3.3)."""
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def public_key_from_point(point: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from an uncompressed point; ``ValueError`` when it is not on the curve."""
    if len(point) != POINT_LEN or point[0] != 0x04:
        raise ValueError("not an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def derive_session_keys(shsee: bytes, shses: bytes, shared_info: bytes, key_len: int) -> list[bytes]:
    """Five ``key_len``-byte keys from ANSI X9.63 KDF with SHA-256 (Amd F §3.1.2): receipt, ENC, MAC, RMAC, DEK."""
    if key_len not in AES_KEY_LENS:
        raise ValueError(f"key length must be 16, 24 or 32, got {key_len}")
    material = X963KDF(hashes.SHA256(), SESSION_KEYS * key_len, shared_info).derive(shsee + shses)
    return [material[i : i + key_len] for i in range(0, SESSION_KEYS * key_len, key_len)]


# -- the session -------------------------------------------------------------------------
class SCP11Card(SCP03Card):
    """An open SCP11 session: SCP03 secure messaging on agreed keys (Amd F §6.2).

    ``oce_authenticated`` says whether the off-card entity proved a certified
    key: only then does the session carry ``AUTHENTICATED`` (card management,
    issuer rights). SCP11b authenticates the card alone. SCP11c is mutual but
    meant for precomputed scripts; as on YubiKey 5.7 (yubikit's device test
    ``test_scp11c_ok`` expects DELETE KEY refused) it gets no management rights.
    """

    protocol = "SCP11"
    oce_authenticated: bool = False
    variant: int = SCP11KeyID.SCP11B

    @property
    def level(self) -> SecurityLevel:
        if self.state is not ChannelState.OPEN:
            return SecurityLevel.NONE
        if self.oce_authenticated:
            return self._level | SecurityLevel.AUTHENTICATED
        return self._level


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """The parsed data of INTERNAL / MUTUAL AUTHENTICATE (Amd F §7.6.2.3)."""

    kid: int
    key_len: int
    shared_info: bytes  #: key usage || key type || key length, the KDF's SharedInfo
    epk_oce: ec.EllipticCurvePublicKey

    @classmethod
    def parse(cls, data: bytes, kid: int) -> AuthRequest:
        """6A80 for anything this card cannot agree to: wrong variant, usage, key type or point."""
        try:
            items = parse_tlvs(data)
        except CardError:
            raise CardError(SW.WRONG_DATA, "SCP11: malformed authenticate data") from None
        if [t.tag for t in items] != [SCP11Tag.CONTROL_REFERENCE, SCP11Tag.EPHEMERAL_PUBLIC_KEY]:
            raise CardError(SW.WRONG_DATA, "SCP11: expected A6 then 5F49")
        crt = {t.tag: t.value for t in parse_tlvs(items[0].value)}
        params = crt.get(SCP11Tag.SCP_PARAMETERS, b"")
        if len(params) != 2 or params[0] != SCP11_ID or params[1] != VARIANT_PARAMS[SCP11KeyID(kid)]:
            raise CardError(SW.WRONG_DATA, f"SCP11: parameters {params.hex()} do not match key {kid:02X}")
        usage = crt.get(SCP11Tag.KEY_USAGE, b"")
        key_type = crt.get(SCP11Tag.KEY_TYPE, b"")
        length = crt.get(SCP11Tag.KEY_LENGTH, b"")
        if usage != bytes((KEY_USAGE_FULL,)):
            raise CardError(SW.WRONG_DATA, "SCP11: only key usage 3C (C-MAC, C-DEC, R-MAC, R-ENC) is offered")
        if key_type != bytes((AES_KEY_TYPE,)) or len(length) != 1 or length[0] not in AES_KEY_LENS:
            raise CardError(SW.WRONG_DATA, "SCP11: session keys must be AES-128/192/256")
        try:
            epk = public_key_from_point(items[1].value)
        except ValueError:
            raise CardError(SW.WRONG_DATA, "SCP11: ePK.OCE is not a P-256 point") from None
        if SCP11Tag.HOST_ID in crt:  # the host/card ID option changes SharedInfo; this card does not offer it
            raise CardError(SW.WRONG_DATA, "SCP11: host and card identifiers (tag 84) are not supported")
        return cls(kid, length[0], usage + key_type + length, epk)


def authenticate(
    cmd: CommandAPDU,
    *,
    kvn: int,
    sd_key: ec.EllipticCurvePrivateKey,
    oce_key: ec.EllipticCurvePublicKey | None,
    sd_aid: bytes,
    ephemeral: Callable[[], ec.EllipticCurvePrivateKey] = generate_key,
) -> tuple[ResponseAPDU, SCP11Card]:
    """INTERNAL AUTHENTICATE (SCP11b) or MUTUAL AUTHENTICATE (SCP11a/c): the answer and the open session.

    ``cmd``: P1 = KVN (``kvn``: the one found), P2 = KID of ``sd_key``. ``oce_key`` is the static key
    from the OCE certificate (SCP11a/c) or None (SCP11b). ``ephemeral`` is
    injected so known-answer tests can pin eSK.SD.
    """
    request = AuthRequest.parse(bytes(cmd.data), cmd.p2)
    if (oce_key is None) != (cmd.p2 == SCP11KeyID.SCP11B):
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, "SCP11: OCE certificate missing or not expected")
    esk_sd = ephemeral()
    try:
        shsee = esk_sd.exchange(ec.ECDH(), request.epk_oce)
        shses = sd_key.exchange(ec.ECDH(), oce_key if oce_key is not None else request.epk_oce)
    except ValueError:
        raise CardError(SW.WRONG_DATA, "SCP11: key agreement failed (curve mismatch)") from None
    receipt_key, s_enc, s_mac, s_rmac, s_dek = derive_session_keys(shsee, shses, request.shared_info, request.key_len)
    epk_sd_tlv = encode_tlv(SCP11Tag.EPHEMERAL_PUBLIC_KEY, encode_point(esk_sd.public_key()))
    receipt = aes_cmac(receipt_key, bytes(cmd.data) + epk_sd_tlv)
    session = SCP11Card.with_session_keys(
        kvn=kvn,
        s_enc=s_enc,
        s_mac=s_mac,
        s_rmac=s_rmac,
        s_dek=s_dek,
        chain=receipt,
        level=FULL_LEVEL,
        sd_aid=sd_aid,
    )
    session.variant = cmd.p2
    session.oce_authenticated = cmd.p2 == SCP11KeyID.SCP11A
    return ResponseAPDU(epk_sd_tlv + encode_tlv(SCP11Tag.RECEIPT, receipt)), session
