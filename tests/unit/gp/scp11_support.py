"""Test material for SCP11: an OCE certificate chain, a card with SCP11 keys, and hosts that talk to it.

The chain mirrors yubikit's tests/files/scp/generate_files.sh: a CA-KLOC root
(its public key goes on the card as KID 10), an intermediate, and the OCE's
key-agreement certificate, sent leaf last.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from emulator.card import VirtualCard
from emulator.iso7816 import ResponseAPDU
from minidriver import scp11_keys
from minidriver.iso7816 import CommandAPDU as HostCommand
from minidriver.scp11 import SCP11Host, SCP11Params

__all__ = ["Chain", "issue_leaf", "make_chain", "run_handshake", "send_wrapped", "transmit"]

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _cert(
    subject: str,
    public: ec.EllipticCurvePublicKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int,
    issuer_key: ec.EllipticCurvePublicKey | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if issuer_key is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        usage = x509.KeyUsage(False, False, False, False, True, False, False, False, False)
        builder = builder.add_extension(usage, critical=True)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    return builder.sign(signer, hashes.SHA256())


@dataclass
class Chain:
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate
    intermediate: x509.Certificate
    oce_key: ec.EllipticCurvePrivateKey
    oce_cert: x509.Certificate

    @property
    def ders(self) -> tuple[bytes, ...]:
        """What the OCE sends, leaf last (the root stays off the wire: the card has its key)."""
        return tuple(c.public_bytes(serialization.Encoding.DER) for c in (self.intermediate, self.oce_cert))

    @property
    def ca_ski(self) -> bytes:
        return self.ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def make_chain(*, serial: int = 0x1234) -> Chain:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ka_key = ec.generate_private_key(ec.SECP256R1())
    oce_key = ec.generate_private_key(ec.SECP256R1())
    root = "Example OCE Root CA Certificate"
    ca_cert = _cert(root, ca_key.public_key(), root, ca_key, ca=True, serial=1)
    inter_name = "Example OCE Intermediate Certificate"
    intermediate = _cert(
        inter_name, ka_key.public_key(), root, ca_key, ca=True, serial=2, issuer_key=ca_key.public_key()
    )
    oce_cert = _cert("Example OCE Certificate", oce_key.public_key(), inter_name, ka_key, ca=False, serial=serial)
    return Chain(ca_key, ca_cert, intermediate, oce_key, oce_cert)


def issue_leaf(signer: ec.EllipticCurvePrivateKey, issuer: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A key-agreement certificate signed by ``signer`` (DER) and its private key."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("Issued by a leaf", key.public_key(), issuer, signer, ca=False, serial=0x99)
    return key, cert.public_bytes(serialization.Encoding.DER)


def transmit(card: VirtualCard, apdu: bytes) -> ResponseAPDU:
    """One APDU; answers with 61xx are completed with GET RESPONSE."""
    resp = ResponseAPDU.from_bytes(card.transmit(apdu))
    data = resp.data
    while resp.sw >> 8 == 0x61:
        resp = ResponseAPDU.from_bytes(card.transmit(bytes([apdu[0] & 0x03, 0xC0, 0, 0, resp.sw & 0xFF])))
        data += resp.data
    return ResponseAPDU(data, resp.sw)


def send_chained(card: VirtualCard, cmd: HostCommand) -> ResponseAPDU:
    """Plain command, chained in 255-byte links when the data is longer (ISO 7816-4 §5.1.1.1)."""
    data = cmd.data
    while len(data) > 255:
        link = HostCommand(cmd.cla | 0x10, cmd.ins, cmd.p1, cmd.p2, data[:255])
        resp = transmit(card, bytes(link))
        if resp.sw != 0x9000:
            return resp
        data = data[255:]
    return transmit(card, bytes(HostCommand(cmd.cla, cmd.ins, cmd.p1, cmd.p2, data, cmd.ne)))


def run_handshake(card: VirtualCard, params: SCP11Params) -> tuple[SCP11Host, ResponseAPDU]:
    """PSO certificates then INTERNAL / MUTUAL AUTHENTICATE with the minidriver host; the last answer."""
    host = SCP11Host(params)
    for cmd in host.certificate_commands():
        resp = send_chained(card, cmd)
        if resp.sw != 0x9000:
            return host, resp
    resp = transmit(card, host.authenticate_apdu())
    if resp.sw == 0x9000:
        host.process_authenticate_response(resp.data)
    return host, resp


def send_wrapped(card: VirtualCard, host: SCP11Host, plain: HostCommand | bytes) -> ResponseAPDU:
    raw = plain if isinstance(plain, bytes) else bytes(plain)
    wire = card.transmit(host.wrap(raw))
    return ResponseAPDU.from_bytes(host.unwrap(wire))


def load_oce_trust(card: VirtualCard, gp_send, chain: Chain, *, kvn: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Put the CA-KLOC public key (KID 10) and its SKI on the card through an authenticated ``gp_send``."""
    assert gp_send(bytes(scp11_keys.put_ec_key_command(0x10, kvn, chain.ca_key.public_key()))).sw == 0x9000
    assert gp_send(bytes(scp11_keys.store_ca_issuer_command(0x10, kvn, chain.ca_ski))).sw == 0x9000
