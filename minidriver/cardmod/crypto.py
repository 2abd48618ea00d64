"""Private-key operations: CardSignData, CardRSADecrypt, CardConstructDHAgreement, CardDeriveKey,
CardDestroyDHAgreement (minidriver-spec.md §3.5, §4).

A PIV card does raw RSA, ECDSA over a hash and ECDH (GENERAL AUTHENTICATE, SP 800-73-4 part 2
§3.2.4), so the host does the rest: PKCS#1 v1.5 / PSS encoding before signing, PKCS#1 / OAEP
removal after decrypting (:mod:`.rsapad`, constant time), KDFs after ECDH (:mod:`.kdf`).

Byte orders at the interface (as OpenSC's minidriver and the Base CSP use them): the hash to sign
is taken as given; an RSA signature comes back **little-endian** (byte-reversed); an ECDSA
signature is r || s big-endian, each the field size; CardRSADecrypt takes the ciphertext
little-endian and writes the result back byte-reversed in place.

Agreements live in ``MinidriverContext.dh`` (index -> shared secret Z) until
CardDestroyDHAgreement, a card change or CardDeleteContext. CARD_RETURN_KEY_HANDLE is
SCARD_E_UNSUPPORTED_FEATURE: no key handle can be made from an ECDH secret on this card.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..iso7816 import ApduError
from .blobs import BlobError, parse_ecc_public_blob
from .codes import MinidriverError, ScardCode
from .containers import alloc, card_error, require_container
from .context import context_of, entry
from .kdf import KDF_NAMES, KdfError, derive, derived_size
from .piv_map import Container, core_state
from .rsapad import (
    HASHES,
    SSL3_SHAMD5_LEN,
    AlgId,
    HashSpec,
    PaddingError,
    digest_info,
    emsa_pss_encode,
    hash_for_alg_id,
    hash_for_calg,
    pkcs1_type1,
    unpad_oaep,
    unpad_pkcs1_type2,
)
from .structs import (
    BcryptOaepPaddingInfo,
    BcryptPkcs1PaddingInfo,
    BcryptPssPaddingInfo,
    CardDeriveKeyInfo,
    CardDhAgreementInfo,
    CardRsaDecryptInfo,
    CardSigningInfo,
)
from .types import CardData, CardDataVersion, KeySpec, PinSet

__all__ = [
    "CARD_BUFFER_SIZE_ONLY",
    "CARD_PADDING_INFO_PRESENT",
    "CARD_PADDING_NONE",
    "CARD_PADDING_OAEP",
    "CARD_PADDING_PKCS1",
    "CARD_PADDING_PSS",
    "CARD_RETURN_KEY_HANDLE",
    "CardConstructDHAgreement",
    "CardDeriveKey",
    "CardDestroyDHAgreement",
    "CardRSADecrypt",
    "CardSignData",
]

CARD_PADDING_NONE = 0x1
CARD_PADDING_PKCS1 = 0x2
CARD_PADDING_PSS = 0x4
CARD_PADDING_OAEP = 0x8
CARD_PADDING_INFO_PRESENT = 0x40000000
CARD_BUFFER_SIZE_ONLY = 0x20000000
CARD_RETURN_KEY_HANDLE = 0x1000000
CARD_SIGNING_INFO_CURRENT_VERSION = 2
CARD_RSA_KEY_DECRYPT_INFO_VERSION_TWO = 2
CARD_DH_AGREEMENT_INFO_VERSION = 2
CARD_DERIVE_KEY_VERSION_TWO = 2
MAX_AGREEMENTS = 32  #: secrets a context keeps at once (bSecretAgreementIndex is a BYTE)
_PADDING_BITS = CARD_PADDING_NONE | CARD_PADDING_PKCS1 | CARD_PADDING_PSS | CARD_PADDING_OAEP
_SIGN_FLAGS = CARD_PADDING_INFO_PRESENT | CARD_BUFFER_SIZE_ONLY | _PADDING_BITS
_KEY_SPECS = frozenset(int(k) for k in KeySpec)
_ECDSA_SPECS = {256: KeySpec.AT_ECDSA_P256, 384: KeySpec.AT_ECDSA_P384}


def _invalid(why: str) -> MinidriverError:
    return MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, why)


def _version(value: int, current: int, what: str) -> int:
    version = value or 1  # a version 0 structure is version 1 (§1)
    if version > current:
        raise MinidriverError(ScardCode.ERROR_REVISION_MISMATCH, f"{what} version {value}")
    return version


def _data(data: bytes | bytearray | None, size: int, what: str) -> bytes:
    if data is None:
        raise _invalid(f"{what} is NULL")
    if not isinstance(size, int) or not 0 <= size <= len(data):
        raise _invalid(f"cb of {what} ({size!r}) does not fit the buffer")
    return bytes(data[:size])


def _private_op(card_data: CardData, c: Container, op: str, data: bytes) -> bytes:
    piv, _state = core_state(card_data)
    try:
        if op == "sign":
            return piv.sign_raw(c.slot, c.key.algorithm, data)
        if op == "decrypt":
            return piv.decrypt_raw(c.slot, c.key.algorithm, data)
        return piv.ecdh(c.slot, c.key.algorithm, data)
    except ApduError as exc:
        raise card_error(exc, op) from None


# -- CardSignData ----------------------------------------------------------------------------
def _hash_len(spec: HashSpec, data: bytes) -> None:
    if len(data) != spec.size:
        raise _invalid(f"a {spec.bcrypt} hash is {spec.size} bytes, pbData has {len(data)}")


def _rsa_sign_block(info: CardSigningInfo, version: int, data: bytes, key: rsa.RSAPublicKey) -> bytes:
    """The block the card exponentiates: PKCS#1 v1.5 type 1, PSS, or the data itself (§3.5)."""
    k = (key.key_size + 7) // 8
    if info.dwSigningFlags & CARD_PADDING_INFO_PRESENT:
        if version < CARD_SIGNING_INFO_CURRENT_VERSION:
            raise _invalid("CARD_PADDING_INFO_PRESENT in a version 1 CARD_SIGNING_INFO")
        kind, pad = info.dwPaddingType, info.pPaddingInfo
        if kind == CARD_PADDING_NONE:
            if len(data) > k:
                raise MinidriverError(ScardCode.SCARD_E_INSUFFICIENT_BUFFER, "data longer than the modulus")
            if int.from_bytes(data, "big") >= key.public_numbers().n:
                raise _invalid("data is not below the modulus")
            return data.rjust(k, b"\0")
        if kind == CARD_PADDING_PKCS1:
            if not isinstance(pad, BcryptPkcs1PaddingInfo):
                raise _invalid("CARD_PADDING_PKCS1 needs a BCRYPT_PKCS1_PADDING_INFO")
            payload = data if pad.pszAlgId is None else _digest_info_for(pad.pszAlgId, data)
        elif kind == CARD_PADDING_PSS:
            if not isinstance(pad, BcryptPssPaddingInfo):
                raise _invalid("CARD_PADDING_PSS needs a BCRYPT_PSS_PADDING_INFO")
            spec = _bcrypt_hash(pad.pszAlgId or "SHA1")
            if pad.cbSalt != spec.size:
                raise _invalid(f"cbSalt {pad.cbSalt} is not the {spec.bcrypt} length {spec.size}")
            _hash_len(spec, data)
            try:
                return emsa_pss_encode(data, spec, pad.cbSalt, key.key_size)
            except ValueError as exc:
                raise MinidriverError(ScardCode.SCARD_E_INSUFFICIENT_BUFFER, str(exc)) from None
        else:
            raise _invalid(f"dwPaddingType 0x{kind:X}")
    else:
        alg = info.aiHashAlg
        if alg == 0:
            payload = data  # Cardmod.h: no aiHashAlg, pad the data as given
        elif alg == AlgId.CALG_SSL3_SHAMD5:
            if len(data) != SSL3_SHAMD5_LEN:
                raise _invalid(f"CALG_SSL3_SHAMD5 data is {SSL3_SHAMD5_LEN} bytes")
            payload = data
        else:
            try:
                spec_or_none = hash_for_calg(alg)
            except KeyError:
                raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"aiHashAlg 0x{alg:X}") from None
            assert spec_or_none is not None
            _hash_len(spec_or_none, data)
            payload = digest_info(spec_or_none, data)
    if len(payload) > k - 11:
        raise MinidriverError(ScardCode.SCARD_E_INSUFFICIENT_BUFFER, "data too long for the key")
    return pkcs1_type1(payload, k)


def _bcrypt_hash(alg_id: str) -> HashSpec:
    try:
        return hash_for_alg_id(alg_id)
    except (KeyError, AttributeError):
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"hash algorithm {alg_id!r}") from None


def _digest_info_for(alg_id: str, data: bytes) -> bytes:
    spec = _bcrypt_hash(alg_id)
    _hash_len(spec, data)
    return digest_info(spec, data)


def _check_sign_spec(key_spec: int, c: Container) -> None:
    public = c.key.public_key
    if isinstance(public, rsa.RSAPublicKey):
        ok = key_spec in (KeySpec.AT_KEYEXCHANGE, KeySpec.AT_SIGNATURE)
    else:
        ok = isinstance(public, ec.EllipticCurvePublicKey) and key_spec == _ECDSA_SPECS.get(public.curve.key_size)
    if not ok:
        raise _invalid(f"dwKeySpec {key_spec} does not name the container's key")


@entry(since=CardDataVersion.FOUR)
def CardSignData(pCardData: CardData, pInfo: CardSigningInfo | None) -> None:
    """Sign the hash in ``pInfo.pbData`` with the key of ``pInfo.bContainerIndex``."""
    if pInfo is None:
        raise _invalid("pInfo is NULL")
    version = _version(pInfo.dwVersion, CARD_SIGNING_INFO_CURRENT_VERSION, "CARD_SIGNING_INFO")
    if version < CARD_SIGNING_INFO_CURRENT_VERSION and context_of(pCardData).version >= CardDataVersion.SEVEN:
        raise MinidriverError(ScardCode.ERROR_REVISION_MISMATCH, "a v7 context needs CARD_SIGNING_INFO version 2")
    flags = pInfo.dwSigningFlags
    if flags & ~_SIGN_FLAGS:
        raise _invalid(f"dwSigningFlags 0x{flags:X}")
    if pInfo.dwKeySpec not in _KEY_SPECS:
        raise _invalid(f"dwKeySpec {pInfo.dwKeySpec}")
    size_only = bool(flags & CARD_BUFFER_SIZE_ONLY)
    data = b"" if size_only else _data(pInfo.pbData, pInfo.cbData, "pbData")
    c = require_container(pCardData, pInfo.bContainerIndex)
    _check_sign_spec(pInfo.dwKeySpec, c)
    public = c.key.public_key
    if isinstance(public, rsa.RSAPublicKey):
        size = (public.key_size + 7) // 8
        if size_only:
            pInfo.cbSignedData = size
            return
        block = _rsa_sign_block(pInfo, version, data, public)
        signature = _private_op(pCardData, c, "sign", block)[::-1]  # little-endian out
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        half = (public.curve.key_size + 7) // 8
        if size_only:
            pInfo.cbSignedData = 2 * half
            return
        if not data:
            raise _invalid("empty hash")
        digest = data[:half].rjust(half, b"\0")  # leftmost bits, as ECDSA itself (FIPS 186-4 §6.4)
        der = _private_op(pCardData, c, "sign", digest)
        try:
            r, s = decode_dss_signature(der)
        except ValueError:
            raise MinidriverError(ScardCode.SCARD_E_UNEXPECTED, "the card's ECDSA signature does not decode") from None
        signature = r.to_bytes(half, "big") + s.to_bytes(half, "big")
    pInfo.pbSignedData = alloc(pCardData, signature)
    pInfo.cbSignedData = len(signature)


# -- CardRSADecrypt --------------------------------------------------------------------------
@entry(since=CardDataVersion.FOUR)
def CardRSADecrypt(pCardData: CardData, pInfo: CardRsaDecryptInfo | None) -> None:
    """Raw RSA private operation; v2 removes PKCS#1 or OAEP padding (constant time)."""
    if pInfo is None:
        raise _invalid("pInfo is NULL")
    version = _version(pInfo.dwVersion, CARD_RSA_KEY_DECRYPT_INFO_VERSION_TWO, "CARD_RSA_DECRYPT_INFO")
    if version < CARD_RSA_KEY_DECRYPT_INFO_VERSION_TWO and context_of(pCardData).version >= CardDataVersion.SEVEN:
        raise MinidriverError(ScardCode.ERROR_REVISION_MISMATCH, "a v7 context needs CARD_RSA_DECRYPT_INFO version 2")
    if pInfo.dwKeySpec not in (KeySpec.AT_KEYEXCHANGE, KeySpec.AT_SIGNATURE):
        raise _invalid(f"dwKeySpec {pInfo.dwKeySpec} is not an RSA key spec")
    buf = pInfo.pbData
    if buf is None:
        raise _invalid("pbData is NULL")
    if not isinstance(buf, bytearray):
        raise _invalid("pbData must be a writable buffer (bytearray): the result is written in place")
    ciphertext = _data(buf, pInfo.cbData, "pbData")
    padding = CARD_PADDING_NONE if version < CARD_RSA_KEY_DECRYPT_INFO_VERSION_TWO else pInfo.dwPaddingType
    oaep_hash, label = HASHES["SHA1"], b""
    if padding == CARD_PADDING_OAEP:
        pad = pInfo.pPaddingInfo
        if not isinstance(pad, BcryptOaepPaddingInfo):
            raise _invalid("CARD_PADDING_OAEP needs a BCRYPT_OAEP_PADDING_INFO")
        oaep_hash = _bcrypt_hash(pad.pszAlgId or "SHA1")
        label = b"" if not pad.cbLabel else _data(pad.pbLabel, pad.cbLabel, "pbLabel")
    elif padding not in (CARD_PADDING_NONE, CARD_PADDING_PKCS1):
        raise _invalid(f"dwPaddingType 0x{padding:X}")
    c = require_container(pCardData, pInfo.bContainerIndex)
    public = c.key.public_key
    if not isinstance(public, rsa.RSAPublicKey):
        raise _invalid("the container key is not an RSA key")
    k = (public.key_size + 7) // 8
    if len(ciphertext) < k:
        raise MinidriverError(ScardCode.SCARD_E_INSUFFICIENT_BUFFER, f"cbData {len(ciphertext)} < modulus {k}")
    if len(ciphertext) > k:
        raise _invalid(f"cbData {len(ciphertext)} > modulus {k}")
    block = _private_op(pCardData, c, "decrypt", ciphertext[::-1])  # big-endian to the card
    try:
        if padding == CARD_PADDING_PKCS1:
            result = unpad_pkcs1_type2(block, k)
        elif padding == CARD_PADDING_OAEP:
            result = unpad_oaep(block, k, oaep_hash, label)
        else:
            result = block
    except PaddingError:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_VALUE, "decryption failed") from None
    buf[: len(result)] = result[::-1]
    buf[len(result) : k] = bytes(k - len(result))  # no padding bytes left behind
    pInfo.cbData = len(result)


# -- ECDH ------------------------------------------------------------------------------------
@entry(since=CardDataVersion.FOUR)
def CardConstructDHAgreement(pCardData: CardData, pAgreementInfo: CardDhAgreementInfo | None) -> None:
    """ECDH of the container key with ``pbPublicKey``; the secret stays here, its index goes out."""
    info = pAgreementInfo
    if info is None:
        raise _invalid("pAgreementInfo is NULL")
    ctx = context_of(pCardData)
    if info.dwVersion != CARD_DH_AGREEMENT_INFO_VERSION:  # v1 "no longer supported" (Cardmod.h)
        raise MinidriverError(ScardCode.ERROR_REVISION_MISMATCH, f"CARD_DH_AGREEMENT_INFO version {info.dwVersion}")
    if ctx.version < CardDataVersion.FIVE:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "ECDH needs a version 5 context (CardDeriveKey)")
    if info.dwFlags != 0:
        raise _invalid("dwFlags must be 0")
    blob = _data(info.pbPublicKey, info.dwPublicKey, "pbPublicKey")
    try:
        peer, kind = parse_ecc_public_blob(blob)
    except BlobError as exc:
        raise _invalid(f"pbPublicKey: {exc}") from None
    if not kind.ecdh:
        raise _invalid("pbPublicKey is not an ECDH public blob")
    c = require_container(pCardData, info.bContainerIndex)
    public = c.key.public_key
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != peer.curve.name:
        raise _invalid("the container key is not an EC key on the peer's curve")
    free = next((i for i in range(MAX_AGREEMENTS) if i not in ctx.dh), None)
    if free is None:
        raise MinidriverError(ScardCode.SCARD_E_NO_MEMORY, f"{MAX_AGREEMENTS} agreements are open")
    point = peer.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    ctx.dh[free] = _private_op(pCardData, c, "ecdh", point)
    info.bSecretAgreementIndex = free


@entry(since=CardDataVersion.FIVE)
def CardDeriveKey(pCardData: CardData, pAgreementInfo: CardDeriveKeyInfo | None) -> None:
    """A key from an agreement's secret with the KDF ``pwszKDF`` (HASH, HMAC, TLS_PRF, SP800_56A_CONCAT)."""
    info = pAgreementInfo
    if info is None:
        raise _invalid("pAgreementInfo is NULL")
    version = _version(info.dwVersion, CARD_DERIVE_KEY_VERSION_TWO, "CARD_DERIVE_KEY")
    allowed = CARD_BUFFER_SIZE_ONLY | (CARD_RETURN_KEY_HANDLE if version >= CARD_DERIVE_KEY_VERSION_TWO else 0)
    if info.dwFlags & ~allowed:
        raise _invalid(f"dwFlags 0x{info.dwFlags:X}")
    if info.pwszKDF not in KDF_NAMES:
        raise _invalid(f"pwszKDF {info.pwszKDF!r}")
    ctx = context_of(pCardData)
    secret = ctx.dh.get(info.bSecretAgreementIndex)
    if secret is None:
        raise _invalid(f"no agreement {info.bSecretAgreementIndex}")
    if info.dwFlags & CARD_RETURN_KEY_HANDLE:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "no key handles from an ECDH secret")
    length = info.dwKeyLen if version >= CARD_DERIVE_KEY_VERSION_TWO else 0
    try:
        size = derived_size(info.pwszKDF, info.pParameterList, length)
        if info.dwFlags & CARD_BUFFER_SIZE_ONLY:
            info.cbDerivedKey = size
            return
        key = derive(info.pwszKDF, secret, info.pParameterList, length)
    except KdfError as exc:
        raise _invalid(str(exc)) from None
    info.pbDerivedKey = alloc(pCardData, key)
    info.cbDerivedKey = len(key)


@entry(since=CardDataVersion.FIVE)
def CardDestroyDHAgreement(pCardData: CardData, bSecretAgreementIndex: int, dwFlags: int) -> None:
    """Forget an agreement's secret (wiped from the context)."""
    if dwFlags != 0:
        raise _invalid("dwFlags must be 0")
    ctx = context_of(pCardData)
    if bSecretAgreementIndex not in ctx.dh:
        raise _invalid(f"no agreement {bSecretAgreementIndex}")
    if not ctx.authenticated & ~PinSet.EVERYONE:
        raise MinidriverError(ScardCode.SCARD_W_SECURITY_VIOLATION, "no PIN is authenticated (spec)")
    del ctx.dh[bSecretAgreementIndex]
