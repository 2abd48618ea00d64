"""Containers and key operations of the Cardmod API over the virtual card in process (no reader)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from incard import InProcessConnection

from minidriver.cardmod import CardAcquireContext, CardData, CardDeleteContext, Out, checks_crypto, checks_keys
from minidriver.cardmod import containers as co
from minidriver.cardmod import crypto as cr
from minidriver.cardmod.blobs import (
    CapiAlg,
    ecc_private_blob,
    ecc_public_blob,
    parse_ecc_public_blob,
    parse_rsa_public_blob,
    rsa_private_blob,
)
from minidriver.cardmod.checks import all_checks, format_table, run_checks
from minidriver.cardmod.codes import ScardCode as C
from minidriver.cardmod.kdf import BufferType
from minidriver.cardmod.rsapad import AlgId
from minidriver.cardmod.structs import (
    BcryptPkcs1PaddingInfo,
    CardDeriveKeyInfo,
    CardDhAgreementInfo,
    CardRsaDecryptInfo,
    CardSigningInfo,
    ContainerInfo,
)
from minidriver.cardmod.types import KeySpec

CHECKS = [*checks_crypto.CHECKS, *checks_keys.CHECKS]
MGMT = bytes.fromhex("010203040506070801020304050607080102030405060708")
PIN = b"123456"


def card_data(conn: InProcessConnection, version: int = 7) -> CardData:
    cd = CardData(
        dwVersion=version,
        pbAtr=conn.atr,
        cbAtr=len(conn.atr),
        pwszCardName="vcard",
        hSCardCtx=1,
        hScard=1,
        connection=conn,
    )
    assert CardAcquireContext(cd, 0) == 0
    return cd


@pytest.fixture
def conn() -> InProcessConnection:
    return InProcessConnection()


@pytest.fixture
def cd(conn: InProcessConnection) -> CardData:
    data = card_data(conn)
    yield data
    CardDeleteContext(data)


def admin(cd: CardData) -> None:
    challenge: Out[bytearray] = Out()
    assert cd.pfnCardGetChallenge is not None and cd.pfnCardAuthenticateChallenge is not None
    assert cd.pfnCardGetChallenge(cd, challenge, Out()) == 0
    enc = Cipher(TripleDES(MGMT), modes.ECB()).encryptor()
    response = enc.update(bytes(challenge.value or b"")) + enc.finalize()
    assert cd.pfnCardAuthenticateChallenge(cd, response, len(response), None) == 0


def login(cd: CardData) -> None:
    assert cd.pfnCardAuthenticatePin is not None
    assert cd.pfnCardAuthenticatePin(cd, "user", PIN, len(PIN), None) == 0


def info_blob(cd: CardData, index: int) -> tuple[bytes, bool]:
    info = ContainerInfo()
    assert co.CardGetContainerInfo(cd, index, 0, info) == 0
    return bytes(info.pbSigPublicKey or info.pbKeyExPublicKey or b""), info.pbKeyExPublicKey is not None


# -- the checker's rows, in process ------------------------------------------------------------
def test_every_crypto_check_row_passes_in_process(conn: InProcessConnection) -> None:
    results = run_checks(
        CHECKS,
        lambda: CardData(
            pbAtr=conn.atr, cbAtr=len(conn.atr), pwszCardName="vcard", hSCardCtx=1, hScard=1, connection=conn
        ),
        destructive=True,
    )
    table = format_table(results)
    assert all(r.ok for r in results), table
    skipped = [r for r in results if r.skipped]
    assert not skipped, table  # destructive rows made an RSA key, so every row ran
    assert len(results) == len(CHECKS)


def slot_metadata(conn: InProcessConnection, slot: int) -> bytes:
    assert conn.card.transmit(bytes.fromhex("00A4040009A00000030800001000"))[-2:] == b"\x90\x00"
    return conn.card.transmit(bytes.fromhex(f"00F700{slot:02X}00"))


def test_non_destructive_run_leaves_keys_alone(conn: InProcessConnection) -> None:
    before = [slot_metadata(conn, slot) for slot in (0x9A, 0x94, 0x95)]
    results = run_checks(
        CHECKS,
        lambda: CardData(
            pbAtr=conn.atr, cbAtr=len(conn.atr), pwszCardName="vcard", hSCardCtx=1, hScard=1, connection=conn
        ),
    )
    assert all(r.ok for r in results), format_table(results)
    assert len(results) == sum(not c.destructive for c in CHECKS)
    assert any(r.skipped for r in results)  # the default card has no RSA key: RSA rows skip
    after = [slot_metadata(conn, slot) for slot in (0x9A, 0x94, 0x95)]
    assert before == after
    assert before[1][-2:] == b"\x6a\x88"  # 94 still empty


def test_all_checks_collects_row_modules() -> None:
    names = {c.function for c in all_checks()}
    assert {"CardSignData", "CardRSADecrypt", "CardCreateContainer"} <= names


# -- containers --------------------------------------------------------------------------------
def test_default_card_has_p256_signature_container(cd: CardData) -> None:
    blob, key_exchange = info_blob(cd, 0)
    key, kind = parse_ecc_public_blob(blob)
    assert key.curve.name == "secp256r1" and not kind.ecdh and not key_exchange


def test_generate_rsa_2048_in_9d_is_key_exchange(cd: CardData) -> None:
    assert co.CardCreateContainer(cd, 2, 1, KeySpec.AT_KEYEXCHANGE, 2048, None) == C.SCARD_W_SECURITY_VIOLATION
    admin(cd)
    assert co.CardCreateContainer(cd, 2, 1, KeySpec.AT_KEYEXCHANGE, 2048, None) == 0
    blob, key_exchange = info_blob(cd, 2)
    key, alg = parse_rsa_public_blob(blob)
    assert key.key_size == 2048 and alg == CapiAlg.CALG_RSA_KEYX and key_exchange


def test_import_ec_key_then_sign_verifies(cd: CardData) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    admin(cd)
    blob = ecc_private_blob(private, ecdh=False)
    assert co.CardCreateContainer(cd, 1, 2, KeySpec.AT_ECDSA_P384, 0, blob) == 0
    got, _ = info_blob(cd, 1)
    assert parse_ecc_public_blob(got)[0].public_numbers() == private.public_key().public_numbers()
    digest = hashlib.sha384(b"m").digest()
    info = CardSigningInfo(2, 1, KeySpec.AT_ECDSA_P384, 0, 0, digest, len(digest))
    assert cr.CardSignData(cd, info) == C.SCARD_W_SECURITY_VIOLATION  # 9C: PIN always
    login(cd)
    assert cr.CardSignData(cd, info) == 0
    sig = bytes(info.pbSignedData or b"")
    assert len(sig) == 96
    der = encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big"))
    private.public_key().verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA384())))


def test_import_blob_must_match_key_spec(cd: CardData) -> None:
    admin(cd)
    ecdh_blob = ecc_private_blob(ec.generate_private_key(ec.SECP256R1()), ecdh=True)
    assert co.CardCreateContainer(cd, 2, 2, KeySpec.AT_ECDSA_P256, 0, ecdh_blob) == C.SCARD_E_INVALID_PARAMETER
    assert co.CardCreateContainer(cd, 2, 2, KeySpec.AT_ECDHE_P384, 0, ecdh_blob) == C.SCARD_E_INVALID_PARAMETER
    rsa_blob = rsa_private_blob(rsa.generate_private_key(public_exponent=65537, key_size=1024), CapiAlg.CALG_RSA_KEYX)
    assert co.CardCreateContainer(cd, 2, 2, KeySpec.AT_KEYEXCHANGE, 2048, rsa_blob) == C.SCARD_E_INVALID_PARAMETER
    assert co.CardCreateContainer(cd, 2, 2, KeySpec.AT_KEYEXCHANGE, 0, rsa_blob) == 0


def test_create_replaces_stale_certificate(cd: CardData, conn: InProcessConnection) -> None:
    admin(cd)
    assert co.CardCreateContainer(cd, 0, 1, KeySpec.AT_ECDSA_P256, 0, None) == 0
    # the profile's self-signed certificate in 5FC105 no longer matches: it is gone
    assert conn.card.transmit(bytes.fromhex("00CB3FFF055C035FC10500"))[-2:] == b"\x6a\x82"


def test_delete_container_without_delete_key_changes_nothing(cd: CardData) -> None:
    admin(cd)
    assert co.CardDeleteContainer(cd, 0, 0) == C.SCARD_E_UNSUPPORTED_FEATURE
    assert info_blob(cd, 0)[0]
    assert co.CardDeleteContainer(cd, 5, 0) == 0  # empty slot
    assert co.CardDeleteContainer(cd, 255, 0) == 0


def test_create_container_ex_pin_policy(cd: CardData, conn: InProcessConnection) -> None:
    admin(cd)
    assert co.CardCreateContainerEx(cd, 4, 1, KeySpec.AT_ECDHE_P256, 0, None, 0) == 0  # ROLE_EVERYONE
    meta = conn.card.transmit(bytes.fromhex("00F7008200"))
    assert meta[-2:] == b"\x90\x00" and bytes.fromhex("0202 0101") in meta  # PIN policy never
    peer = ec.generate_private_key(ec.SECP256R1())
    blob = ecc_public_blob(peer.public_key(), ecdh=True)
    info = CardDhAgreementInfo(2, 4, 0, len(blob), blob)
    assert cr.CardConstructDHAgreement(cd, info) == 0  # no PIN needed


def test_create_container_ex_is_v7_only(conn: InProcessConnection) -> None:
    cd6 = card_data(conn, 6)
    assert cd6.pfnCardCreateContainerEx is None and cd6.pfnCardCreateContainer is not None


# -- RSA -----------------------------------------------------------------------------------
@pytest.fixture
def rsa_cd(cd: CardData) -> tuple[CardData, rsa.RSAPublicKey]:
    admin(cd)
    assert co.CardCreateContainer(cd, 2, 1, KeySpec.AT_KEYEXCHANGE, 2048, None) == 0
    key, _ = parse_rsa_public_blob(info_blob(cd, 2)[0])
    login(cd)
    return cd, key


@pytest.mark.parametrize(
    ("alg", "data", "expected_payload"),
    [
        (0, b"raw payload", b"raw payload"),
        (AlgId.CALG_SSL3_SHAMD5, bytes(36), bytes(36)),
        (AlgId.CALG_SHA1, bytes(20), bytes.fromhex("3021300906052b0e03021a05000414") + bytes(20)),
    ],
)
def test_rsa_sign_block_forms(
    rsa_cd: tuple[CardData, rsa.RSAPublicKey], alg: int, data: bytes, expected_payload: bytes
) -> None:
    cd, key = rsa_cd
    info = CardSigningInfo(2, 2, KeySpec.AT_SIGNATURE, 0, alg, data, len(data))
    assert cr.CardSignData(cd, info) == 0
    sig = int.from_bytes(bytes(info.pbSignedData or b"")[::-1], "big")  # little-endian at the interface
    n, e = key.public_numbers().n, key.public_numbers().e
    block = pow(sig, e, n).to_bytes(256, "big")
    assert block == b"\x00\x01" + b"\xff" * (256 - 3 - len(expected_payload)) + b"\x00" + expected_payload


def test_rsa_sign_pkcs1_without_alg_and_none(rsa_cd: tuple[CardData, rsa.RSAPublicKey]) -> None:
    cd, _key = rsa_cd
    digest = hashlib.sha256(b"m").digest()
    info = CardSigningInfo(
        2,
        2,
        KeySpec.AT_KEYEXCHANGE,
        cr.CARD_PADDING_INFO_PRESENT,
        0,
        digest,
        32,
        None,
        0,
        BcryptPkcs1PaddingInfo(None),
        cr.CARD_PADDING_PKCS1,
    )
    assert cr.CardSignData(cd, info) == 0
    block = b"\x00\x01" + b"\xff" * 221 + b"\x00" + digest
    raw = CardSigningInfo(
        2, 2, KeySpec.AT_KEYEXCHANGE, cr.CARD_PADDING_INFO_PRESENT, 0, block, 256, None, 0, None, cr.CARD_PADDING_NONE
    )
    assert cr.CardSignData(cd, raw) == 0
    assert raw.pbSignedData == info.pbSignedData
    size = CardSigningInfo(2, 2, KeySpec.AT_KEYEXCHANGE, cr.CARD_BUFFER_SIZE_ONLY, AlgId.CALG_SHA_256, None, 0)
    assert cr.CardSignData(cd, size) == 0 and size.cbSignedData == 256
    too_big = CardSigningInfo(2, 2, KeySpec.AT_KEYEXCHANGE, 0, 0, bytes(250), 250)
    assert cr.CardSignData(cd, too_big) == C.SCARD_E_INSUFFICIENT_BUFFER


def test_rsa_decrypt_v1_raw_and_byte_order(
    rsa_cd: tuple[CardData, rsa.RSAPublicKey], conn: InProcessConnection
) -> None:
    cd, key = rsa_cd
    ct = key.encrypt(b"hello", padding.PKCS1v15())
    cd6 = card_data(conn, 6)
    login(cd6)
    info = CardRsaDecryptInfo(1, 2, KeySpec.AT_KEYEXCHANGE, bytearray(ct[::-1]), 256)
    assert cr.CardRSADecrypt(cd6, info) == 0
    block = bytes(info.pbData or b"")[::-1]
    assert block[:2] == b"\x00\x02" and block.endswith(b"\x00hello") and info.cbData == 256
    v2_none = CardRsaDecryptInfo(2, 2, KeySpec.AT_KEYEXCHANGE, bytearray(ct[::-1]), 256, None, cr.CARD_PADDING_NONE)
    assert cr.CardRSADecrypt(cd, v2_none) == 0 and bytes(v2_none.pbData or b"")[::-1] == block
    assert cr.CardRSADecrypt(cd, CardRsaDecryptInfo(1, 2, 1, bytearray(ct), 256)) == C.ERROR_REVISION_MISMATCH
    assert (
        cr.CardRSADecrypt(cd, CardRsaDecryptInfo(2, 2, 1, ct, 256, None, 2)) == C.SCARD_E_INVALID_PARAMETER
    )  # bytes: not writable


def test_rsa_decrypt_bad_padding_is_one_error(rsa_cd: tuple[CardData, rsa.RSAPublicKey]) -> None:
    cd, key = rsa_cd
    garbage = pow(0x1234567890, key.public_numbers().e, key.public_numbers().n).to_bytes(256, "big")
    info = CardRsaDecryptInfo(2, 2, KeySpec.AT_KEYEXCHANGE, bytearray(garbage[::-1]), 256, None, cr.CARD_PADDING_PKCS1)
    assert cr.CardRSADecrypt(cd, info) == C.SCARD_E_INVALID_VALUE


# -- ECDH ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kdf", "params", "reference"),
    [
        ("HASH", None, lambda z: hashlib.sha1(z).digest()),
        ("HMAC", [(BufferType.KDF_HMAC_KEY, b"key")], lambda z: __import__("hmac").new(b"key", z, "sha1").digest()),
    ],
)
def test_ecdh_both_sides_agree(
    cd: CardData, kdf: str, params: list[tuple[int, bytes]] | None, reference: object
) -> None:
    login(cd)
    card_key, _ = parse_ecc_public_blob(info_blob(cd, 0)[0])
    peer = ec.generate_private_key(ec.SECP256R1())
    blob = ecc_public_blob(peer.public_key(), ecdh=True)
    info = CardDhAgreementInfo(2, 0, 0, len(blob), blob)
    assert cr.CardConstructDHAgreement(cd, info) == 0
    derive = CardDeriveKeyInfo(2, 0, kdf, info.bSecretAgreementIndex, params)
    assert cr.CardDeriveKey(cd, derive) == 0
    z = peer.exchange(ec.ECDH(), card_key)
    assert bytes(derive.pbDerivedKey or b"") == reference(z)  # type: ignore[operator]
    assert cr.CardDestroyDHAgreement(cd, info.bSecretAgreementIndex, 0) == 0
    assert cr.CardDeriveKey(cd, derive) == C.SCARD_E_INVALID_PARAMETER  # gone


def test_ecdh_needs_v5_and_rejects_wrong_curve(conn: InProcessConnection, cd: CardData) -> None:
    cd4 = card_data(conn, 4)
    assert cd4.pfnCardDeriveKey is None and cd4.pfnCardDestroyDHAgreement is None
    blob = ecc_public_blob(ec.generate_private_key(ec.SECP256R1()).public_key(), ecdh=True)
    assert (
        cr.CardConstructDHAgreement(cd4, CardDhAgreementInfo(2, 0, 0, len(blob), blob)) == C.SCARD_E_UNSUPPORTED_FEATURE
    )
    p384 = ecc_public_blob(ec.generate_private_key(ec.SECP384R1()).public_key(), ecdh=True)
    login(cd)
    assert cr.CardConstructDHAgreement(cd, CardDhAgreementInfo(2, 0, 0, len(p384), p384)) == C.SCARD_E_INVALID_PARAMETER


def test_agreements_end_with_the_card(cd: CardData, conn: InProcessConnection) -> None:
    login(cd)
    blob = ecc_public_blob(ec.generate_private_key(ec.SECP256R1()).public_key(), ecdh=True)
    info = CardDhAgreementInfo(2, 0, 0, len(blob), blob)
    assert cr.CardConstructDHAgreement(cd, info) == 0
    conn.remove()
    assert cr.CardSignData(cd, CardSigningInfo(2, 0, 3, 0, 0, bytes(32), 32)) == C.SCARD_W_REMOVED_CARD
    conn.insert()
    derive = CardDeriveKeyInfo(2, 0, "HASH", info.bSecretAgreementIndex, None)
    assert cr.CardDeriveKey(cd, derive) == C.SCARD_E_INVALID_PARAMETER


def test_delete_container_on_a_57_card_sends_delete_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "emulator/profiles/default.toml").read_text()
    text = text.replace('version = "5.4.3"', 'version = "5.7.0"')
    text = "\n".join(
        f'state_file = "{tmp_path / "s.sqlite"}"' if x.startswith("state_file") else x for x in text.splitlines()
    )
    profile = tmp_path / "p57.toml"
    profile.write_text(text + "\n")
    conn = InProcessConnection(str(profile))
    cd = card_data(conn)
    admin(cd)
    conn.sent.clear()
    code = co.CardDeleteContainer(cd, 0, 0)
    assert bytes.fromhex("00F6FF9A") in [apdu[:4] for apdu in conn.sent]  # YubiKey 5.7 DELETE KEY (MOVE KEY P1=FF)
    # the virtual card does not implement MOVE KEY (6D00): the spec's code, the key stays
    assert code == C.SCARD_E_UNSUPPORTED_FEATURE
    assert info_blob(cd, 0)[0]


def test_v1_signing_info_accepted_below_v7(conn: InProcessConnection) -> None:
    cd6 = card_data(conn, 6)
    login(cd6)
    digest = hashlib.sha256(b"m").digest()
    info = CardSigningInfo(1, 0, KeySpec.AT_ECDSA_P256, 0, 0, digest, 32)
    assert cr.CardSignData(cd6, info) == 0 and info.cbSignedData == 64
    info = CardSigningInfo(0, 0, KeySpec.AT_ECDSA_P256, cr.CARD_PADDING_INFO_PRESENT, 0, digest, 32)
    assert cr.CardSignData(cd6, info) == 0  # version 0 = 1; padding info ignored for ECDSA
