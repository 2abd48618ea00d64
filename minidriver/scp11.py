"""Host side of SCP11 (GPC Card Specification v2.3 Amendment F): SCP11a, SCP11b, SCP11c. Sans-I/O.

Written apart from the card side (``emulator/gp/scp11.py``; design.md, "Host
side and card side are written apart"). The handshake is an ECKA key
agreement on P-256; the session that follows is SCP03 secure messaging, so
:class:`SCP11Host` is an :class:`~minidriver.scp03.SCP03Host` whose handshake
is replaced::

    host = SCP11Host(SCP11Params(kid=0x13, kvn=1, pk_sd=card_key))
    for cmd in host.certificate_commands():    # SCP11a/c only: PERFORM SECURITY OPERATION
        send(cmd)                              # expect 9000
    send(host.authenticate_apdu())             # INTERNAL (11b) / MUTUAL (11a/c) AUTHENTICATE
    host.process_authenticate_response(data)   # checks the receipt; the channel is OPEN
    wire = host.wrap(plain)                    # C-MAC + C-DECRYPTION, level 33
    plain = host.unwrap(card_response)         # R-MAC + R-ENCRYPTION checked

Key agreement (Amd F §3.1.2 of v1.3, §7.6.2.3 of v1.4):

* ShSee = ECDH(eSK.OCE, ePK.SD); ShSes = ECDH(SK.OCE, PK.SD), with SK.OCE =
  the certified static key (11a/c) or eSK.OCE again (11b);
* ANSI X9.63 KDF with SHA-256 over ShSee || ShSes, SharedInfo = key usage ||
  key type || key length, cut into receipt key, S-ENC, S-MAC, S-RMAC, S-DEK;
* receipt = AES-CMAC(receipt key, our command data || the card's 5F49 TLV):
  it proves the card holds SK.SD and starts the MAC chain.

Private keys, shared secrets and session keys are never logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import minidriver.gpcrypto as gpcrypto  # a submodule import: never reaches the package's lazy __getattr__
from minidriver.iso7816 import BadResponseError, CommandAPDU, encode_tlv, parse_tlvs
from minidriver.scp03 import SCP03Host, _Session
from minidriver.scpbase import (
    CLA_GP,
    AuthenticationError,
    ChannelState,
    SCPError,
    SCPStateError,
    SecurityLevel,
    StaticKeys,
)

__all__ = ["SCP11_LEVEL", "SCP11Host", "SCP11Params", "SCP11Variant", "x963_kdf"]

log = logging.getLogger(__name__)

SCP11_LEVEL = 0x33  #: every SCP11 session: C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION
KEY_USAGE = 0x3C  #: the same four, as tag 95 writes them (Amd F §7.6.2.3)
KEY_TYPE_AES = 0x88
SCP_ID = 0x11
MORE_FOLLOWS = 0x80  #: PERFORM SECURITY OPERATION P2 b8: another certificate follows
SESSION_KEYS = 5  #: receipt key, S-ENC, S-MAC, S-RMAC, S-DEK


class SCP11Variant(IntEnum):
    """The SD key identifier names the variant (Amd F §4; yubikit ``ScpKid``)."""

    SCP11A = 0x11
    SCP11B = 0x13
    SCP11C = 0x15


class INS(IntEnum):
    """Handshake instructions (Amd F §7)."""

    PERFORM_SECURITY_OPERATION = 0x2A
    MUTUAL_AUTHENTICATE = 0x82
    INTERNAL_AUTHENTICATE = 0x88


class Tag(IntEnum):
    CONTROL_REFERENCE = 0xA6
    SCP_PARAMETERS = 0x90
    KEY_USAGE = 0x95
    KEY_TYPE = 0x80
    KEY_LENGTH = 0x81
    EPHEMERAL_PUBLIC_KEY = 0x5F49
    RECEIPT = 0x86


#: second byte of tag 90 (Amd F §7.1.1)
_PARAMS = {SCP11Variant.SCP11A: 0x01, SCP11Variant.SCP11B: 0x00, SCP11Variant.SCP11C: 0x03}


def x963_kdf(secret: bytes, shared_info: bytes, length: int) -> bytes:
    """ANSI X9.63 KDF with SHA-256 (SEC 1 §3.6.1): SHA-256(Z || counter32 || SharedInfo), counter from 1."""
    out = b""
    counter = 1
    while len(out) < length:
        out += hashlib.sha256(secret + counter.to_bytes(4, "big") + shared_info).digest()
        counter += 1
    return out[:length]


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@dataclass(frozen=True)
class SCP11Params:
    """Which SD key to use, and for SCP11a/c the OCE's key and certificate chain.

    ``pk_sd``: the card's PK.SD.ECKA (read it from GET DATA BF21, leaf last, or
    know it). ``certificates``: DER X.509, leaf (the OCE's own, certifying
    ``sk_oce``) last; ``oce_kid``/``oce_kvn`` name the card's CA key that
    issued the first of them.
    """

    kid: int
    kvn: int
    pk_sd: ec.EllipticCurvePublicKey = field(repr=False)
    sk_oce: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    certificates: tuple[bytes, ...] = field(default=(), repr=False)
    oce_kid: int = 0x10
    oce_kvn: int = 0x00
    key_len: int = 16  #: AES-128 session keys (16, 24 or 32)

    def __post_init__(self) -> None:
        variant = SCP11Variant(self.kid)  # ValueError for anything but 11/13/15
        if not 0x00 <= self.kvn <= 0x7F:
            raise ValueError(f"kvn must be 0x00-0x7F, got 0x{self.kvn:02X}")
        if self.key_len not in (16, 24, 32):
            raise ValueError(f"key_len must be 16, 24 or 32, got {self.key_len}")
        mutual = variant is not SCP11Variant.SCP11B
        if mutual and (self.sk_oce is None or not self.certificates):
            raise ValueError(f"{variant.name} needs sk_oce and its certificate chain")
        if not mutual and (self.sk_oce is not None or self.certificates):
            raise ValueError("SCP11b takes no OCE key or certificates")

    @property
    def variant(self) -> SCP11Variant:
        return SCP11Variant(self.kid)


class SCP11Host(SCP03Host):
    """Host side of one SCP11 session; after the handshake it wraps and unwraps as SCP03 at level 33.

    ``ephemeral`` makes eSK.OCE (injected so known-answer tests can pin it).
    INITIALIZE UPDATE / EXTERNAL AUTHENTICATE do not exist in SCP11 and raise
    :class:`SCPStateError`.
    """

    PROTOCOL = "SCP11"
    _log = log

    def __init__(
        self,
        params: SCP11Params,
        *,
        ephemeral: Callable[[], ec.EllipticCurvePrivateKey] = lambda: ec.generate_private_key(ec.SECP256R1()),
        channel: int = 0,
    ) -> None:
        # SCP11 has no static symmetric keys: this placeholder is replaced by the session keys
        super().__init__(StaticKeys.same(bytes(16), kvn=params.kvn), channel=channel)
        self.params = params
        self._ephemeral = ephemeral
        self._esk: ec.EllipticCurvePrivateKey | None = None
        self._request = b""

    @property
    def kvn(self) -> int:
        return self.params.kvn

    def initialize_update_apdu(self, kvn: int = 0) -> bytes:
        raise SCPStateError("SCP11 opens with authenticate_apdu(), not INITIALIZE UPDATE")

    def external_authenticate_apdu(self, level: int) -> bytes:
        raise SCPStateError("SCP11 opens with authenticate_apdu(), not EXTERNAL AUTHENTICATE")

    # --- handshake -----------------------------------------------------------

    def certificate_commands(self) -> list[CommandAPDU]:
        """PERFORM SECURITY OPERATION per certificate (Amd F §7.5), P2 b8 on all but the last; [] for 11b.

        Certificates can be longer than a short APDU: send them through a
        protocol that chains commands.
        """
        p = self.params
        last = len(p.certificates) - 1
        return [
            CommandAPDU(
                CLA_GP | self._channel,
                INS.PERFORM_SECURITY_OPERATION,
                p.oce_kvn,
                p.oce_kid | (MORE_FOLLOWS if n < last else 0),
                der,
            )
            for n, der in enumerate(p.certificates)
        ]

    def authenticate_apdu(self) -> bytes:
        """INTERNAL AUTHENTICATE (11b) or MUTUAL AUTHENTICATE (11a/c): ``A6{90 95 80 81} 5F49 ePK.OCE``."""
        p = self.params
        self._esk = self._ephemeral()
        crt = (
            encode_tlv(Tag.SCP_PARAMETERS, bytes((SCP_ID, _PARAMS[p.variant])))
            + encode_tlv(Tag.KEY_USAGE, bytes((KEY_USAGE,)))
            + encode_tlv(Tag.KEY_TYPE, bytes((KEY_TYPE_AES,)))
            + encode_tlv(Tag.KEY_LENGTH, bytes((p.key_len,)))
        )
        self._request = encode_tlv(Tag.CONTROL_REFERENCE, crt) + encode_tlv(
            Tag.EPHEMERAL_PUBLIC_KEY, _point(self._esk.public_key())
        )
        ins = INS.INTERNAL_AUTHENTICATE if p.variant is SCP11Variant.SCP11B else INS.MUTUAL_AUTHENTICATE
        self._session = None
        self._move(ChannelState.CHALLENGED)
        return bytes([CLA_GP | self._channel, ins, p.kvn, p.kid, len(self._request)]) + self._request + b"\x00"

    def process_authenticate_response(self, data: bytes) -> None:
        """Check ``5F49 ePK.SD || 86 receipt`` (data without SW); the channel is OPEN at level 33.

        A wrong receipt (the card does not hold SK.SD for ``pk_sd``) raises
        :class:`AuthenticationError`; a malformed answer :class:`SCPError`.
        Either closes the channel.
        """
        self._require("process_authenticate_response", ChannelState.CHALLENGED)
        try:
            self._open(data)
        except SCPError as exc:
            raise self._fail(exc) from None

    def _open(self, data: bytes) -> None:
        p, esk = self.params, self._esk
        if esk is None:  # pragma: no cover - CHALLENGED always has one
            raise SCPStateError("no ephemeral key")
        try:
            items = parse_tlvs(data)
        except BadResponseError:
            raise SCPError("SCP11: the authenticate answer is not BER-TLV") from None
        if [t.tag for t in items] != [Tag.EPHEMERAL_PUBLIC_KEY, Tag.RECEIPT]:
            raise SCPError("SCP11: the authenticate answer must be 5F49 then 86")
        try:
            epk_sd = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), items[0].value)
        except ValueError:
            raise SCPError("SCP11: ePK.SD is not a P-256 point") from None
        static = p.sk_oce if p.sk_oce is not None else esk
        secret = esk.exchange(ec.ECDH(), epk_sd) + static.exchange(ec.ECDH(), p.pk_sd)
        shared_info = bytes((KEY_USAGE, KEY_TYPE_AES, p.key_len))
        material = x963_kdf(secret, shared_info, SESSION_KEYS * p.key_len)
        keys = [material[i : i + p.key_len] for i in range(0, len(material), p.key_len)]
        receipt_key, s_enc, s_mac, s_rmac, s_dek = keys
        expected = gpcrypto.aes_cmac(receipt_key, self._request + encode_tlv(Tag.EPHEMERAL_PUBLIC_KEY, items[0].value))
        if not gpcrypto.ct_equal(expected, items[1].value):
            raise AuthenticationError("SCP11 receipt mismatch: the card does not hold the key for pk_sd")
        self._esk = None
        self._keys = StaticKeys(kvn=p.kvn, enc=s_enc, mac=s_mac, dek=s_dek)  # dek_encrypt() uses S-DEK
        self._session = _Session(
            i=0x60, s_enc=s_enc, s_mac=s_mac, s_rmac=s_rmac, chain=items[1].value, host_cryptogram=b""
        )
        self._session.level = SecurityLevel(SCP11_LEVEL)
        log.debug("%s open with SD key %02X/%02X", p.variant.name, p.kid, p.kvn)
        self._move(ChannelState.OPEN)
