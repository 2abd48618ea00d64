"""yubico-piv-tool against the PIV applet, as against a YubiKey.

Each command runs as a subprocess through the real pcscd + vpcd + daemon
(``env=vcard.env``) on a fresh default-profile card (PIN 123456, PUK
12345678, the well-known 3DES management key, a P-256 key and self-signed
certificate in 9A). The tool's default reader filter is "Yubikey", so every
call passes ``-r <reader>``. Checks read what the tool printed or wrote:
messages, tries left, PEM files whose keys and signatures are verified with
``cryptography``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from piv_e2e import MGMT_KEY, PIN, PUK, failed, generate, key_with_certificate, ok, piv_link, status, yp

from emulator.pytest_plugin import LiveCard

pytestmark = pytest.mark.e2e

DEFAULT_MGMT = MGMT_KEY.hex()
YUBICO_ARC = "1.3.6.1.4.1.41482.3"


def slot_block(card: LiveCard, slot: str) -> str:
    out = ok(yp(card, "-a", "status"))
    assert f"Slot {slot}:" in out, out
    return out.split(f"Slot {slot}:", 1)[1].split("\nSlot ", 1)[0].split("\nPIN tries left", 1)[0]


def apdus(card: LiveCard, *apdu_list: bytes) -> list[tuple[bytes, int]]:
    """APDUs in one pyscard connection with PIV selected, for facts the tool cannot print."""
    with piv_link(card) as piv:
        return [piv.send(apdu) for apdu in apdu_list]


def object_content(answer: bytes) -> bytes:
    """The value of GET DATA's ``53`` wrapper (length in one byte, or 81/82 form)."""
    assert answer[0] == 0x53
    n = answer[1] & 0x7F if answer[1] & 0x80 else 0
    return answer[2 + n :]


def pin_remaining(card: LiveCard) -> int:
    """GET METADATA 80, tag 06: (total, remaining); independent of the PIN's verified status."""
    data, sw = apdus(card, bytes.fromhex("00F7008000"))[0]
    assert sw == 0x9000
    return data[data.index(b"\x06\x02") + 3]


# -- identification --------------------------------------------------------------------------
def test_status_shows_version_serial_objects_and_the_9a_certificate(vcard: LiveCard) -> None:
    (serial, _), (chuid, _), (ccc, _) = apdus(
        vcard,
        bytes.fromhex("00F8000000"),
        bytes.fromhex("00CB3FFF055C035FC10200"),
        bytes.fromhex("00CB3FFF055C035FC10700"),
    )
    info = status(vcard)
    assert info["Version"] == "5.4.3"
    assert int(info["Serial Number"]) == int.from_bytes(serial, "big") > 0
    assert bytes.fromhex(info["CHUID"]) == object_content(chuid)
    assert bytes.fromhex(info["CCC"]) == object_content(ccc)
    assert info["PIN tries left"] == "3"
    block = slot_block(vcard, "9a")
    assert "Algorithm:\tECCP256" in block
    assert "Subject DN:\tCN=vcard test key (TEST ONLY)" in block
    assert "Slot 9c" not in ok(yp(vcard, "-a", "status"))  # only 9A is provisioned
    assert ok(yp(vcard, "-a", "version")).strip() == "Application version 5.4.3 found."


# -- PIN and PUK ---------------------------------------------------------------------------------
def test_verify_pin_reports_tries_left_and_the_right_pin_restores_them(vcard: LiveCard) -> None:
    assert "Successfully verified PIN." in ok(yp(vcard, "-a", "verify-pin", "-P", PIN))
    out = failed(yp(vcard, "-a", "verify-pin", "-P", "000000"))
    assert "Pin verification failed, 2 tries left before pin is blocked." in out
    assert status(vcard)["PIN tries left"] == "2"  # a failed VERIFY leaves the PIN unverified
    ok(yp(vcard, "-a", "verify-pin", "-P", PIN))
    assert pin_remaining(vcard) == 3


def test_change_pin_and_change_puk(vcard: LiveCard) -> None:
    assert "Successfully changed the pin code." in ok(yp(vcard, "-a", "change-pin", "-P", PIN, "-N", "654321"))
    assert "Pin verification failed, 2 tries left" in failed(yp(vcard, "-a", "verify-pin", "-P", PIN))
    ok(yp(vcard, "-a", "verify-pin", "-P", "654321"))
    out = failed(yp(vcard, "-a", "change-pin", "-P", "000000", "-N", "111111"))
    assert "Failed verifying pin code, now 2 tries left before blocked." in out

    assert "Successfully changed the puk code." in ok(yp(vcard, "-a", "change-puk", "-P", PUK, "-N", "87654321"))
    out = failed(yp(vcard, "-a", "unblock-pin", "-P", PUK, "-N", "222222"))
    assert "Failed verifying puk code, now 2 tries left before blocked." in out
    ok(yp(vcard, "-a", "unblock-pin", "-P", "87654321", "-N", "222222"))
    ok(yp(vcard, "-a", "verify-pin", "-P", "222222"))


def test_wrong_pins_block_and_unblock_pin_with_the_puk(vcard: LiveCard) -> None:
    for left in (2, 1):
        out = failed(yp(vcard, "-a", "verify-pin", "-P", "000000"))
        assert f"Pin verification failed, {left} tries left before pin is blocked." in out
    out = failed(yp(vcard, "-a", "verify-pin", "-P", "000000"))
    assert "Pin code blocked, use unblock-pin action to unblock." in out
    assert status(vcard)["PIN tries left"] == "0"
    assert "Pin code blocked" in failed(yp(vcard, "-a", "verify-pin", "-P", PIN))  # even the right PIN

    out = failed(yp(vcard, "-a", "unblock-pin", "-P", "00000000", "-N", "112233"))
    assert "Failed verifying puk code, now 2 tries left before blocked." in out
    assert "Successfully unblocked the pin code." in ok(yp(vcard, "-a", "unblock-pin", "-P", PUK, "-N", "112233"))
    assert status(vcard)["PIN tries left"] == "3"
    failed(yp(vcard, "-a", "verify-pin", "-P", PIN))
    assert "Successfully verified PIN." in ok(yp(vcard, "-a", "verify-pin", "-P", "112233"))


def test_pin_retries_and_reset_after_pin_and_puk_are_blocked(vcard: LiveCard) -> None:
    out = ok(yp(vcard, "-a", "verify-pin", "-P", PIN, "-a", "pin-retries", "--pin-retries", "5", "--puk-retries", "4"))
    assert "Successfully changed pin retries to 5 and puk retries to 4" in out
    assert status(vcard)["PIN tries left"] == "5"
    for _ in range(5):
        yp(vcard, "-a", "verify-pin", "-P", "000000")
    for _ in range(4):
        yp(vcard, "-a", "unblock-pin", "-P", "00000000", "-N", "000000")
    assert "The puk code is blocked" in failed(yp(vcard, "-a", "unblock-pin", "-P", PUK, "-N", "000000"))
    assert "Successfully reset the application." in ok(yp(vcard, "-a", "reset"))
    after = ok(yp(vcard, "-a", "status"))
    assert "Slot 9a" not in after  # keys and certificates wiped
    assert "PIN tries left:\t3" in after  # the profile's retries again
    ok(yp(vcard, "-a", "verify-pin", "-P", PIN))


# -- keys and certificates --------------------------------------------------------------------------
def test_generate_import_read_certificate_and_test_signature(vcard: LiveCard, tmp_path: Path) -> None:
    for slot, algorithm, kind in (("9e", "ECCP256", ec.EllipticCurvePublicKey), ("9d", "RSA2048", rsa.RSAPublicKey)):
        cert, _ = key_with_certificate(vcard, tmp_path, slot, algorithm)
        assert isinstance(cert.public_key(), kind)  # the key the tool wrote after generating
        read = ok(yp(vcard, "-a", "read-certificate", "-s", slot))
        assert x509.load_pem_x509_certificate(read.encode()) == cert
        block = slot_block(vcard, slot)
        assert f"Algorithm:\t{algorithm}" in block and f"Subject DN:\tCN=vcard e2e {slot}" in block

    # the tool signs with the card and verifies with the certificate's key; 9E needs no PIN
    out = ok(yp(vcard, "-a", "test-signature", "-s", "9e", "-i", str(tmp_path / "cert9e.pem")))
    assert "Successful ECDSA verification." in out
    out = ok(yp(vcard, "-a", "test-decipher", "-s", "9e", "-i", str(tmp_path / "cert9e.pem")))
    assert "Successfully performed ECDH exchange with card." in out
    assert "Failed signing test data." in failed(
        yp(vcard, "-a", "test-signature", "-s", "9d", "-i", str(tmp_path / "cert9d.pem"))
    )  # 9D: PIN once, not verified
    out = ok(
        yp(vcard, "-a", "verify-pin", "-P", PIN, "-a", "test-signature", "-s", "9d", "-i", str(tmp_path / "cert9d.pem"))
    )
    assert "Successful RSA verification." in out
    out = ok(
        yp(vcard, "-a", "verify-pin", "-P", PIN, "-a", "test-decipher", "-s", "9d", "-i", str(tmp_path / "cert9d.pem"))
    )
    assert "Successfully performed RSA decryption!" in out


def test_selfsign_certificate(vcard: LiveCard, tmp_path: Path) -> None:
    pub_path = generate(vcard, tmp_path, "9c", "ECCP256")
    public = serialization.load_pem_public_key(pub_path.read_bytes())
    cert_path = tmp_path / "cert9c.pem"
    proc = yp(vcard, "-v", "2", "-a", "verify-pin", "-P", PIN, "-a", "selfsign-certificate", "-s", "9c",
              "-S", "/CN=vcard e2e selfsigned/", "-i", str(pub_path), "-o", str(cert_path))  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "Successfully verified PIN." in out
    if proc.returncode != 0:
        # yubico-piv-tool 2.2.0 hooks its signer into OpenSSL with RSA_METHOD/EC_KEY_METHOD; OpenSSL 3
        # ignores that for X509_sign and the tool fails before it sends anything to the card
        # (Yubico/yubico-piv-tool#388). Make sure the card was never asked to sign.
        assert "Failed signing certificate." in out
        after_verify = out.split("Successfully verified PIN.", 1)[1]
        assert "> 00 87" not in after_verify, "the card was asked to sign and the tool still failed"
        pytest.xfail("yubico-piv-tool selfsign-certificate is broken with OpenSSL 3 (client bug, no APDU sent)")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.public_key() == public
    assert cert.subject.rfc4514_string() == "CN=vcard e2e selfsigned"
    cert.verify_directly_issued_by(cert)  # signed by the card's 9C key (PIN always honoured)
    ok(yp(vcard, "-a", "import-certificate", "-s", "9c", "-i", str(cert_path)))


def test_import_key_and_attest_generated_keys_only(vcard: LiveCard, tmp_path: Path) -> None:
    pub_path = generate(vcard, tmp_path, "9c", "ECCP256")
    att = x509.load_pem_x509_certificate(ok(yp(vcard, "-a", "attest", "-s", "9c")).encode())
    f9 = x509.load_pem_x509_certificate(ok(yp(vcard, "-a", "read-certificate", "-s", "f9")).encode())
    att.verify_directly_issued_by(f9)  # chains to the attestation CA in F9
    assert att.public_key() == serialization.load_pem_public_key(pub_path.read_bytes())
    ext = {e.oid.dotted_string: e.value.value for e in att.extensions}  # UnrecognizedExtension: raw bytes
    serial = int(status(vcard)["Serial Number"])
    der_serial = ext[f"{YUBICO_ARC}.7"]  # DER INTEGER
    assert der_serial[0] == 0x02 and der_serial[1] == len(der_serial) - 2
    assert int.from_bytes(der_serial[2:], "big") == serial
    assert ext[f"{YUBICO_ARC}.3"] == bytes((5, 4, 3))  # firmware version
    assert ext[f"{YUBICO_ARC}.8"] == bytes((3, 1))  # 9C default: PIN always, touch never

    key = tmp_path / "imported.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    assert "Successfully imported a new private key." in ok(yp(vcard, "-a", "import-key", "-s", "9e", "-i", str(key)))
    assert "Failed to attest data." in failed(yp(vcard, "-a", "attest", "-s", "9e"))


def test_set_mgm_key_then_only_the_new_key_authenticates(vcard: LiveCard, tmp_path: Path) -> None:
    new = "0f0e0d0c0b0a09080706050403020100f1e2d3c4b5a69788"
    assert "Successfully set new management key." in ok(yp(vcard, "-a", "set-mgm-key", "-n", new))
    out = failed(yp(vcard, "-a", "generate", "-s", "9e", "-A", "ECCP256"))  # default key: refused
    assert "Failed authentication with the application." in out
    generate(vcard, tmp_path, "9e", "ECCP256", f"-k{new}")
    assert "Failed authentication" in failed(yp(vcard, f"-k{DEFAULT_MGMT}", "-a", "set-mgm-key", "-n", DEFAULT_MGMT))
    ok(yp(vcard, f"-k{new}", "-a", "set-mgm-key", "-n", DEFAULT_MGMT))
    generate(vcard, tmp_path, "9d", "ECCP256")  # the default key works again
