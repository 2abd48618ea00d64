"""OpenSC against the PIV applet: opensc-tool, piv-tool and pkcs11-tool.

Every command runs as a subprocess through the real pcscd + vpcd + daemon
(``env=vcard.env``) on a fresh default-profile card, whose slot 9A holds a
P-256 key with a self-signed certificate. Each test checks what the tool
printed or wrote (signatures and plaintexts verified with ``cryptography``
against keys read from the card), not only its exit status. yubico-piv-tool
prepares RSA keys, because OpenSC's PKCS#11 module only shows a PIV key
whose slot holds a certificate. OpenSC numbers the PKCS#11 objects of slots
9A, 9C, 9D and 9E with the IDs 01, 02, 03 and 04.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from piv_e2e import MGMT_KEY, PIN, key_with_certificate, metadata_public_key, ok, p11, piv_link, run, tlvs, yp

from emulator.pytest_plugin import LiveCard

pytestmark = pytest.mark.e2e

DEFAULT_ATR = bytes.fromhex("3B8B0180730000C0657663617264BE")
MESSAGE = b"vcard e2e: signed by a virtual PIV card\n"


def read_p11_cert(card: LiveCard, tmp: Path, p11_id: str) -> x509.Certificate:
    out = tmp / f"p11cert{p11_id}.der"
    ok(p11(card, "--read-object", "--type", "cert", "--id", p11_id, "-o", str(out)))
    return x509.load_der_x509_certificate(out.read_bytes())


# -- opensc-tool -------------------------------------------------------------------------
def test_opensc_tool_sees_the_atr_and_detects_a_piv_card(vcard: LiveCard) -> None:
    atr = ok(run(["opensc-tool", "-r", vcard.reader, "-a"], vcard)).strip()
    assert bytes.fromhex(atr.replace(":", "")) == DEFAULT_ATR
    name = ok(run(["opensc-tool", "-r", vcard.reader, "-n"], vcard))
    assert "Personal Identity Verification Card" in name
    # OpenSC's PIV driver reports the CHUID's GUID (tag 34) as the card serial
    serial = ok(run(["opensc-tool", "-r", vcard.reader, "--serial"], vcard))
    with piv_link(vcard) as piv:
        guid = dict(tlvs(piv.get_object(0x5FC102)))[0x34]
    assert bytes.fromhex("".join(serial.split()[:16])) == guid


# -- piv-tool -------------------------------------------------------------------------------
def test_piv_tool_authenticates_with_the_management_key_and_generates(vcard: LiveCard, tmp_path: Path) -> None:
    key_file = tmp_path / "mgmt.key"
    key_file.write_text(":".join(f"{b:02x}" for b in MGMT_KEY))
    env = {**vcard.env, "PIV_EXT_AUTH_KEY": str(key_file)}
    with piv_link(vcard) as piv:
        assert piv.metadata(0x9E) is None
    out = tmp_path / "pub9e.der"
    gen = run(["piv-tool", "-r", vcard.reader, "-A", "M:9B:03", "-G", "9E:11", "-o", str(out)], vcard, env=env)
    assert "admin_mode failed" not in gen.stderr  # mutual authentication with 9B succeeded
    with piv_link(vcard) as piv:
        meta = piv.metadata(0x9E)
    assert meta is not None, "piv-tool did not make the card generate a key"
    assert meta[0x01] == b"\x11" and meta[0x03] == b"\x01"  # ECCP256, generated on the card
    if gen.returncode == 0:
        written = serialization.load_der_public_key(out.read_bytes())
        assert written == metadata_public_key(meta)
    else:
        # OpenSC 0.23's piv-tool builds the returned point into an OpenSSL 3 key with the curve
        # name's length as sizeof(pointer), so it fails *after* the card generated (fixed in 0.24).
        assert "gen_key unable to gen EC key" in gen.stderr, gen.stderr


def test_piv_tool_with_a_wrong_management_key_changes_nothing(vcard: LiveCard, tmp_path: Path) -> None:
    wrong = bytes((MGMT_KEY[0] ^ 0x10, *MGMT_KEY[1:]))  # not a parity-bit difference: a different DES key
    key_file = tmp_path / "wrong.key"
    key_file.write_text(":".join(f"{b:02x}" for b in wrong))
    env = {**vcard.env, "PIV_EXT_AUTH_KEY": str(key_file)}
    gen = run(["piv-tool", "-r", vcard.reader, "-A", "M:9B:03", "-G", "9D:11"], vcard, env=env)
    assert gen.returncode != 0
    assert "admin_mode failed" in gen.stderr
    with piv_link(vcard) as piv:
        assert piv.metadata(0x9D) is None


# -- pkcs11-tool ------------------------------------------------------------------------------
def test_pkcs11_lists_the_slot_and_the_provisioned_9a_key(vcard: LiveCard, tmp_path: Path) -> None:
    slots = ok(p11(vcard, "-L"))
    block = slots.split(vcard.reader, 1)[1]
    assert "token label        : vcard test key (TEST ONLY)" in block  # OpenSC names the token after 9A's CN
    flags = next(line for line in block.splitlines() if "token flags" in line)
    assert "login required" in flags and "PIN initialized" in flags and "user PIN locked" not in flags

    public = ok(p11(vcard, "-O"))
    assert "Certificate Object; type = X.509 cert" in public
    assert "label:      Certificate for PIV Authentication" in public
    assert "subject:    DN: CN=vcard test key (TEST ONLY)" in public
    assert "Public Key Object; EC  EC_POINT 256 bits" in public
    assert "Private Key Object" not in public  # private keys only after login

    private = ok(p11(vcard, "--login", "--pin", PIN, "-O", "--type", "privkey"))
    assert "Private Key Object; EC" in private
    assert "label:      PIV AUTH key" in private and "ID:         01" in private

    cert = read_p11_cert(vcard, tmp_path, "01")
    with piv_link(vcard) as piv:
        meta = piv.metadata(0x9A)
    assert meta is not None
    assert cert.public_key() == metadata_public_key(meta)
    assert cert.subject.rfc4514_string() == "CN=vcard test key (TEST ONLY)"


def test_pkcs11_ecdsa_signatures_with_9a_verify(vcard: LiveCard, tmp_path: Path) -> None:
    msg = tmp_path / "msg.bin"
    msg.write_bytes(MESSAGE)
    public = read_p11_cert(vcard, tmp_path, "01").public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)

    sig = tmp_path / "sig.der"
    out = ok(p11(vcard, "--login", "--pin", PIN, "--sign", "--id", "01", "-m", "ECDSA-SHA256",
                 "-i", str(msg), "-o", str(sig), "--signature-format", "openssl"))  # fmt: skip
    assert "Using signature algorithm ECDSA-SHA256" in out
    public.verify(sig.read_bytes(), MESSAGE, ec.ECDSA(hashes.SHA256()))

    digest = tmp_path / "digest.bin"  # raw ECDSA: the token signs a digest we computed
    digest.write_bytes(hashlib.sha384(MESSAGE).digest())
    raw = tmp_path / "raw.der"
    ok(p11(vcard, "--login", "--pin", PIN, "--sign", "--id", "01", "-m", "ECDSA",
           "-i", str(digest), "-o", str(raw), "--signature-format", "openssl"))  # fmt: skip
    public.verify(raw.read_bytes(), digest.read_bytes(), ec.ECDSA(Prehashed(hashes.SHA384())))


def test_pkcs11_rsa_signatures_with_9c_verify(vcard: LiveCard, tmp_path: Path) -> None:
    cert, _ = key_with_certificate(vcard, tmp_path, "9c", "RSA2048")
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    assert read_p11_cert(vcard, tmp_path, "02") == cert
    keys = ok(p11(vcard, "--login", "--pin", PIN, "-O", "--type", "privkey", "--id", "02"))
    assert "Private Key Object; RSA" in keys and "always authenticate" in keys  # 9C: PIN always

    msg = tmp_path / "msg.bin"
    msg.write_bytes(MESSAGE)
    sig = tmp_path / "sig.bin"
    ok(p11(vcard, "--login", "--pin", PIN, "--sign", "--id", "02", "-m", "SHA256-RSA-PKCS",
           "-i", str(msg), "-o", str(sig)))  # fmt: skip
    public.verify(sig.read_bytes(), MESSAGE, padding.PKCS1v15(), hashes.SHA256())

    pss = tmp_path / "pss.bin"
    ok(p11(vcard, "--login", "--pin", PIN, "--sign", "--id", "02", "-m", "SHA256-RSA-PKCS-PSS",
           "-i", str(msg), "-o", str(pss)))  # fmt: skip
    public.verify(
        pss.read_bytes(),
        MESSAGE,
        padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )

    no_pin = p11(vcard, "--sign", "--id", "02", "-m", "SHA256-RSA-PKCS", "-i", str(msg), "-o", str(sig))
    assert no_pin.returncode != 0  # no login: the key is not even visible


def test_pkcs11_rsa_decryption_with_9d(vcard: LiveCard, tmp_path: Path) -> None:
    cert, _ = key_with_certificate(vcard, tmp_path, "9d", "RSA2048")
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    secret = os.urandom(32)

    ct = tmp_path / "pkcs1.bin"
    ct.write_bytes(public.encrypt(secret, padding.PKCS1v15()))
    plain = tmp_path / "plain.bin"
    out = ok(p11(vcard, "--login", "--pin", PIN, "--decrypt", "--id", "03", "-m", "RSA-PKCS",
                 "-i", str(ct), "-o", str(plain)))  # fmt: skip
    assert "Using decrypt algorithm RSA-PKCS" in out
    assert plain.read_bytes() == secret

    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ct.write_bytes(public.encrypt(secret[::-1], oaep))
    ok(p11(vcard, "--login", "--pin", PIN, "--decrypt", "--id", "03", "-m", "RSA-PKCS-OAEP",
           "--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256", "-i", str(ct), "-o", str(plain)))  # fmt: skip
    assert plain.read_bytes() == secret[::-1]


def test_pkcs11_ecdh_derive_with_9d(vcard: LiveCard, tmp_path: Path) -> None:
    cert, _ = key_with_certificate(vcard, tmp_path, "9d", "ECCP256")
    card_public = cert.public_key()
    assert isinstance(card_public, ec.EllipticCurvePublicKey)
    peer = ec.generate_private_key(ec.SECP256R1())
    peer_der = tmp_path / "peer.der"
    peer_der.write_bytes(
        peer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    shared = tmp_path / "shared.bin"
    ok(p11(vcard, "--login", "--pin", PIN, "--derive", "--id", "03", "-m", "ECDH1-DERIVE",
           "-i", str(peer_der), "-o", str(shared)))  # fmt: skip
    assert shared.read_bytes() == peer.exchange(ec.ECDH(), card_public)


def test_pkcs11_wrong_pin_is_reported_and_counted(vcard: LiveCard) -> None:
    bad = p11(vcard, "--login", "--pin", "000000", "-O")
    assert bad.returncode != 0 and "CKR_PIN_INCORRECT" in bad.stderr
    assert "PIN tries left:\t2" in ok(yp(vcard, "-a", "status"))
    bad = p11(vcard, "--login", "--pin", "000000", "-O")
    assert "CKR_PIN_INCORRECT" in bad.stderr
    assert "final user PIN try" in ok(p11(vcard, "-T"))
    ok(p11(vcard, "--login", "--pin", PIN, "-O"))  # the right PIN restores the counter
    flags = ok(p11(vcard, "-T"))
    assert "final user PIN try" not in flags and "user PIN locked" not in flags
    # not `yubico-piv-tool -a status`: the PIN may still be verified (the card is not reset between
    # PC/SC connections), and then VERIFY without data answers 9000 and the tool prints -1
    with piv_link(vcard) as piv:
        pin = piv.metadata(0x80)
    assert pin is not None and pin[0x06] == b"\x03\x03"  # total, remaining
