"""Helpers for the PIV end-to-end tests (tests/e2e/test_piv_*.py).

The tools (yubico-piv-tool, pkcs11-tool with OpenSC's module, opensc-tool,
piv-tool) run as subprocesses through the real pcscd + vpcd + daemon of the
``vcard`` fixture (``env=card.env``); a missing tool skips the test, or fails
it under ``CI=true``. Facts no tool prints are read with APDUs over pyscard
(:func:`piv_link`). Certificates for card keys come from a throwaway test CA.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from emulator.pytest_plugin import LiveCard, fail_or_skip

PIN, PUK = "123456", "12345678"
MGMT_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")  # profile TEST key
SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
P11_MODULES = (
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
    "/usr/lib/opensc-pkcs11.so",
)

Completed = subprocess.CompletedProcess[str]


# -- running the tools ---------------------------------------------------------------------
def need(tool: str) -> str:
    """The path of ``tool``; skips the test if it is missing (fails it under CI=true)."""
    path = shutil.which(tool)
    if path is None:
        fail_or_skip(f"{tool} is not installed (scripts/setup installs opensc, opensc-pkcs11, yubico-piv-tool)")
    return path


def p11_module() -> str:
    for path in P11_MODULES:
        if Path(path).exists():
            return path
    need("opensc-pkcs11.so")  # skips, or fails under CI
    raise AssertionError("unreachable")


def run(args: list[str], card: LiveCard, *, env: dict[str, str] | None = None) -> Completed:
    return subprocess.run([need(args[0]), *args[1:]], env=env or card.env, capture_output=True, text=True, timeout=60)


def yp(card: LiveCard, *args: str) -> Completed:
    """yubico-piv-tool; -r because its default reader filter is "Yubikey"."""
    return run(["yubico-piv-tool", "-r", card.reader, *args], card)


def p11(card: LiveCard, *args: str) -> Completed:
    """pkcs11-tool on the vcard's slot (the second vpcd reader is empty, but be explicit)."""
    return run(["pkcs11-tool", "--module", p11_module(), "--slot-description", card.reader, *args], card)


def ok(proc: Completed) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def failed(proc: Completed) -> str:
    assert proc.returncode != 0, f"{proc.args} should have failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def status(card: LiveCard) -> dict[str, str]:
    """`yubico-piv-tool -a status` as top-level "Name:\\tvalue" pairs (slot details are indented)."""
    out = ok(yp(card, "-a", "status"))
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line and not line.startswith("\t"))


# -- keys and certificates -------------------------------------------------------------------
def generate(card: LiveCard, tmp: Path, slot: str, algorithm: str, *extra: str) -> Path:
    """`yubico-piv-tool -a generate` in ``slot`` (e.g. "9d"); returns the public key's PEM file."""
    pub = tmp / f"pub{slot}.pem"
    out = ok(yp(card, *extra, "-a", "generate", "-s", slot, "-A", algorithm, "-o", str(pub)))
    assert "Successfully generated a new private key." in out
    return pub


def ca_certificate(public: object, subject: str) -> x509.Certificate:
    """A certificate for a card key, issued by a throwaway test CA (TEST ONLY)."""
    ca = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vcard e2e test CA (TEST ONLY)")]))
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca, hashes.SHA256())
    )


def key_with_certificate(
    card: LiveCard, tmp: Path, slot: str, algorithm: str, *extra: str
) -> tuple[x509.Certificate, Path]:
    """Generate in ``slot`` and import a test-CA certificate "CN=vcard e2e <slot>"; the cert and its PEM file."""
    public = serialization.load_pem_public_key(generate(card, tmp, slot, algorithm, *extra).read_bytes())
    cert = ca_certificate(public, f"vcard e2e {slot}")
    path = tmp / f"cert{slot}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out = ok(yp(card, *extra, "-a", "import-certificate", "-s", slot, "-i", str(path)))
    assert "Successfully imported a new certificate." in out
    return cert, path


# -- APDUs over pyscard, for what the tools do not show -----------------------------------------
class PIVLink:
    """A pyscard connection with the PIV applet selected."""

    def __init__(self, conn: object) -> None:
        self.conn = conn
        assert self.send(SELECT_PIV)[1] == 0x9000

    def send(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw1, sw2 = self.conn.transmit(list(apdu))  # type: ignore[attr-defined]
        out = bytes(data)
        while sw1 == 0x61:  # GET RESPONSE
            data, sw1, sw2 = self.conn.transmit([0x00, 0xC0, 0x00, 0x00, sw2])  # type: ignore[attr-defined]
            out += bytes(data)
        return out, (sw1 << 8) | sw2

    def metadata(self, ref: int) -> dict[int, bytes] | None:
        """GET METADATA (EXTENSIONS.md); None for an empty slot (6A88)."""
        data, sw = self.send(bytes((0x00, 0xF7, 0x00, ref, 0x00)))
        if sw == 0x6A88:
            return None
        assert sw == 0x9000, f"GET METADATA {ref:02X}: {sw:04X}"
        return dict(tlvs(data))

    def get_object(self, tag: int) -> bytes:
        """GET DATA of a 3-byte object tag: the content of its 53 wrapper."""
        data, sw = self.send(bytes.fromhex("00CB3FFF055C03") + tag.to_bytes(3, "big") + b"\x00")
        assert sw == 0x9000, f"GET DATA {tag:06X}: {sw:04X}"
        return dict(tlvs(data))[0x53]


@contextmanager
def piv_link(card: LiveCard) -> Iterator[PIVLink]:
    conn = card.connect()
    try:
        yield PIVLink(conn)
    finally:
        conn.release()  # disconnect and release the PC/SC context now, not in a destructor


def tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """BER-TLV items of one level (tags of one or two bytes, lengths up to 82)."""
    out, i = [], 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            tag = (tag << 8) | data[i]
            i += 1
        length = data[i]
        i += 1
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(data[i : i + n], "big")
            i += n
        out.append((tag, data[i : i + length]))
        i += length
    return out


def metadata_public_key(meta: dict[int, bytes]) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public key of GET METADATA's tag 04 (86 point of P-256, or 81 modulus + 82 exponent)."""
    parts = dict(tlvs(meta[0x04]))
    if 0x86 in parts:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), parts[0x86])
    return rsa.RSAPublicNumbers(int.from_bytes(parts[0x82], "big"), int.from_bytes(parts[0x81], "big")).public_key()
