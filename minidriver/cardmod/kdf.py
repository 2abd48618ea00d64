"""Key derivation functions of CardDeriveKey, as BCryptDeriveKey defines them (minidriver-spec.md §3.5).

The secret is the ECDH shared secret Z (the x coordinate, big-endian). Parameters arrive as the
BCryptBufferDesc ``pParameterList``, here a list of ``(BufferType, bytes)`` pairs; string
parameters (KDF_HASH_ALGORITHM) are UTF-16LE with or without the terminating NUL, as in C.

* ``HASH``: H(prepend || Z || append); hash default SHA1 (BCryptDeriveKey).
* ``HMAC``: HMAC_H(key, prepend || Z || append); without KDF_HMAC_KEY the secret is the key
  (CNG's KDF_USE_SECRET_AS_HMAC_KEY_FLAG behaviour, which .NET uses for a NULL key).
* ``TLS_PRF``: the 48-byte master secret PRF(Z, label, seed) of RFC 2246 §5 (TLS 1.0/1.1:
  P_MD5 xor P_SHA1) or RFC 5246 §5 (TLS 1.2: P_SHA256 or KDF_HASH_ALGORITHM); seed is 64 bytes.
* ``SP800_56A_CONCAT``: the single-step KDF of SP 800-56A rev2 §5.8.1 with
  OtherInfo = AlgorithmID || PartyUInfo || PartyVInfo [|| SuppPubInfo [|| SuppPrivInfo]];
  the first three are required (BCryptDeriveKey).

A parameter the KDF does not define, a repeated one, or a bad value raises :class:`KdfError`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from enum import IntEnum

from .rsapad import HASHES, HashSpec

__all__ = ["KDF_NAMES", "BufferType", "KdfError", "TlsProtocol", "derive", "derived_size"]


class KdfError(ValueError):
    """A KDF name, parameter or value this minidriver does not accept."""


class BufferType(IntEnum):
    """BCryptBuffer.BufferType for KDF parameters (bcrypt.h KDF_*)."""

    KDF_HASH_ALGORITHM = 0x0
    KDF_SECRET_PREPEND = 0x1
    KDF_SECRET_APPEND = 0x2
    KDF_HMAC_KEY = 0x3
    KDF_TLS_PRF_LABEL = 0x4
    KDF_TLS_PRF_SEED = 0x5
    KDF_SECRET_HANDLE = 0x6
    KDF_TLS_PRF_PROTOCOL = 0x7
    KDF_ALGORITHMID = 0x8
    KDF_PARTYUINFO = 0x9
    KDF_PARTYVINFO = 0xA
    KDF_SUPPPUBINFO = 0xB
    KDF_SUPPPRIVINFO = 0xC


class TlsProtocol(IntEnum):
    """KDF_TLS_PRF_PROTOCOL values (schannel.h)."""

    TLS1_0 = 0x0301
    TLS1_1 = 0x0302
    TLS1_2 = 0x0303


KDF_NAMES = ("HASH", "HMAC", "TLS_PRF", "SP800_56A_CONCAT")  #: BCRYPT_KDF_* (bcrypt.h)
TLS_MASTER_SECRET_LEN = 48
TLS_SEED_LEN = 64

_ALLOWED = {
    "HASH": {BufferType.KDF_HASH_ALGORITHM, BufferType.KDF_SECRET_PREPEND, BufferType.KDF_SECRET_APPEND},
    "HMAC": {
        BufferType.KDF_HASH_ALGORITHM,
        BufferType.KDF_SECRET_PREPEND,
        BufferType.KDF_SECRET_APPEND,
        BufferType.KDF_HMAC_KEY,
    },
    "TLS_PRF": {
        BufferType.KDF_HASH_ALGORITHM,
        BufferType.KDF_TLS_PRF_LABEL,
        BufferType.KDF_TLS_PRF_SEED,
        BufferType.KDF_TLS_PRF_PROTOCOL,
    },
    "SP800_56A_CONCAT": {
        BufferType.KDF_HASH_ALGORITHM,
        BufferType.KDF_ALGORITHMID,
        BufferType.KDF_PARTYUINFO,
        BufferType.KDF_PARTYVINFO,
        BufferType.KDF_SUPPPUBINFO,
        BufferType.KDF_SUPPPRIVINFO,
    },
}
_KDF_HASHES = ("SHA1", "SHA256", "SHA384", "SHA512", "MD5")


def _params(kdf: str, parameters: Sequence[tuple[int, bytes]] | None) -> dict[BufferType, bytes]:
    out: dict[BufferType, bytes] = {}
    for item in parameters or ():
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[1], bytes | bytearray):
            raise KdfError("each parameter must be a (BufferType, bytes) pair")
        kind, value = item
        try:
            buffer_type = BufferType(kind)
        except ValueError:
            raise KdfError(f"unknown KDF parameter type {kind}") from None
        if buffer_type not in _ALLOWED[kdf]:
            raise KdfError(f"{buffer_type.name} is not a parameter of the {kdf} KDF")
        if buffer_type in out:
            raise KdfError(f"{buffer_type.name} given twice")
        out[buffer_type] = bytes(value)
    return out


def _hash(params: dict[BufferType, bytes], default: str) -> HashSpec:
    raw = params.get(BufferType.KDF_HASH_ALGORITHM)
    if raw is None:
        return HASHES[default]
    if len(raw) % 2:
        raise KdfError("KDF_HASH_ALGORITHM must be a UTF-16LE string")
    name = raw.decode("utf-16-le").rstrip("\0").upper()
    if name not in _KDF_HASHES:
        raise KdfError(f"KDF_HASH_ALGORITHM {name!r} is not one of {', '.join(_KDF_HASHES)}")
    return HASHES[name]


def _p_hash(name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash of RFC 5246 §5 (and RFC 2246 §5)."""
    out, a = bytearray(), seed
    while len(out) < length:
        a = hmac.new(secret, a, name).digest()
        out += hmac.new(secret, a + seed, name).digest()
    return bytes(out[:length])


def _tls_prf(z: bytes, params: dict[BufferType, bytes]) -> bytes:
    label = params.get(BufferType.KDF_TLS_PRF_LABEL)
    seed = params.get(BufferType.KDF_TLS_PRF_SEED)
    if label is None or seed is None:
        raise KdfError("TLS_PRF needs KDF_TLS_PRF_LABEL and KDF_TLS_PRF_SEED")
    if len(seed) != TLS_SEED_LEN:
        raise KdfError(f"KDF_TLS_PRF_SEED must be {TLS_SEED_LEN} bytes, got {len(seed)}")
    label = label.rstrip(b"\0")  # an ANSI string; C callers may count its NUL
    raw = params.get(BufferType.KDF_TLS_PRF_PROTOCOL, struct.pack("<I", TlsProtocol.TLS1_0))
    if len(raw) != 4:
        raise KdfError("KDF_TLS_PRF_PROTOCOL is a DWORD")
    try:
        protocol = TlsProtocol(struct.unpack("<I", raw)[0])
    except ValueError:
        raise KdfError(f"KDF_TLS_PRF_PROTOCOL 0x{struct.unpack('<I', raw)[0]:04X} is not TLS 1.0-1.2") from None
    if protocol == TlsProtocol.TLS1_2:
        spec = _hash(params, "SHA256")
        return _p_hash(spec.name, z, label + seed, TLS_MASTER_SECRET_LEN)
    if BufferType.KDF_HASH_ALGORITHM in params:
        raise KdfError("TLS 1.0/1.1 PRF has no hash choice (MD5 and SHA-1)")
    half = (len(z) + 1) // 2
    md5 = _p_hash("md5", z[:half], label + seed, TLS_MASTER_SECRET_LEN)
    sha = _p_hash("sha1", z[len(z) - half :], label + seed, TLS_MASTER_SECRET_LEN)
    return bytes(a ^ b for a, b in zip(md5, sha, strict=True))


def _concat(z: bytes, params: dict[BufferType, bytes], length: int) -> bytes:
    needed = (BufferType.KDF_ALGORITHMID, BufferType.KDF_PARTYUINFO, BufferType.KDF_PARTYVINFO)
    missing = [t.name for t in needed if t not in params]
    if missing:
        raise KdfError(f"SP800_56A_CONCAT needs {', '.join(missing)}")
    if BufferType.KDF_SUPPPRIVINFO in params and BufferType.KDF_SUPPPUBINFO not in params:
        raise KdfError("KDF_SUPPPRIVINFO without KDF_SUPPPUBINFO")
    other = b"".join(params.get(t, b"") for t in (*needed, BufferType.KDF_SUPPPUBINFO, BufferType.KDF_SUPPPRIVINFO))
    spec = _hash(params, "SHA1")
    out, counter = bytearray(), 1
    while len(out) < length:
        out += hashlib.new(spec.name, struct.pack(">I", counter) + z + other).digest()
        counter += 1
    return bytes(out[:length])


def derived_size(kdf: str, parameters: Sequence[tuple[int, bytes]] | None, length: int = 0) -> int:
    """How many bytes :func:`derive` returns (CARD_BUFFER_SIZE_ONLY), validating the parameters."""
    if kdf not in KDF_NAMES:
        raise KdfError(f"KDF {kdf!r} is not one of {', '.join(KDF_NAMES)}")
    params = _params(kdf, parameters)
    if kdf == "TLS_PRF":
        return TLS_MASTER_SECRET_LEN
    spec = _hash(params, "SHA1")
    if kdf == "SP800_56A_CONCAT" and length:
        return length
    return spec.size


def derive(kdf: str, z: bytes, parameters: Sequence[tuple[int, bytes]] | None, length: int = 0) -> bytes:
    """The key ``kdf`` derives from ``z``; ``length`` (bytes) only for SP800_56A_CONCAT (0 = hash size)."""
    size = derived_size(kdf, parameters, length)
    params = _params(kdf, parameters)
    if kdf == "TLS_PRF":
        return _tls_prf(z, params)
    if kdf == "SP800_56A_CONCAT":
        return _concat(z, params, size)
    spec = _hash(params, "SHA1")
    data = params.get(BufferType.KDF_SECRET_PREPEND, b"") + z + params.get(BufferType.KDF_SECRET_APPEND, b"")
    if kdf == "HASH":
        return hashlib.new(spec.name, data).digest()
    return hmac.new(params.get(BufferType.KDF_HMAC_KEY, z), data, spec.name).digest()
