"""SCP11a/c: the off-card entity's certificate chain, uploaded with PERFORM SECURITY OPERATION.

Before MUTUAL AUTHENTICATE the OCE proves its static ECKA key with a chain of
X.509 certificates (Amd F §7.5; yubikit sends them leaf-last)::

    80 2A KVN KID|80  <certificate>     more follow (P2 b8 set)
    80 2A KVN KID     <OCE certificate> the last one carries PK.OCE.ECKA

P1/P2 name the CA-KLOC public key (KID 10 or 20-2F) that must have signed
the first certificate; each next certificate must be signed by the one
before. The last is the OCE's own: its serial number must be on the key's
allow-list when one is stored, and its key becomes PK.OCE.ECKA for
ShSes. A certificate that fails ends the upload (6982); the channel keeps
nothing of it.

:class:`OCEChain` keeps the upload's progress on one logical channel; it is
the channel's (never open) session, so SELECT, reset or a new
INITIALIZE UPDATE drop it like any other session.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU
from .state import ChannelState, SessionBase

__all__ = ["MAX_CHAIN_LEN", "OCEChain", "OCETrust", "verify_signed_by"]

MAX_CHAIN_LEN = 8  #: certificates in one upload; more is refused (6A84)
MORE_FOLLOWS = 0x80  #: P2 b8 of PERFORM SECURITY OPERATION


@dataclass(frozen=True)
class OCETrust:
    """What the SD trusts for one CA key reference: the CA public key, its SKI, an allow-list."""

    ca_key: ec.EllipticCurvePublicKey
    ca_ski: bytes | None = None  #: CA-KLOC issuer identifier (STORE DATA A6{80 00, 42 SKI, 83 ref})
    allow_list: frozenset[int] | None = None  #: OCE certificate serial numbers; None: any the CA signed


def verify_signed_by(cert: x509.Certificate, issuer_key: ec.EllipticCurvePublicKey) -> bool:
    """ECDSA signature of ``cert`` under ``issuer_key`` (the only algorithm SCP11 uses here)."""
    hash_alg = cert.signature_hash_algorithm
    if hash_alg is None:
        return False
    try:
        issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_alg))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


def _may_issue(cert: x509.Certificate) -> bool:
    """A certificate followed by another must be a CA when it says what it is (RFC 5280 §4.2.1.9)."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return True


def _allows_key_agreement(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_agreement


class OCEChain(SessionBase):
    """A certificate chain being uploaded on one channel; implements ``SecureSession`` (never open)."""

    protocol = "SCP11 certificates"

    def __init__(self, kid: int, kvn: int, trust: OCETrust) -> None:
        super().__init__()
        self.kid = kid
        self.kvn = kvn
        self._trust = trust
        self._issuer: ec.EllipticCurvePublicKey | None = trust.ca_key
        self._count = 0
        #: PK.OCE.ECKA once the last certificate checked out; None before
        self.oce_key: ec.EllipticCurvePublicKey | None = None

    def __repr__(self) -> str:
        return f"OCEChain(kid={self.kid:#04x}, kvn={self.kvn:#04x}, certificates={self._count})"

    @property
    def accepting(self) -> bool:
        """More certificates may come (the chain neither finished nor failed)."""
        return self.state is ChannelState.IDLE and self._issuer is not None

    def _wipe(self) -> None:
        self._issuer = None
        self.oce_key = None

    def add(self, cmd: CommandAPDU) -> ResponseAPDU:
        """Check one certificate of PERFORM SECURITY OPERATION against the one before (or the CA key)."""
        if not self.accepting or self._issuer is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "SCP11: certificate chain already complete or failed")
        if (cmd.p1, cmd.p2 & ~MORE_FOLLOWS) != (self.kvn, self.kid):
            raise self._fail(SW.INCORRECT_P1P2, "certificates of one chain must name the same CA key")
        self._count += 1
        if self._count > MAX_CHAIN_LEN:
            raise self._fail(SW.NOT_ENOUGH_MEMORY, "certificate chain too long")
        try:
            cert = x509.load_der_x509_certificate(bytes(cmd.data))
            public_key = cert.public_key()
        except ValueError:
            raise self._fail(SW.WRONG_DATA, "not a DER X.509 certificate") from None
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise self._fail(SW.WRONG_DATA, "certificate key is not an EC key")
        if self._count == 1 and self._trust.ca_ski is not None:
            aki = _authority_key_id(cert)
            if aki is not None and aki != self._trust.ca_ski:
                raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "certificate not issued by the CA-KLOC key")
        if not verify_signed_by(cert, self._issuer):
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "certificate signature does not verify")
        if cmd.p2 & MORE_FOLLOWS:
            if not _may_issue(cert):
                raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "an intermediate certificate is not a CA")
            self._issuer = public_key
            return ResponseAPDU()
        allow = self._trust.allow_list
        if allow is not None and cert.serial_number not in allow:
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "OCE certificate serial is not on the allow-list")
        if not _allows_key_agreement(cert):
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "OCE certificate does not allow key agreement")
        self._issuer = None
        self.oce_key = public_key
        return ResponseAPDU()

    # -- SecureSession: a chain is never an open channel -----------------------------------
    def external_authenticate(self, cmd: CommandAPDU) -> ResponseAPDU:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, "SCP11: EXTERNAL AUTHENTICATE without INITIALIZE UPDATE")

    def unwrap(self, cmd: CommandAPDU) -> CommandAPDU:
        raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "SCP11: no open session")

    def wrap(self, resp: ResponseAPDU) -> ResponseAPDU:
        return resp
