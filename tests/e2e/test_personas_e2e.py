"""The personas end to end: real clients through pcscd + vpcd + daemon, unchanged.

* ``yubikey-5.7``: yubikit's ``PivSession`` (Ed25519, X25519, move and delete key, compressed
  certificates, attestation) and ``SecurityDomainSession`` (``get_key_information``,
  ``get_card_recognition_data``, SCP03) run as against a YubiKey 5.7; yubico-piv-tool too.
* ``piv-nist``: every vendor instruction answers 6D00 (so yubikit, which starts with GET
  VERSION, refuses the card) while OpenSC signs with it.
* ``gp-standard`` keeps today's answers: tests/e2e/test_yubikit.py runs on it unchanged.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from piv_e2e import PIN, ok, p11, piv_link, run, yp
from yubikit.core import Tlv, Version
from yubikit.core.smartcard import ApduError
from yubikit.core.smartcard.scp import KeyRef, Scp03KeyParams, ScpKid, StaticKeys
from yubikit.piv import KEY_TYPE, MANAGEMENT_KEY_TYPE, OBJECT_ID, PIN_POLICY, SLOT, PivSession
from yubikit.securitydomain import SecurityDomainSession
from yubikit_e2e import yubikit_connection as connection

from emulator.applets.piv.consts import VENDOR_INS
from emulator.iso7816.sw import SW
from emulator.pytest_plugin import LiveCard

pytestmark = pytest.mark.e2e

MGMT_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")  # the factory TEST key
MESSAGE = b"vcard e2e: a YubiKey 5.7 persona signs this"
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
AES = 0x88  # key type of the key information data (GPCS 2.3.1 §11.1.8)


def persona_card(card: LiveCard, tmp_path: Path, name: str) -> LiveCard:
    """Swap the ``vcard`` fixture's card for the built-in ``name`` profile, state in ``tmp_path``."""
    text = resources.files("emulator.profiles").joinpath(f"{name}.toml").read_text()
    state = tmp_path / f"{name}.sqlite"
    lines = [f'state_file = "{state}"' if line.startswith("state_file") else line for line in text.splitlines()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    card.remove(wait=True)
    card.stack.insert(0, profile=str(path), wait=True)
    return LiveCard(card.stack, 0, str(path))


@pytest.fixture
def yubikey(vcard: LiveCard, tmp_path: Path) -> LiveCard:
    return persona_card(vcard, tmp_path, "yubikey-5.7")


@pytest.fixture
def nist(vcard: LiveCard, tmp_path: Path) -> LiveCard:
    return persona_card(vcard, tmp_path, "piv-nist")


@contextmanager
def piv_session(card: LiveCard, **kwargs: object) -> Iterator[PivSession]:
    with connection(card) as conn:
        yield PivSession(conn, **kwargs)  # type: ignore[arg-type]


def certificate_for(public: object, subject: str) -> x509.Certificate:
    """A certificate for a card key from a throwaway issuer (TEST ONLY)."""
    import datetime

    issuer = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(issuer, hashes.SHA256())
    )


# -- yubikey-5.7: PIV through yubikit ---------------------------------------------------------------
def test_yubikit_sees_a_yubikey_5_7_with_the_aes192_default_management_key(yubikey: LiveCard) -> None:
    with piv_session(yubikey) as piv:
        assert piv.version == Version(5, 7, 2)
        assert piv.management_key_type is MANAGEMENT_KEY_TYPE.AES192
        meta = piv.get_management_key_metadata()
        assert meta.default_value and meta.key_type is MANAGEMENT_KEY_TYPE.AES192
        assert 0 < piv.get_serial() < 2**31
        piv.authenticate(MGMT_KEY)  # as an AES-192 key (yubikit reads the type from the metadata)
        with pytest.raises(ApduError):
            piv.get_slot_metadata(SLOT.AUTHENTICATION)  # a factory YubiKey holds no PIV keys


def test_yubikit_ed25519_generate_sign_attest(yubikey: LiveCard) -> None:
    with piv_session(yubikey) as piv:
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ED25519, pin_policy=PIN_POLICY.ONCE)
        assert isinstance(public, ed25519.Ed25519PublicKey)
        meta = piv.get_slot_metadata(SLOT.SIGNATURE)
        assert meta.key_type is KEY_TYPE.ED25519 and meta.generated
        assert meta.public_key.public_bytes(*RAW) == public.public_bytes(*RAW)
        piv.verify_pin(PIN)
        signature = piv.sign(SLOT.SIGNATURE, KEY_TYPE.ED25519, MESSAGE, None)
        public.verify(signature, MESSAGE)
        attestation = piv.attest_key(SLOT.SIGNATURE)
        f9 = piv.get_certificate(SLOT.ATTESTATION)
    attestation.verify_directly_issued_by(f9)
    assert attestation.public_key().public_bytes(*RAW) == public.public_bytes(*RAW)  # type: ignore[union-attr]


def test_yubikit_x25519_generate_import_and_agree(yubikey: LiveCard) -> None:
    with piv_session(yubikey) as piv:
        piv.authenticate(MGMT_KEY)
        generated = piv.generate_key(SLOT.KEY_MANAGEMENT, KEY_TYPE.X25519)
        assert isinstance(generated, x25519.X25519PublicKey)
        imported = x25519.X25519PrivateKey.generate()
        assert piv.put_key(SLOT.RETIRED1, imported) is KEY_TYPE.X25519
        signer = ed25519.Ed25519PrivateKey.generate()
        assert piv.put_key(SLOT.AUTHENTICATION, signer) is KEY_TYPE.ED25519
        piv.verify_pin(PIN)
        peer = x25519.X25519PrivateKey.generate()
        assert piv.calculate_secret(SLOT.KEY_MANAGEMENT, peer.public_key()) == peer.exchange(generated)
        assert piv.calculate_secret(SLOT.RETIRED1, peer.public_key()) == peer.exchange(imported.public_key())
        signer.public_key().verify(piv.sign(SLOT.AUTHENTICATION, KEY_TYPE.ED25519, MESSAGE, None), MESSAGE)
        assert not piv.get_slot_metadata(SLOT.RETIRED1).generated


def test_yubikit_move_key_and_delete_key(yubikey: LiveCard) -> None:
    with piv_session(yubikey) as piv:
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.AUTHENTICATION, KEY_TYPE.ECCP256, pin_policy=PIN_POLICY.NEVER)
        cert = certificate_for(public, "vcard persona e2e 9a")
        piv.put_certificate(SLOT.AUTHENTICATION, cert)
        before = piv.get_slot_metadata(SLOT.AUTHENTICATION)

        piv.move_key(SLOT.AUTHENTICATION, SLOT.RETIRED5)
        assert piv.get_slot_metadata(SLOT.RETIRED5) == before  # the metadata follows the key
        with pytest.raises(ApduError) as err:
            piv.get_slot_metadata(SLOT.AUTHENTICATION)
        assert err.value.sw == SW.REFERENCED_DATA_NOT_FOUND
        assert piv.get_certificate(SLOT.AUTHENTICATION) == cert  # certificates are untouched
        signature = piv.sign(SLOT.RETIRED5, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))

        piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ECCP256)
        with pytest.raises(ApduError) as err:  # the target must be empty
            piv.move_key(SLOT.RETIRED5, SLOT.SIGNATURE)
        assert err.value.sw == SW.CONDITIONS_NOT_SATISFIED

        piv.delete_key(SLOT.RETIRED5)
        with pytest.raises(ApduError):
            piv.get_slot_metadata(SLOT.RETIRED5)

    with piv_session(yubikey) as piv:  # persisted, and the move needs the management key
        with pytest.raises(ApduError) as err:
            piv.delete_key(SLOT.SIGNATURE)
        assert err.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
        assert piv.get_slot_metadata(SLOT.SIGNATURE).key_type is KEY_TYPE.ECCP256
        with pytest.raises(ApduError):
            piv.get_slot_metadata(SLOT.RETIRED5)


def test_yubikit_compressed_certificate_round_trip(yubikey: LiveCard) -> None:
    with piv_session(yubikey) as piv:
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.CARD_AUTH, KEY_TYPE.ED25519)
        cert = certificate_for(public, "vcard compressed certificate")
        piv.put_certificate(SLOT.CARD_AUTH, cert, compress=True)
        stored = Tlv.parse_dict(piv.get_object(OBJECT_ID.CARD_AUTH))
        assert stored[0x71] == b"\x01" and gzip.decompress(stored[0x70]) == cert.public_bytes(
            serialization.Encoding.DER
        )
        assert piv.get_certificate(SLOT.CARD_AUTH) == cert
        # the attestation certificate compressed: the card reads it back to sign attestations
        f9 = piv.get_certificate(SLOT.ATTESTATION)
        piv.put_certificate(SLOT.ATTESTATION, f9, compress=True)
        piv.attest_key(SLOT.CARD_AUTH).verify_directly_issued_by(f9)


def test_yubikit_piv_reset_restores_the_yubikey_factory_state(yubikey: LiveCard) -> None:
    new_key = os.urandom(32)
    with piv_session(yubikey) as piv:
        piv.authenticate(MGMT_KEY)
        piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ED25519)
        piv.set_management_key(MANAGEMENT_KEY_TYPE.AES256, new_key)
        piv.reset()  # blocks PIN and PUK with wrong values, then RESET (FB)
        assert piv.management_key_type is MANAGEMENT_KEY_TYPE.AES192
        assert piv.get_management_key_metadata().default_value
        with pytest.raises(ApduError):
            piv.get_slot_metadata(SLOT.SIGNATURE)
        piv.authenticate(MGMT_KEY)
        piv.verify_pin(PIN)


def test_piv_over_scp03_on_the_yubikey_persona(yubikey: LiveCard) -> None:
    params = Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0xFF), keys=StaticKeys.default())  # 40..4F, TEST ONLY
    with piv_session(yubikey, scp_key_params=params) as piv:
        assert piv.version == Version(5, 7, 2)
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ED25519)
        piv.verify_pin(PIN)
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(piv.sign(SLOT.SIGNATURE, KEY_TYPE.ED25519, MESSAGE, None), MESSAGE)


# -- yubikey-5.7: the security domain through yubikit --------------------------------------------
def test_yubikit_security_domain_helpers_parse_the_yubikey_answers(yubikey: LiveCard) -> None:
    with connection(yubikey) as conn:
        sd = SecurityDomainSession(conn)
        info = sd.get_key_information()
        assert {ref: info[ref] for ref in info if ref.kid in (1, 2, 3)} == {
            KeyRef(kid, 0xFF): {AES: 16} for kid in (1, 2, 3)
        }
        recognition = Tlv.parse_list(sd.get_card_recognition_data())
        assert [t.tag for t in recognition][:4] == [0x06, 0x60, 0x63, 0x64]
        assert recognition[0].value == bytes.fromhex("2A864886FC6B01")  # {globalPlatform 1}
        sd.authenticate(Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, 0xFF), keys=StaticKeys.default()))
        new = StaticKeys(os.urandom(16), os.urandom(16), os.urandom(16))
        sd.put_key(KeyRef(ScpKid.SCP03, 0x01), new)
        assert {ref.kvn for ref in sd.get_key_information() if ref.kid == 1} == {0x01}


def test_the_builtin_yubikey_profile_inserts_by_name(vcard: LiveCard) -> None:
    """What `vcard insert --profile yubikey-5.7` asks the daemon (state under the stack's state dir)."""
    vcard.remove(wait=True)
    vcard.stack.insert(0, profile="yubikey-5.7", fresh=True, wait=True)
    assert vcard.stack.status().slots[0].profile == "yubikey-5.7"
    atr = ok(run(["opensc-tool", "-r", vcard.reader, "-a"], vcard)).strip()
    assert bytes.fromhex(atr.replace(":", "")).endswith(b"YubiKey@")
    with piv_session(vcard) as piv:
        assert piv.version == Version(5, 7, 2)


# -- yubikey-5.7: yubico-piv-tool -----------------------------------------------------------------
def test_yubico_piv_tool_reads_the_yubikey_persona(yubikey: LiveCard) -> None:
    with piv_session(yubikey) as piv:
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.AUTHENTICATION, KEY_TYPE.ECCP256)
        cert = certificate_for(public, "vcard yubico-piv-tool")
        piv.put_certificate(SLOT.AUTHENTICATION, cert)
    out = ok(yp(yubikey, "-a", "status"))
    assert "Version:\t5.7.2" in out
    assert "vcard yubico-piv-tool" in out  # the 9A certificate's subject


# -- piv-nist ----------------------------------------------------------------------------------------
def test_piv_nist_refuses_every_vendor_instruction_through_pcscd(nist: LiveCard) -> None:
    with piv_link(nist) as piv:
        for ins in sorted(VENDOR_INS):
            assert piv.send(bytes((0x00, ins, 0x00, 0x9A)))[1] == SW.INS_NOT_SUPPORTED, f"INS {ins:02X}"
    with connection(nist) as conn, pytest.raises(ApduError) as err:
        PivSession(conn)  # yubikit starts with GET VERSION, as with any non-YubiKey PIV card
    assert err.value.sw == SW.INS_NOT_SUPPORTED


def test_opensc_signs_with_the_piv_nist_persona(nist: LiveCard, tmp_path: Path) -> None:
    name = ok(run(["opensc-tool", "-r", nist.reader, "-n"], nist))
    assert "Personal Identity Verification Card" in name
    cert_path = tmp_path / "cert.der"
    ok(p11(nist, "--read-object", "--type", "cert", "--id", "01", "-o", str(cert_path)))
    cert = x509.load_der_x509_certificate(cert_path.read_bytes())
    message = tmp_path / "message"
    message.write_bytes(MESSAGE)
    signature = tmp_path / "signature"
    ok(
        p11(
            nist, "--login", "--pin", PIN, "--sign", "--id", "01", "--mechanism", "ECDSA-SHA256",
            "--signature-format", "openssl", "-i", str(message), "-o", str(signature),
        )
    )  # fmt: skip
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature.read_bytes(), MESSAGE, ec.ECDSA(hashes.SHA256()))


def test_opensc_reads_a_compressed_certificate_from_the_yubikey_persona(yubikey: LiveCard, tmp_path: Path) -> None:
    """OpenSC (built with zlib) gunzips CertInfo 01 certificates; yubico-piv-tool 2.2.0 does not (PERSONAS.md)."""
    with piv_session(yubikey) as piv:
        piv.authenticate(MGMT_KEY)
        public = piv.generate_key(SLOT.AUTHENTICATION, KEY_TYPE.ECCP256)
        cert = certificate_for(public, "vcard compressed for OpenSC")
        piv.put_certificate(SLOT.AUTHENTICATION, cert, compress=True)
    name = ok(run(["opensc-tool", "-r", yubikey.reader, "-n"], yubikey))
    assert "Personal Identity Verification Card" in name
    out = tmp_path / "cert.der"
    ok(p11(yubikey, "--read-object", "--type", "cert", "--id", "01", "-o", str(out)))
    assert x509.load_der_x509_certificate(out.read_bytes()) == cert
