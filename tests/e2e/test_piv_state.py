"""PIV state as applications see it: retry counters, blocking, and persistence.

What design.md promises, checked with real clients through pcscd + vpcd:
PIN/PUK values and counters, keys, certificates and the management key are
persistent (they survive pulling the card and restarting the daemon), while
the PIN's verified status is transient (lost when the card is pulled).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from piv_e2e import PIN, PUK, failed, key_with_certificate, ok, p11, status, yp

from emulator.control.client.api import VCard
from emulator.control.stack.pcscd import pid_alive, read_pid, stop_daemon
from emulator.pytest_plugin import LiveCard

pytestmark = pytest.mark.e2e


def tries_left(card: LiveCard) -> str:
    """`status`'s "PIN tries left" (VERIFY without data; right after a pull the PIN is never verified)."""
    return status(card)["PIN tries left"]


def pull_and_insert(card: LiveCard) -> None:
    card.remove(wait=True)
    card.insert(wait=True)


def test_counter_and_keys_survive_a_pull_but_the_verified_pin_does_not(vcard: LiveCard, tmp_path: Path) -> None:
    _, cert = key_with_certificate(vcard, tmp_path, "9d", "ECCP256")
    assert "2 tries left" in failed(yp(vcard, "-a", "verify-pin", "-P", "000000"))
    pull_and_insert(vcard)
    assert tries_left(vcard) == "2"
    assert x509.load_pem_x509_certificate(ok(yp(vcard, "-a", "read-certificate", "-s", "9d")).encode()) == (
        x509.load_pem_x509_certificate(cert.read_bytes())
    )
    # the counter goes on from 2, it was not reset by the power cycle
    assert "1 tries left" in failed(yp(vcard, "-a", "verify-pin", "-P", "000000"))
    out = ok(yp(vcard, "-a", "verify-pin", "-P", PIN, "-a", "test-signature", "-s", "9d", "-i", str(cert)))
    assert "Successful ECDSA verification." in out  # same private key as before the pull

    pull_and_insert(vcard)  # the PIN was verified; a pulled card forgets that
    assert "Failed signing test data." in failed(yp(vcard, "-a", "test-signature", "-s", "9d", "-i", str(cert)))
    assert tries_left(vcard) == "3"


def test_blocked_pin_stays_blocked_across_a_pull_and_the_puk_unblocks_it(vcard: LiveCard) -> None:
    for _ in range(3):
        assert "CKR_PIN_INCORRECT" in failed(p11(vcard, "--login", "--pin", "000000", "-O"))
    assert "user PIN locked" in ok(p11(vcard, "-T"))
    pull_and_insert(vcard)
    assert "CKR_PIN_LOCKED" in failed(p11(vcard, "--login", "--pin", PIN, "-O"))  # even the right PIN
    assert "user PIN locked" in ok(p11(vcard, "-T"))
    assert tries_left(vcard) == "0"

    out = failed(yp(vcard, "-a", "unblock-pin", "-P", "87654321", "-N", "112233"))
    assert "Failed verifying puk code, now 2 tries left before blocked." in out
    pull_and_insert(vcard)
    out = failed(yp(vcard, "-a", "unblock-pin", "-P", "87654321", "-N", "112233"))
    assert "now 1 tries left" in out  # the PUK counter persisted too
    assert "Successfully unblocked the pin code." in ok(yp(vcard, "-a", "unblock-pin", "-P", PUK, "-N", "112233"))
    flags = ok(p11(vcard, "-T"))
    assert "user PIN locked" not in flags and "final user PIN try" not in flags
    ok(p11(vcard, "--login", "--pin", "112233", "-O"))


def test_everything_persists_across_a_daemon_restart(vcard_stack: VCard, vcard: LiveCard, tmp_path: Path) -> None:
    new_mgmt = "a1a2a3a4a5a6a7a8b1b2b3b4b5b6b7b8c1c2c3c4c5c6c7c8"
    ok(yp(vcard, "-a", "change-pin", "-P", PIN, "-N", "654321"))
    ok(yp(vcard, "-a", "change-puk", "-P", PUK, "-N", "87654321"))
    ok(yp(vcard, "-a", "set-mgm-key", "-n", new_mgmt))
    _, cert_path = key_with_certificate(vcard, tmp_path, "9d", "RSA2048", f"-k{new_mgmt}")
    assert "2 tries left" in failed(yp(vcard, "-a", "verify-pin", "-P", "000000"))
    serial = ok(yp(vcard, "-a", "status")).split("Serial Number:\t", 1)[1].split()[0]

    vcard.remove(wait=True)
    old_pid = read_pid(vcard_stack.paths.daemon_pid)
    assert old_pid is not None
    try:
        assert stop_daemon(vcard_stack.paths)
        assert not pid_alive(old_pid)
    finally:
        vcard_stack.up(private=True, insert=False)  # the session's stack must survive a failure here
    assert read_pid(vcard_stack.paths.daemon_pid) not in (None, old_pid)
    vcard.insert(wait=True)

    status = ok(yp(vcard, "-a", "status"))
    assert f"Serial Number:\t{serial}\n" in status
    assert "PIN tries left:\t2" in status
    assert "Subject DN:\tCN=vcard e2e 9d" in status
    assert "1 tries left" in failed(yp(vcard, "-a", "verify-pin", "-P", PIN))  # the old PIN is gone
    out = ok(yp(vcard, "-a", "verify-pin", "-P", "654321", "-a", "test-signature", "-s", "9d", "-i", str(cert_path)))
    assert "Successful RSA verification." in out  # the same RSA key, and the new PIN

    public = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    secret = os.urandom(24)
    ct, plain = tmp_path / "ct.bin", tmp_path / "plain.bin"
    ct.write_bytes(public.encrypt(secret, padding.PKCS1v15()))
    ok(p11(vcard, "--login", "--pin", "654321", "--decrypt", "--id", "03", "-m", "RSA-PKCS",
           "-i", str(ct), "-o", str(plain)))  # fmt: skip
    assert plain.read_bytes() == secret

    assert "Failed authentication" in failed(yp(vcard, "-a", "generate", "-s", "9e", "-A", "ECCP256"))
    ok(yp(vcard, f"-k{new_mgmt}", "-a", "generate", "-s", "9e", "-A", "ECCP256"))
    assert "now 2 tries left" in failed(yp(vcard, "-a", "unblock-pin", "-P", PUK, "-N", "111111"))
    ok(yp(vcard, "-a", "unblock-pin", "-P", "87654321", "-N", "111111"))
