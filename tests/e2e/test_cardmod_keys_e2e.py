"""The Cardmod API's containers and key operations through the real pcscd + vpcd + daemon.

Every call goes CardData (made for a reader name) -> minidriver -> pyscard -> pcscd -> vpcd ->
the virtual card; results are checked with ``cryptography``. The last tests run the conformance
checker (``python -m minidriver check``) as a user would, and drive two cards at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cardmod_e2e import context
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from piv_e2e import MGMT_KEY, PIN

from emulator.control.client.api import VCard
from emulator.pytest_plugin import LiveCard
from minidriver import (
    CardAuthenticateChallenge,
    CardAuthenticatePin,
    CardConstructDHAgreement,
    CardCreateContainer,
    CardData,
    CardDeleteContainer,
    CardDeriveKey,
    CardDestroyDHAgreement,
    CardGetChallenge,
    CardGetContainerInfo,
    CardRSADecrypt,
    CardSignData,
    Out,
    ScardCode,
)
from minidriver.cardmod.blobs import ecc_public_blob, parse_ecc_public_blob, parse_rsa_public_blob
from minidriver.cardmod.crypto import CARD_PADDING_INFO_PRESENT, CARD_PADDING_OAEP, CARD_PADDING_PKCS1, CARD_PADDING_PSS
from minidriver.cardmod.structs import (
    BcryptOaepPaddingInfo,
    BcryptPssPaddingInfo,
    CardDhAgreementInfo,
    CardRsaDecryptInfo,
    CardSigningInfo,
    ContainerInfo,
)
from minidriver.cardmod.structs import (
    CardDeriveKeyInfo as DeriveInfo,
)
from minidriver.cardmod.types import KeySpec

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
IDX_9A, IDX_9C, IDX_9D, IDX_82 = 0, 1, 2, 4


def admin(cd: CardData) -> None:
    challenge: Out[bytearray] = Out()
    assert CardGetChallenge(cd, challenge, Out()) == 0
    enc = Cipher(TripleDES(MGMT_KEY), modes.ECB()).encryptor()
    response = enc.update(bytes(challenge.value or b"")) + enc.finalize()
    assert CardAuthenticateChallenge(cd, response, len(response), None) == 0


def login(cd: CardData) -> None:
    assert CardAuthenticatePin(cd, "user", PIN.encode(), len(PIN), None) == 0


def public(cd: CardData, index: int) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    info = ContainerInfo()
    assert CardGetContainerInfo(cd, index, 0, info) == 0
    blob = bytes(info.pbSigPublicKey or info.pbKeyExPublicKey or b"")
    return parse_rsa_public_blob(blob)[0] if blob[0] == 0x06 else parse_ecc_public_blob(blob)[0]


def ecdsa_sign_verify(cd: CardData, index: int, key: ec.EllipticCurvePublicKey) -> None:
    digest = hashlib.sha256(b"signed through pcscd").digest()
    info = CardSigningInfo(2, index, KeySpec.AT_ECDSA_P256, 0, 0, digest, len(digest))
    assert CardSignData(cd, info) == 0
    sig = bytes(info.pbSignedData or b"")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_p256_sign_on_9a_verifies(vcard: LiveCard) -> None:
    with context(vcard.reader) as cd:
        key = public(cd, IDX_9A)
        assert isinstance(key, ec.EllipticCurvePublicKey)
        info = CardSigningInfo(2, IDX_9A, KeySpec.AT_ECDSA_P256, 0, 0, bytes(32), 32)
        assert CardSignData(cd, info) == ScardCode.SCARD_W_SECURITY_VIOLATION  # no PIN yet
        login(cd)
        ecdsa_sign_verify(cd, IDX_9A, key)


def test_rsa_2048_generated_in_9d_and_9c(vcard: LiveCard) -> None:
    with context(vcard.reader) as cd:
        assert (
            CardCreateContainer(cd, IDX_9D, 1, KeySpec.AT_KEYEXCHANGE, 2048, None)
            == ScardCode.SCARD_W_SECURITY_VIOLATION
        )
        admin(cd)
        for index in (IDX_9D, IDX_9C):
            assert CardCreateContainer(cd, index, 1, KeySpec.AT_KEYEXCHANGE, 2048, None) == 0
        kx, sig_key = public(cd, IDX_9D), public(cd, IDX_9C)
        assert isinstance(kx, rsa.RSAPublicKey) and isinstance(sig_key, rsa.RSAPublicKey) and kx.key_size == 2048
        login(cd)
        # decrypt with 9D: PKCS#1 v1.5 and OAEP, ciphertext little-endian at the interface
        for pad, kind, pinfo in (
            (padding.PKCS1v15(), CARD_PADDING_PKCS1, None),
            (
                padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
                CARD_PADDING_OAEP,
                BcryptOaepPaddingInfo("SHA256"),
            ),
        ):
            ct = kx.encrypt(b"session key bytes", pad)[::-1]
            info = CardRsaDecryptInfo(2, IDX_9D, KeySpec.AT_KEYEXCHANGE, bytearray(ct), len(ct), pinfo, kind)
            assert CardRSADecrypt(cd, info) == 0
            assert bytes(info.pbData or b"")[: info.cbData][::-1] == b"session key bytes"
        # sign with 9C (PIN always: VERIFY right before the signature)
        digest = hashlib.sha256(b"document").digest()
        info = CardSigningInfo(
            2,
            IDX_9C,
            KeySpec.AT_SIGNATURE,
            CARD_PADDING_INFO_PRESENT,
            0,
            digest,
            32,
            None,
            0,
            BcryptPssPaddingInfo("SHA256", 32),
            CARD_PADDING_PSS,
        )
        login(cd)
        assert CardSignData(cd, info) == 0
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
        sig_key.verify(bytes(info.pbSignedData or b"")[::-1], digest, pss, Prehashed(hashes.SHA256()))


def test_ecdh_p384_both_sides_agree(vcard: LiveCard) -> None:
    with context(vcard.reader) as cd:
        admin(cd)
        assert CardCreateContainer(cd, IDX_82, 1, KeySpec.AT_ECDHE_P384, 0, None) == 0
        card_key = public(cd, IDX_82)
        assert isinstance(card_key, ec.EllipticCurvePublicKey) and card_key.curve.name == "secp384r1"
        info_blob = ContainerInfo()
        assert CardGetContainerInfo(cd, IDX_82, 0, info_blob) == 0 and info_blob.pbKeyExPublicKey is not None
        login(cd)
        peer = ec.generate_private_key(ec.SECP384R1())
        blob = ecc_public_blob(peer.public_key(), ecdh=True)
        agreement = CardDhAgreementInfo(2, IDX_82, 0, len(blob), blob)
        assert CardConstructDHAgreement(cd, agreement) == 0
        derive = DeriveInfo(2, 0, "HASH", agreement.bSecretAgreementIndex, [(0, "SHA384\0".encode("utf-16-le"))])
        assert CardDeriveKey(cd, derive) == 0
        assert bytes(derive.pbDerivedKey or b"") == hashlib.sha384(peer.exchange(ec.ECDH(), card_key)).digest()
        assert CardDestroyDHAgreement(cd, agreement.bSecretAgreementIndex, 0) == 0


def test_container_create_and_delete(vcard: LiveCard) -> None:
    with context(vcard.reader) as cd:
        empty = ContainerInfo()
        assert CardGetContainerInfo(cd, 5, 0, empty) == ScardCode.SCARD_E_NO_KEY_CONTAINER
        assert CardDeleteContainer(cd, 5, 0) == 0  # an empty container: success
        admin(cd)
        assert CardCreateContainer(cd, 5, 1, KeySpec.AT_ECDSA_P256, 0, None) == 0
        key = public(cd, 5)
        # this card (YubiKey 5.4 edge) has no DELETE KEY: the spec's code, and nothing changes
        assert CardDeleteContainer(cd, 5, 0) == ScardCode.SCARD_E_UNSUPPORTED_FEATURE
    with context(vcard.reader) as cd:  # a new context reads the card again
        assert public(cd, 5).public_numbers() == key.public_numbers()  # type: ignore[union-attr]


RSA_ONLY_KEYS = """
[[piv.keys]]
slot = "9a"
algorithm = "RSA2048"
pin_policy = "once"
touch_policy = "never"
self_signed_subject = "CN=vcard RSA-only test key (TEST ONLY)"
"""


def rsa_only_profile(tmp_path: Path) -> Path:
    text = (REPO / "emulator/profiles/default.toml").read_text()
    head = text.split("[[piv.keys]]")[0]
    head = "\n".join(
        f'state_file = "{tmp_path / "rsa.sqlite"}"'
        if line.startswith("state_file")
        else 'name = "rsa-only"'
        if line.startswith("name =")
        else line
        for line in head.splitlines()
    )
    path = tmp_path / "rsa-only.toml"
    path.write_text(head.rstrip("\n#") + "\n" + RSA_ONLY_KEYS)
    return path


@pytest.fixture
def second_card(vcard: LiveCard, vcard_stack: VCard, tmp_path: Path) -> Iterator[str]:
    vcard_stack.insert(1, profile=str(rsa_only_profile(tmp_path)), wait=True)
    try:
        yield vcard_stack.reader_name(1)
    finally:
        vcard_stack.remove(1, wait=True)


def test_two_cards_at_once(vcard: LiveCard, second_card: str) -> None:
    with context(vcard.reader) as ec_cd, context(second_card) as rsa_cd:
        ec_key, rsa_key = public(ec_cd, IDX_9A), public(rsa_cd, IDX_9A)
        assert isinstance(ec_key, ec.EllipticCurvePublicKey) and isinstance(rsa_key, rsa.RSAPublicKey)
        login(ec_cd)
        login(rsa_cd)
        digest = hashlib.sha256(b"two cards").digest()
        info = CardSigningInfo(2, IDX_9A, KeySpec.AT_SIGNATURE, 0, 0x800C, digest, 32)  # CALG_SHA_256
        assert CardSignData(rsa_cd, info) == 0
        ecdsa_sign_verify(ec_cd, IDX_9A, ec_key)
        rsa_key.verify(bytes(info.pbSignedData or b"")[::-1], digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def run_checker(card: LiveCard, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **card.env}
    return subprocess.run(
        [sys.executable, "-m", "minidriver", "check", "--reader", card.reader, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def test_checker_passes_against_the_live_card(vcard: LiveCard) -> None:
    proc = run_checker(vcard, "--destructive", "--json")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert len(rows) > 100 and all(r["ok"] for r in rows)
    functions = {r["function"] for r in rows}
    assert {"CardSignData", "CardRSADecrypt", "CardConstructDHAgreement", "CardAcquireContext"} <= functions
    ran = [r for r in rows if not r["skipped"]]
    assert len(ran) >= len(rows) - 5  # the destructive rows made RSA keys: almost nothing skips


def test_checker_usage_errors(vcard: LiveCard) -> None:
    proc = run_checker(vcard, "--reader", "No Such Reader 99")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "cannot connect" in proc.stderr
