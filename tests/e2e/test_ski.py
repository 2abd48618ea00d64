"""Secure key injection end to end: real pcscd + vpcd + daemon, the minidriver over pyscard.

The relay runs across two real processes (minidriver/examples/inject.py: a card-less server with
the SCP03 keys, a client with the reader); the other tests drive both roles in this process
(ski_local), through the same entry points and the same reader.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from emulator.pytest_plugin import LiveCard
from emulator.store import Store
from minidriver.cardmod import CardAcquireContext, CardData, CardDeleteContext, Out, ScardCode, ski
from minidriver.cardmod.helper import card_data_for_reader, reconnect, release
from minidriver.cardmod.ski_local import LocalInjector, import_struct
from minidriver.cardmod.ski_wire import CSF_AUTHENTICATE, CSF_IMPORT_KEYPAIR, CardAuthenticate, CardEncryptedData
from minidriver.pcsc import Disposition, PcscConnection
from minidriver.piv import Algorithm, InvalidPinError, PivSession
from minidriver.scpbase import StaticKeys

pytestmark = pytest.mark.e2e

C = ScardCode
KEYS = StaticKeys.same(bytes(range(0x40, 0x50)), kvn=0xFF)
FIRST_PIN, NEW_PIN = b"73195284", b"24681357"  # unique strings to look for in the client's memory
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def card(vcard: LiveCard) -> Iterator[CardData]:
    os.environ.update(vcard.env)
    card_data = card_data_for_reader(vcard.reader)
    assert CardAcquireContext(card_data, 0) == 0
    try:
        yield card_data
    finally:
        CardDeleteContext(card_data)
        release(card_data)


def sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def read_memory(pid: int) -> bytes:
    """Every readable mapping of process ``pid`` (we run as root; /proc/pid/mem)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if "r" not in perms or line.rstrip().endswith("[vvar]"):
                continue
            lo, hi = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except (OSError, OverflowError, ValueError):
                continue
    return b"".join(chunks)


def test_relay_across_two_processes(vcard: LiveCard, tmp_path: Path) -> None:
    with PcscConnection(vcard.reader) as conn:
        PivSession(conn).change_pin(b"123456", FIRST_PIN)
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    sock, public_out = str(tmp_path / "ski.sock"), tmp_path / "public.hex"
    base = [sys.executable, "-m", "minidriver.examples.inject", "--socket", sock]
    env = {**os.environ, **vcard.env}
    server = subprocess.Popen(
        [*base, "--role", "server", "--old-pin", FIRST_PIN.decode(), "--new-pin", NEW_PIN.decode(),
         "--key-file", str(key_file), "--public-key-out", str(public_out)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    client = subprocess.Popen(
        [*base, "--role", "client", "--reader", vcard.reader, "--hold"],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert client.stdout is not None and client.stdin is not None
    lines = []
    for line in client.stdout:
        lines.append(line)
        if "holding" in line:
            break
    memory = read_memory(client.pid) if client.poll() is None else b""
    client.stdin.close()
    lines += client.stdout.readlines()
    assert client.wait(timeout=30) == 0, "".join(lines)
    server_out, _ = server.communicate(timeout=30)
    assert server.returncode == 0, server_out
    client_out = "".join(lines)
    assert "PIN changed" in server_out and "SCP03 session open" in server_out
    assert client_out.count("server -> card") >= 4 and "Import Key Pair: SCARD_S_SUCCESS" in client_out

    # the client never had the key or a PIN in the clear: not in its output, not in its memory
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    assert len(memory) > 1_000_000  # we really read the process
    for needle in (scalar, scalar.hex().encode(), scalar.hex().upper().encode(), NEW_PIN, FIRST_PIN):
        assert needle not in memory, needle
        assert needle.decode("latin-1") not in client_out
    assert NEW_PIN.decode() not in server_out  # the server does not print secrets either

    # the injected key signs, and the signature verifies with the public key the server computed
    point = bytes.fromhex(public_out.read_text())
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert public.public_numbers() == key.public_key().public_numbers()
    with PcscConnection(vcard.reader) as conn:
        piv = PivSession(conn)
        with pytest.raises(InvalidPinError):
            piv.verify_pin(FIRST_PIN)  # the old PIN fails
        piv.verify_pin(NEW_PIN)  # the changed one verifies
        digest = sha256(b"injected through a relay")
        signature = piv.sign_raw(0x9D, Algorithm.ECCP256, digest)
    public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_example_runs_with_both_roles(vcard: LiveCard) -> None:
    cmd = [sys.executable, "-m", "minidriver.examples.inject", "--reader", vcard.reader]
    out = subprocess.run(cmd, cwd=REPO, env={**os.environ, **vcard.env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "injected a fresh P-256 key into container 2 (slot 9D)" in out.stdout
    with PcscConnection(vcard.reader) as conn:
        PivSession(conn).verify_pin(b"654321")


def authenticate_blobs(injector: LocalInjector) -> list[CardEncryptedData]:
    items, count = Out[list[CardEncryptedData]](), Out[int]()
    data = bytes(CardAuthenticate(0, 1, b"123456"))
    assert (
        ski.MDEncryptData(injector.server, injector.server_key, CSF_AUTHENTICATE, data, len(data), 0, items, count) == 0
    )
    return list(items.value or [])


def process(card: CardData, hkey: int, function: str, blobs: list[CardEncryptedData]) -> int:
    out, size = bytearray(16), Out[int]()
    return int(ski.CardProcessEncryptedData(card, hkey, function, blobs, len(blobs), out, 16, size, 0))


def test_handle_refused_after_vcard_remove(vcard: LiveCard, card: CardData) -> None:
    with LocalInjector(card, KEYS) as injector:
        hkey = injector.open()
        blobs = authenticate_blobs(injector)
        vcard.remove(wait=True)
        assert process(card, hkey, CSF_AUTHENTICATE, blobs) == C.SCARD_W_REMOVED_CARD
        vcard.insert(wait=True)
        reconnect(card)
        assert process(card, hkey, CSF_AUTHENTICATE, blobs) == C.SCARD_W_REMOVED_CARD  # stays dead
        injector.client_key = 0
        assert injector.verify_pin(b"123456") == 3  # a new handshake on the new card works
        assert injector.client_key > hkey


def test_handle_refused_after_destroy(card: CardData) -> None:
    with LocalInjector(card, KEYS) as injector:
        hkey = injector.open()
        blobs = authenticate_blobs(injector)
        assert ski.CardDestroyKey(card, hkey) == 0
        assert process(card, hkey, CSF_AUTHENTICATE, blobs) == C.SCARD_E_INVALID_HANDLE
        assert ski.CardDestroyKey(card, hkey) == C.SCARD_E_INVALID_HANDLE
        injector.client_key = 0


def test_handle_refused_after_reset(vcard: LiveCard, card: CardData) -> None:
    with LocalInjector(card, KEYS) as injector:
        hkey = injector.open()
        blobs = authenticate_blobs(injector)
        with PcscConnection(vcard.reader) as other:
            other.reconnect(Disposition.RESET)
        assert process(card, hkey, CSF_AUTHENTICATE, blobs) == C.SCARD_W_RESET_CARD
        reconnect(card)
        assert process(card, hkey, CSF_AUTHENTICATE, blobs) == C.SCARD_W_RESET_CARD
        injector.client_key = 0
        assert injector.verify_pin(b"123456") == 3


def piv_state(path: Path) -> dict[str, bytes | None]:
    store = Store(path)
    try:
        ns = store.namespace("piv")
        return {key: ns.get(key) for key in ns.keys()}  # noqa: SIM118 - a Namespace, not a dict
    finally:
        store.close()


def test_tampered_blob_is_refused_and_changes_nothing(vcard: LiveCard, card: CardData, tmp_path: Path) -> None:
    state_file = tmp_path / "card.sqlite"
    vcard.remove(wait=True)
    before = piv_state(state_file)
    vcard.insert(wait=True)
    reconnect(card)
    key = ec.generate_private_key(ec.SECP256R1())
    with LocalInjector(card, KEYS) as injector:
        injector.open()
        items, count = Out[list[CardEncryptedData]](), Out[int]()
        data = import_struct(2, key)
        assert ski.MDEncryptData(injector.server, injector.server_key, CSF_IMPORT_KEYPAIR, data, len(data), 0, items,
                                 count) == 0  # fmt: skip
        blob = bytearray((items.value or [])[0].pbEncryptedData or b"")
        blob[-12] ^= 0x01  # one bit of the last cipher block
        code = process(card, injector.client_key, CSF_IMPORT_KEYPAIR, [CardEncryptedData(blob, len(blob))])
        assert code == C.SCARD_W_SECURITY_VIOLATION
        injector.client_key = 0
    vcard.remove(wait=True)
    after = piv_state(state_file)
    assert "key/9d" not in after
    assert after == before


def test_conformance_rows_through_pcscd(vcard: LiveCard) -> None:
    """`python -m minidriver check`'s SKI rows against the card in a real reader."""
    from minidriver.cardmod.checks import run_checks
    from minidriver.cardmod.checks_ski import CHECKS

    os.environ.update(vcard.env)
    results = run_checks(CHECKS, lambda: card_data_for_reader(vcard.reader), destructive=True, release_card=release)
    assert len(results) == len(CHECKS)
    assert [r for r in results if not r.ok or r.skipped] == []
