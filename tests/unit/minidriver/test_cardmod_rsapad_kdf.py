"""Host-side RSA padding (cardmod.rsapad) and the CardDeriveKey KDFs (cardmod.kdf), against cryptography."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from minidriver.cardmod import kdf
from minidriver.cardmod.kdf import BufferType, KdfError, TlsProtocol, derive, derived_size
from minidriver.cardmod.rsapad import (
    HASHES,
    AlgId,
    PaddingError,
    digest_info,
    emsa_pss_encode,
    hash_for_calg,
    pkcs1_type1,
    unpad_oaep,
    unpad_pkcs1_type2,
)

KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
N = KEY.public_key().public_numbers().n
D = KEY.private_numbers().d
K = 128


def raw_private(block: bytes) -> bytes:
    return pow(int.from_bytes(block, "big"), D, N).to_bytes(K, "big")


def test_pkcs1_type1_signature_verifies() -> None:
    digest = hashlib.sha256(b"message").digest()
    block = pkcs1_type1(digest_info(HASHES["SHA256"], digest), K)
    KEY.public_key().verify(raw_private(block), digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def test_pss_signature_verifies() -> None:
    digest = hashlib.sha384(b"message").digest()
    block = emsa_pss_encode(digest, HASHES["SHA384"], 48, 1024)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    KEY.public_key().verify(raw_private(block), digest, pss, Prehashed(hashes.SHA384()))


def test_hash_for_calg() -> None:
    assert hash_for_calg(AlgId.CALG_SHA_256) is HASHES["SHA256"]
    assert hash_for_calg(AlgId.CALG_SSL3_SHAMD5) is None
    with pytest.raises(KeyError):
        hash_for_calg(0x8001)  # CALG_MD2


def test_pkcs1_type2_removal() -> None:
    ct = KEY.public_key().encrypt(b"secret", padding.PKCS1v15())
    assert unpad_pkcs1_type2(raw_private(ct), K) == b"secret"
    empty = KEY.public_key().encrypt(b"", padding.PKCS1v15())
    assert unpad_pkcs1_type2(raw_private(empty), K) == b""


@pytest.mark.parametrize(
    "block",
    [
        b"\x00\x01" + b"\xff" * 100 + b"\x00" + b"x" * 25,  # type 1
        b"\x01\x02" + b"\x11" * 100 + b"\x00" + b"x" * 25,  # first byte
        b"\x00\x02" + b"\x11" * 126,  # no separator
        b"\x00\x02" + b"\x11" * 5 + b"\x00" + b"x" * 120,  # PS shorter than 8
    ],
)
def test_pkcs1_type2_rejects_with_one_error(block: bytes) -> None:
    with pytest.raises(PaddingError, match=r"^decryption failed$"):
        unpad_pkcs1_type2(block, K)


@pytest.mark.parametrize(("name", "algo"), [("SHA1", hashes.SHA1()), ("SHA256", hashes.SHA256())])
def test_oaep_removal(name: str, algo: hashes.HashAlgorithm) -> None:
    oaep = padding.OAEP(mgf=padding.MGF1(algo), algorithm=algo, label=b"lbl")
    ct = KEY.public_key().encrypt(b"hello oaep", oaep)
    block = raw_private(ct)
    assert unpad_oaep(block, K, HASHES[name], b"lbl") == b"hello oaep"
    with pytest.raises(PaddingError, match=r"^decryption failed$"):
        unpad_oaep(block, K, HASHES[name], b"other label")
    broken = bytearray(block)
    broken[0] = 1
    with pytest.raises(PaddingError, match=r"^decryption failed$"):
        unpad_oaep(bytes(broken), K, HASHES[name], b"lbl")


# -- KDFs ------------------------------------------------------------------------------------
Z = bytes(range(32))


def utf16(name: str) -> bytes:
    return (name + "\0").encode("utf-16-le")


def test_kdf_hash_default_sha1_and_prepend_append() -> None:
    assert derive("HASH", Z, None) == hashlib.sha1(Z).digest()
    params = [
        (BufferType.KDF_HASH_ALGORITHM, utf16("SHA256")),
        (BufferType.KDF_SECRET_PREPEND, b"pre"),
        (BufferType.KDF_SECRET_APPEND, b"app"),
    ]
    assert derive("HASH", Z, params) == hashlib.sha256(b"pre" + Z + b"app").digest()
    assert derived_size("HASH", params) == 32


def test_kdf_hmac_with_and_without_key() -> None:
    params = [(BufferType.KDF_HASH_ALGORITHM, utf16("SHA384")), (BufferType.KDF_HMAC_KEY, b"k")]
    assert derive("HMAC", Z, params) == hmac.new(b"k", Z, "sha384").digest()
    assert derive("HMAC", Z, []) == hmac.new(Z, Z, "sha1").digest()


def test_kdf_concat_matches_cryptography() -> None:
    params = [
        (BufferType.KDF_HASH_ALGORITHM, utf16("SHA256")),
        (BufferType.KDF_ALGORITHMID, b"\x01alg"),
        (BufferType.KDF_PARTYUINFO, b"alice"),
        (BufferType.KDF_PARTYVINFO, b"bob"),
        (BufferType.KDF_SUPPPUBINFO, b"\x00\x00\x01\x00"),
    ]
    expected = ConcatKDFHash(hashes.SHA256(), 40, b"\x01alg" + b"alice" + b"bob" + b"\x00\x00\x01\x00").derive(Z)
    assert derive("SP800_56A_CONCAT", Z, params, 40) == expected
    with pytest.raises(KdfError, match="KDF_PARTYVINFO"):
        derive("SP800_56A_CONCAT", Z, params[:3])


def test_tls12_prf_known_answer() -> None:
    # widely published TLS 1.2 PRF (P_SHA256) test vector, first 48 bytes
    secret = bytes.fromhex("9bbe436ba940f017b17652849a71db35")
    seed = bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c")
    out = kdf._p_hash("sha256", secret, b"test label" + seed, 48)
    assert out.hex().startswith("e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a")


def test_tls_prf_parameters() -> None:
    seed = bytes(64)
    tls12 = [
        (BufferType.KDF_TLS_PRF_LABEL, b"master secret\0"),
        (BufferType.KDF_TLS_PRF_SEED, seed),
        (BufferType.KDF_TLS_PRF_PROTOCOL, struct.pack("<I", TlsProtocol.TLS1_2)),
    ]
    assert derive("TLS_PRF", Z, tls12) == kdf._p_hash("sha256", Z, b"master secret" + seed, 48)
    tls10 = tls12[:2]
    md5 = kdf._p_hash("md5", Z[:16], b"master secret" + seed, 48)
    sha = kdf._p_hash("sha1", Z[16:], b"master secret" + seed, 48)
    assert derive("TLS_PRF", Z, tls10) == bytes(a ^ b for a, b in zip(md5, sha, strict=True))
    with pytest.raises(KdfError, match="64 bytes"):
        derive("TLS_PRF", Z, [(BufferType.KDF_TLS_PRF_LABEL, b"x"), (BufferType.KDF_TLS_PRF_SEED, b"short")])


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("PBKDF2", [], "not one of"),
        ("HASH", [(BufferType.KDF_HMAC_KEY, b"k")], "not a parameter"),
        ("HASH", [(99, b"")], "unknown"),
        ("HASH", [(BufferType.KDF_SECRET_APPEND, b"a"), (BufferType.KDF_SECRET_APPEND, b"b")], "twice"),
        ("HASH", [(BufferType.KDF_HASH_ALGORITHM, utf16("MD4"))], "MD4"),
        ("HASH", [(BufferType.KDF_SECRET_HANDLE, b"\0" * 8)], "not a parameter"),
    ],
)
def test_kdf_rejects(name: str, params: list[tuple[int, bytes]], message: str) -> None:
    with pytest.raises(KdfError, match=message):
        derive(name, Z, params)
