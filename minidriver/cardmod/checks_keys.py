"""Conformance rows for the key operations (minidriver-spec.md §3.5): CardSignData, CardRSADecrypt,
CardConstructDHAgreement, CardDeriveKey, CardDestroyDHAgreement. See :mod:`.checks`; the helpers
(finding a key, logging in) are :mod:`.checks_crypto`'s.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from . import crypto as cr
from .blobs import ecc_public_blob
from .checks import Check, CheckEnv, CheckFailed
from .checks_crypto import (
    INV,
    NOKEY,
    OK,
    P256,
    REV,
    SEC,
    UNSUP,
    PublicKey,
    deauth,
    empty_index,
    expect,
    find,
    login,
    sign,
    sign_info,
)
from .codes import ScardCode as C
from .kdf import BufferType
from .rsapad import AlgId
from .structs import (
    BcryptOaepPaddingInfo,
    BcryptPkcs1PaddingInfo,
    BcryptPssPaddingInfo,
    CardDeriveKeyInfo,
    CardDhAgreementInfo,
    CardRsaDecryptInfo,
)
from .types import KeySpec, PinSet

__all__ = ["CHECKS"]


# -- rows: CardSignData ----------------------------------------------------------------------
def _sign_ec_verify(env: CheckEnv) -> int:
    index, key = find(env.card, ec.EllipticCurvePublicKey)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    login(env)
    digest = hashlib.sha256(b"vcard minidriver check").digest()
    info = sign_info(index, _ecdsa_spec(key), digest)
    code = sign(env, info)
    if code == 0:
        half = (key.curve.key_size + 7) // 8
        sig = bytes(info.pbSignedData or b"")
        expect(len(sig) == 2 * half == info.cbSignedData, f"signature is {len(sig)} bytes, not r||s of {2 * half}")
        der = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))
        try:
            key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except Exception as exc:
            raise CheckFailed(f"ECDSA signature does not verify: {exc!r}") from None
    return code


def _ecdsa_spec(key: PublicKey) -> int:
    return KeySpec.AT_ECDSA_P256 if key.key_size == 256 else KeySpec.AT_ECDSA_P384


def _sign_ec(**kw: object) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        index, key = find(env.card, ec.EllipticCurvePublicKey)
        info = sign_info(index, _ecdsa_spec(key), hashlib.sha256(b"x").digest())
        for name, value in kw.items():
            setattr(info, name, value)
        return sign(env, info)

    return run


def _sign_size_only(env: CheckEnv) -> int:
    index, key = find(env.card, ec.EllipticCurvePublicKey)
    info = sign_info(index, _ecdsa_spec(key), None, dwSigningFlags=cr.CARD_BUFFER_SIZE_ONLY)
    code = sign(env, info)
    expect(info.cbSignedData == 2 * ((key.key_size + 7) // 8) and info.pbSignedData is None, "wrong size or data")
    return code


def _sign_without_pin(env: CheckEnv) -> int:
    deauth(env.card)
    return _sign_ec()(env)


def _rsa_verify(
    key: rsa.RSAPublicKey, signature_le: bytes, digest: bytes, pad: padding.AsymmetricPadding, alg: hashes.HashAlgorithm
) -> None:
    try:
        key.verify(signature_le[::-1], digest, pad, Prehashed(alg))
    except Exception as exc:
        raise CheckFailed(f"RSA signature does not verify: {exc!r}") from None


def _sign_rsa(mode: str) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        index, key = find(env.card, rsa.RSAPublicKey)
        assert isinstance(key, rsa.RSAPublicKey)
        login(env)
        digest = hashlib.sha256(b"vcard minidriver check").digest()
        if mode == "calg":
            info = sign_info(index, KeySpec.AT_KEYEXCHANGE, digest, aiHashAlg=AlgId.CALG_SHA_256)
        elif mode == "pkcs1":
            info = sign_info(
                index,
                KeySpec.AT_KEYEXCHANGE,
                digest,
                dwSigningFlags=cr.CARD_PADDING_INFO_PRESENT,
                dwPaddingType=cr.CARD_PADDING_PKCS1,
                pPaddingInfo=BcryptPkcs1PaddingInfo("SHA256"),
            )
        else:
            info = sign_info(
                index,
                KeySpec.AT_KEYEXCHANGE,
                digest,
                dwSigningFlags=cr.CARD_PADDING_INFO_PRESENT,
                dwPaddingType=cr.CARD_PADDING_PSS,
                pPaddingInfo=BcryptPssPaddingInfo("SHA256", 32),
            )
        code = sign(env, info)
        if code == 0:
            pad = padding.PKCS1v15() if mode != "pss" else padding.PSS(padding.MGF1(hashes.SHA256()), 32)
            _rsa_verify(key, bytes(info.pbSignedData or b""), digest, pad, hashes.SHA256())
        return code

    return run


def _sign_rsa_bad(**kw: object) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        index, _ = find(env.card, rsa.RSAPublicKey)
        info = sign_info(index, KeySpec.AT_KEYEXCHANGE, hashlib.sha256(b"x").digest())
        for name, value in kw.items():
            setattr(info, name, value)
        return sign(env, info)

    return run


# -- rows: CardRSADecrypt --------------------------------------------------------------------
def _decrypt(mode: str) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        index, key = find(env.card, rsa.RSAPublicKey)
        assert isinstance(key, rsa.RSAPublicKey)
        login(env)
        secret = os.urandom(24)
        if mode == "oaep":
            pad: padding.AsymmetricPadding = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
            info = CardRsaDecryptInfo(
                2, index, KeySpec.AT_KEYEXCHANGE, None, 0, BcryptOaepPaddingInfo("SHA256"), cr.CARD_PADDING_OAEP
            )
        else:
            pad = padding.PKCS1v15()
            info = CardRsaDecryptInfo(2, index, KeySpec.AT_KEYEXCHANGE, None, 0, None, cr.CARD_PADDING_PKCS1)
        ciphertext = key.encrypt(secret, pad)[::-1]
        if mode == "short":
            ciphertext = ciphertext[:-1]
        info.pbData, info.cbData = bytearray(ciphertext), len(ciphertext)
        code = cr.CardRSADecrypt(env.card, info)
        if code == 0:
            got = bytes(info.pbData[: info.cbData])[::-1]
            expect(got == secret, "decrypted plaintext differs")
        return code

    return run


def _decrypt_bad(**kw: object) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        index, key = find(env.card, rsa.RSAPublicKey)
        info = CardRsaDecryptInfo(
            2,
            index,
            KeySpec.AT_KEYEXCHANGE,
            bytearray(key.key_size // 8),
            key.key_size // 8,
            None,
            cr.CARD_PADDING_NONE,
        )
        for name, value in kw.items():
            setattr(info, name, value)
        return cr.CardRSADecrypt(env.card, info)

    return run


# -- rows: ECDH ------------------------------------------------------------------------------
def _peer(key: PublicKey) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    assert isinstance(key, ec.EllipticCurvePublicKey)
    peer = ec.generate_private_key(key.curve)
    return peer, ecc_public_blob(peer.public_key(), ecdh=True)


def _agree(env: CheckEnv) -> tuple[int, bytes, CardDhAgreementInfo]:
    index, key = find(env.card, ec.EllipticCurvePublicKey)
    peer, blob = _peer(key)
    login(env)
    info = CardDhAgreementInfo(2, index, 0, len(blob), blob)
    code = cr.CardConstructDHAgreement(env.card, info)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return code, peer.exchange(ec.ECDH(), key), info


def _ecdh_round_trip(env: CheckEnv) -> int:
    code, z, info = _agree(env)
    if code != 0:
        return code
    params = [(BufferType.KDF_HASH_ALGORITHM, "SHA256\0".encode("utf-16-le"))]
    derive = CardDeriveKeyInfo(2, 0, "HASH", info.bSecretAgreementIndex, params)
    code = cr.CardDeriveKey(env.card, derive)
    expect(code != 0 or bytes(derive.pbDerivedKey or b"") == hashlib.sha256(z).digest(), "the two sides disagree")
    cr.CardDestroyDHAgreement(env.card, info.bSecretAgreementIndex, 0)
    return code


def _dh(**kw: object) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        index, key = find(env.card, ec.EllipticCurvePublicKey)
        blob = _peer(key)[1]
        info = CardDhAgreementInfo(2, index, 0, len(blob), blob)
        for name, value in kw.items():
            setattr(info, name, value)
        return cr.CardConstructDHAgreement(env.card, info)

    return run


def _derive(**kw: object) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        code, _, info = _agree(env)
        expect(code == 0, f"CardConstructDHAgreement answered 0x{code:08X}")
        derive = CardDeriveKeyInfo(2, 0, "HASH", info.bSecretAgreementIndex, None)
        for name, value in kw.items():
            setattr(derive, name, value)
        try:
            return cr.CardDeriveKey(env.card, derive)
        finally:
            cr.CardDestroyDHAgreement(env.card, info.bSecretAgreementIndex, 0)

    return run


def _destroy_unauthenticated(env: CheckEnv) -> int:
    code, _, info = _agree(env)
    expect(code == 0, f"CardConstructDHAgreement answered 0x{code:08X}")
    assert env.card.pfnCardDeauthenticateEx is not None
    code = env.card.pfnCardDeauthenticateEx(env.card, PinSet.ALL_ROLES & ~PinSet.ADMIN, 0)
    expect(code == 0, f"CardDeauthenticateEx(all PINs) answered 0x{code:08X}")
    return cr.CardDestroyDHAgreement(env.card, info.bSecretAgreementIndex, 0)


CHECKS: list[Check] = [
    Check("CardSignData", "pInfo NULL", INV, lambda env: cr.CardSignData(env.card, None)),
    Check("CardSignData", "dwVersion 3", REV, _sign_ec(dwVersion=3)),
    Check("CardSignData", "dwVersion 1 in a v7 context", REV, _sign_ec(dwVersion=1)),
    Check("CardSignData", "dwSigningFlags 0x100", INV, _sign_ec(dwSigningFlags=0x100)),
    Check("CardSignData", "dwKeySpec 99", INV, _sign_ec(dwKeySpec=99)),
    Check("CardSignData", "AT_ECDSA_P521 on a P-256/P-384 key", INV, _sign_ec(dwKeySpec=KeySpec.AT_ECDSA_P521)),
    Check(
        "CardSignData",
        "empty container",
        NOKEY,
        lambda env: sign(env, sign_info(empty_index(env.card), P256, b"\0" * 32)),
    ),
    Check("CardSignData", "pbData NULL", INV, _sign_ec(pbData=None)),
    Check("CardSignData", "cbData beyond pbData", INV, _sign_ec(cbData=99)),
    Check("CardSignData", "CARD_BUFFER_SIZE_ONLY", OK, _sign_size_only),
    Check("CardSignData", "no PIN", SEC, _sign_without_pin, fresh=True),
    Check("CardSignData", "ECDSA r||s verifies", OK, _sign_ec_verify),
    Check("CardSignData", "RSA aiHashAlg CALG_SHA_256 verifies", OK, _sign_rsa("calg")),
    Check("CardSignData", "RSA PKCS1 padding info verifies", OK, _sign_rsa("pkcs1")),
    Check("CardSignData", "RSA PSS verifies", OK, _sign_rsa("pss")),
    Check("CardSignData", "RSA unknown aiHashAlg", UNSUP, _sign_rsa_bad(aiHashAlg=0x8001)),
    Check("CardSignData", "RSA hash length wrong", INV, _sign_rsa_bad(aiHashAlg=AlgId.CALG_SHA1)),
    Check(
        "CardSignData",
        "RSA PSS cbSalt != hash length",
        INV,
        _sign_rsa_bad(
            dwSigningFlags=cr.CARD_PADDING_INFO_PRESENT,
            dwPaddingType=cr.CARD_PADDING_PSS,
            pPaddingInfo=BcryptPssPaddingInfo("SHA256", 20),
        ),
    ),
    Check(
        "CardSignData",
        "RSA dwPaddingType OAEP",
        INV,
        _sign_rsa_bad(dwSigningFlags=cr.CARD_PADDING_INFO_PRESENT, dwPaddingType=cr.CARD_PADDING_OAEP),
    ),
    Check("CardRSADecrypt", "pInfo NULL", INV, lambda env: cr.CardRSADecrypt(env.card, None)),
    Check("CardRSADecrypt", "dwVersion 3", REV, _decrypt_bad(dwVersion=3)),
    Check("CardRSADecrypt", "dwVersion 1 in a v7 context", REV, _decrypt_bad(dwVersion=1)),
    Check("CardRSADecrypt", "dwKeySpec AT_ECDSA_P256", INV, _decrypt_bad(dwKeySpec=P256)),
    Check("CardRSADecrypt", "pbData NULL", INV, _decrypt_bad(pbData=None)),
    Check("CardRSADecrypt", "dwPaddingType PSS", INV, _decrypt_bad(dwPaddingType=cr.CARD_PADDING_PSS)),
    Check(
        "CardRSADecrypt", "empty container", NOKEY, lambda env: _decrypt_bad(bContainerIndex=empty_index(env.card))(env)
    ),
    Check("CardRSADecrypt", "cbData shorter than the modulus", C.SCARD_E_INSUFFICIENT_BUFFER, _decrypt("short")),
    Check("CardRSADecrypt", "PKCS#1 v1.5 round trip", OK, _decrypt("pkcs1")),
    Check("CardRSADecrypt", "OAEP SHA-256 round trip", OK, _decrypt("oaep")),
    Check(
        "CardConstructDHAgreement", "pAgreementInfo NULL", INV, lambda env: cr.CardConstructDHAgreement(env.card, None)
    ),
    Check("CardConstructDHAgreement", "dwVersion 1", REV, _dh(dwVersion=1)),
    Check("CardConstructDHAgreement", "dwFlags 1", INV, _dh(dwFlags=1)),
    Check("CardConstructDHAgreement", "pbPublicKey NULL", INV, _dh(pbPublicKey=None)),
    Check(
        "CardConstructDHAgreement",
        "ECDSA blob instead of ECDH",
        INV,
        _dh(pbPublicKey=b"ECS1" + bytes(68), dwPublicKey=72),
    ),
    Check(
        "CardConstructDHAgreement",
        "empty container",
        NOKEY,
        lambda env: _dh(bContainerIndex=empty_index(env.card))(env),
    ),
    Check("CardConstructDHAgreement", "ECDH + CardDeriveKey HASH equal on both sides", OK, _ecdh_round_trip),
    Check("CardDeriveKey", "pAgreementInfo NULL", INV, lambda env: cr.CardDeriveKey(env.card, None)),
    Check("CardDeriveKey", "dwVersion 3", REV, _derive(dwVersion=3)),
    Check("CardDeriveKey", "dwFlags 0x2", INV, _derive(dwFlags=0x2)),
    Check("CardDeriveKey", 'pwszKDF L"PBKDF2"', INV, _derive(pwszKDF="PBKDF2")),
    Check("CardDeriveKey", "unknown agreement", INV, _derive(bSecretAgreementIndex=250)),
    Check("CardDeriveKey", "CARD_RETURN_KEY_HANDLE", UNSUP, _derive(dwFlags=cr.CARD_RETURN_KEY_HANDLE)),
    Check("CardDeriveKey", "KDF_HMAC_KEY for HASH", INV, _derive(pParameterList=[(BufferType.KDF_HMAC_KEY, b"k")])),
    Check("CardDeriveKey", "CARD_BUFFER_SIZE_ONLY", OK, _derive(dwFlags=cr.CARD_BUFFER_SIZE_ONLY)),
    Check("CardDestroyDHAgreement", "dwFlags 1", INV, lambda env: cr.CardDestroyDHAgreement(env.card, 0, 1)),
    Check("CardDestroyDHAgreement", "unknown agreement", INV, lambda env: cr.CardDestroyDHAgreement(env.card, 250, 0)),
    Check("CardDestroyDHAgreement", "without authentication", SEC, _destroy_unauthenticated, fresh=True),
]
