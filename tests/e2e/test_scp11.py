"""SCP11 through the real pcscd + vpcd + daemon: yubikit's client and the project's own host side.

yubikit (Yubico's SCP11 implementation) builds every APDU of SCP11a/b/c and
checks the card's receipt; the key references are passed explicitly (the
default persona's GET DATA E0 is not YubiKey-shaped, so
``get_key_information`` is not used here). The minidriver host side
(``GPSession.open_scp11``, ``PivSession(scp=SCP11Host(...))``) runs the same
flows independently of both.
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yubikit.core.smartcard import ApduError, SmartCardConnection
from yubikit.core.smartcard.scp import KeyRef, Scp03KeyParams, Scp11KeyParams, ScpKid, StaticKeys
from yubikit.piv import PivSession as YkPivSession
from yubikit.securitydomain import SecurityDomainSession
from yubikit_e2e import yubikit_connection

from emulator.control.client.api import VCard
from emulator.pytest_plugin import LiveCard
from minidriver.gp import GPSession
from minidriver.iso7816 import ApduError as HostApduError
from minidriver.pcsc import PcscConnection
from minidriver.piv import PivSession
from minidriver.scp11 import SCP11Host, SCP11Params
from minidriver.scpbase import StaticKeys as HostStaticKeys

pytestmark = pytest.mark.e2e

FACTORY_SCP03 = Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0xFF), keys=StaticKeys.default())  # 40..4F, TEST ONLY
SCP11B = KeyRef(ScpKid.SCP11b, 0x01)  # generated with the default profile's card (scp11b_kvn = 0x01)
PIN = "123456"  # the default profile's TEST PIN
FACTORY_HOST_KEYS = HostStaticKeys.same(bytes(range(0x40, 0x50)), kvn=0xFF)  # TEST KEY


def _cert(
    subject: str,
    public: ec.EllipticCurvePublicKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        usage = x509.KeyUsage(False, False, False, False, True, False, False, False, False)
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(signer, hashes.SHA256())


class OCE:
    """An off-card entity as yubikit's tests/files/scp has one: CA-KLOC root, intermediate, OCE certificate."""

    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ka_key = ec.generate_private_key(ec.SECP256R1())
        self.sk = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert(
            "Example OCE Root CA", self.ca_key.public_key(), "Example OCE Root CA", self.ca_key, ca=True, serial=1
        )
        self.ka = _cert(
            "Example OCE Intermediate", ka_key.public_key(), "Example OCE Root CA", self.ca_key, ca=True, serial=2
        )
        self.ecka = _cert(
            "Example OCE", self.sk.public_key(), "Example OCE Intermediate", ka_key, ca=False, serial=0x5A5A
        )

    @property
    def ski(self) -> bytes:
        return self.ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def load_scp11_keys(sd: SecurityDomainSession, oce: OCE, kid: int, kvn: int) -> Scp11KeyParams:
    """As yubikit's device test ``_load_scp11_keys``: generate the SD key, put the CA key and its SKI."""
    sd_ref, oce_ref = KeyRef(kid, kvn), KeyRef(0x10, kvn)
    pub = sd.generate_ec_key(sd_ref)
    sd.put_key(oce_ref, oce.ca.public_key())
    sd.store_ca_issuer(oce_ref, oce.ski)
    return Scp11KeyParams(sd_ref, pub, oce_ref, oce.sk, [oce.ka, oce.ecka])


def scp11b_params(conn: SmartCardConnection) -> Scp11KeyParams:
    chain = SecurityDomainSession(conn).get_certificate_bundle(SCP11B)
    assert len(chain) == 2, "the default card ships a test CA certificate and the SCP11b certificate"
    pub = chain[-1].public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    return Scp11KeyParams(SCP11B, pub)


# -- yubikit -----------------------------------------------------------------------------------
def test_yubikit_scp11b_opens_and_refuses_management(vcard: LiveCard) -> None:
    with yubikit_connection(vcard) as conn:
        params = scp11b_params(conn)
        sd = SecurityDomainSession(conn)
        sd.authenticate(params)  # yubikit checks the receipt (raises on a wrong one)
        assert sd.get_data(0x66)[:1] == b"\x66"  # a wrapped GET DATA (card data)
        with pytest.raises(ApduError):
            sd.generate_ec_key(KeyRef(ScpKid.SCP11b, 0x7F))  # SCP11b does not authenticate the OCE


def test_yubikit_scp11b_with_the_wrong_public_key_fails(vcard: LiveCard) -> None:
    with yubikit_connection(vcard) as conn:
        chain = SecurityDomainSession(conn).get_certificate_bundle(SCP11B)
        sd = SecurityDomainSession(conn)
        with pytest.raises(Exception):  # noqa: B017 - yubikit's CMAC verify raises InvalidSignature
            sd.authenticate(Scp11KeyParams(SCP11B, chain[0].public_key()))  # the CA's key, not the SD's


def test_yubikit_scp11b_key_imported_under_scp03(vcard: LiveCard) -> None:
    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        sd.authenticate(FACTORY_SCP03)
        sk = ec.generate_private_key(ec.SECP256R1())
        sd.put_key(KeyRef(ScpKid.SCP11b, 0x02), sk)
        sd = SecurityDomainSession(conn)
        sd.authenticate(Scp11KeyParams(KeyRef(ScpKid.SCP11b, 0x02), sk.public_key()))


def test_yubikit_scp11a_allowlist_and_delete(vcard: LiveCard) -> None:
    oce = OCE()
    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        sd.authenticate(FACTORY_SCP03)
        params = load_scp11_keys(sd, oce, ScpKid.SCP11a, 0x03)
        sd.store_allowlist(params.oce_ref, [1, 2, 3])  # not our OCE certificate's serial
        sd = SecurityDomainSession(conn)
        with pytest.raises(ApduError):
            sd.authenticate(params)
        sd = SecurityDomainSession(conn)
        sd.authenticate(FACTORY_SCP03)
        sd.store_allowlist(params.oce_ref, [c.serial_number for c in params.certificates])
        sd = SecurityDomainSession(conn)
        sd.authenticate(params)
        assert len(sd.get_certificate_bundle(SCP11B)) == 2  # wrapped GET DATA BF21
        sd.delete_key(kvn=0x03)  # the OCE is authenticated: management works
        sd = SecurityDomainSession(conn)
        with pytest.raises(ValueError):  # 6A88 -> "Incorrect SCP parameters"
            sd.authenticate(params)


def test_yubikit_scp11c_is_mutual_without_management(vcard: LiveCard) -> None:
    oce = OCE()
    with yubikit_connection(vcard) as conn:
        sd = SecurityDomainSession(conn)
        sd.authenticate(FACTORY_SCP03)
        params = load_scp11_keys(sd, oce, ScpKid.SCP11c, 0x03)
        sd = SecurityDomainSession(conn)
        sd.authenticate(params)
        with pytest.raises(ApduError):
            sd.delete_key(kvn=0x03)


def test_yubikit_piv_over_scp11b(vcard: LiveCard) -> None:
    with yubikit_connection(vcard) as conn:
        params = scp11b_params(conn)
        piv = YkPivSession(conn, scp_key_params=params)
        piv.verify_pin(PIN)
        assert piv.get_pin_attempts() == 3


# -- the project's host side -------------------------------------------------------------------
@pytest.fixture
def pcsc(vcard: LiveCard) -> Iterator[PcscConnection]:
    with PcscConnection(vcard.reader) as connection:
        yield connection


def test_minidriver_scp11b_session_reads_the_card(pcsc: PcscConnection) -> None:
    plain = GPSession.open(pcsc, FACTORY_HOST_KEYS)
    chain = plain.certificates(0x13, 0x01)
    plain.close()
    pub = x509.load_der_x509_certificate(chain[-1]).public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    session = GPSession.open_scp11(pcsc, SCP11Params(kid=0x13, kvn=0x01, pk_sd=pub))
    assert session.level == 0x33 and session.scp == 0x11
    assert any(k.kid == 0x13 and k.kvn == 0x01 for k in session.key_information())
    with pytest.raises(HostApduError) as err:
        session.generate_ec_key(0x13, 0x7F)
    assert err.value.sw == 0x6982


def test_minidriver_scp11a_provisioned_by_itself(pcsc: PcscConnection) -> None:
    oce = OCE()
    admin = GPSession.open(pcsc, FACTORY_HOST_KEYS)
    pub = admin.generate_ec_key(0x11, 0x05)
    admin.put_ec_key(0x10, 0x05, oce.ca.public_key())
    admin.store_ca_issuer(0x10, 0x05, oce.ski)
    admin.store_allow_list(0x10, 0x05, [oce.ecka.serial_number])
    admin.close()
    ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in (oce.ka, oce.ecka))
    params = SCP11Params(kid=0x11, kvn=0x05, pk_sd=pub, sk_oce=oce.sk, certificates=ders, oce_kvn=0x05)
    session = GPSession.open_scp11(pcsc, params)
    new = ec.generate_private_key(ec.SECP256R1())
    session.put_ec_key(0x13, 0x06, new)  # the private key travels under S-DEK
    session.delete_scp11_keys(kvn=0x05)
    session.close()
    again = GPSession.open_scp11(pcsc, SCP11Params(kid=0x13, kvn=0x06, pk_sd=new.public_key()))
    again.close()


def test_minidriver_piv_over_scp11b(pcsc: PcscConnection) -> None:
    admin = GPSession.open(pcsc, FACTORY_HOST_KEYS)
    pub = x509.load_der_x509_certificate(admin.certificates(0x13, 0x01)[-1]).public_key()
    admin.close()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    piv = PivSession(pcsc, scp=SCP11Host(SCP11Params(kid=0x13, kvn=0x01, pk_sd=pub)))
    assert piv.protocol.scp is not None and piv.protocol.scp.level == 0x33
    piv.verify_pin(PIN.encode())
    again = PivSession(pcsc, scp11=SCP11Params(kid=0x13, kvn=0x01, pk_sd=pub))  # the scp11= shorthand
    assert isinstance(again.protocol.scp, SCP11Host)
    again.verify_pin(PIN.encode())


# -- vcard keys ------------------------------------------------------------------------------------
VCARD = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "vcard")


def run_cli(stack: VCard, card: LiveCard, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [VCARD, "--runtime-dir", str(stack.paths.root), "--state-dir", str(stack.state_dir), *args]
    return subprocess.run(cmd, env=card.env, capture_output=True, text=True, timeout=60, check=False)


def test_vcard_keys_manages_scp11_keys(vcard_stack: VCard, vcard: LiveCard, tmp_path: Path) -> None:
    listed = run_cli(vcard_stack, vcard, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert "SCP11b key 0x13/0x01: P-256 key pair" in listed.stdout

    generated = run_cli(vcard_stack, vcard, "keys", "generate", "--kid", "13", "--kvn", "0x02")
    assert generated.returncode == 0, generated.stderr
    pem = generated.stdout[generated.stdout.index("-----BEGIN PUBLIC KEY-----") :]
    public = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    with yubikit_connection(vcard) as conn:  # the printed key is the card's: SCP11b opens with it
        SecurityDomainSession(conn).authenticate(Scp11KeyParams(KeyRef(ScpKid.SCP11b, 0x02), public))

    sk = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "sk.pem"
    key_file.write_bytes(
        sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    put = run_cli(vcard_stack, vcard, "keys", "put", "--kid", "11", "--kvn", "3", "--pem", str(key_file))
    assert put.returncode == 0, put.stderr
    assert "put SCP11 key 0x11/0x03" in put.stdout and "SCP11a key 0x11/0x03: P-256 key pair" in put.stdout
    assert "PRIVATE" not in put.stdout + put.stderr

    oce = OCE()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(oce.ca.public_bytes(serialization.Encoding.PEM))
    ca = run_cli(vcard_stack, vcard, "keys", "put", "--kid", "10", "--kvn", "3", "--pem", str(ca_file))
    assert ca.returncode == 0, ca.stderr
    assert "OCE CA key 0x10/0x03: P-256 public key" in ca.stdout

    deleted = run_cli(vcard_stack, vcard, "keys", "delete", "--kid", "13", "--kvn", "2")
    assert deleted.returncode == 0, deleted.stderr
    assert "0x13/0x02" not in deleted.stdout.split("deleted", 1)[1].split("\n", 1)[1]

    wrong = run_cli(vcard_stack, vcard, "keys", "put", "--kid", "13", "--kvn", "3", "--pem", str(ca_file))
    assert (wrong.returncode, wrong.stderr.count("\n")) == (2, 1) and "--pem" in wrong.stderr
    bad_kid = run_cli(vcard_stack, vcard, "keys", "generate", "--kid", "10", "--kvn", "3")
    assert bad_kid.returncode == 2 and "--kid must be one of 11 13 15" in bad_kid.stderr
