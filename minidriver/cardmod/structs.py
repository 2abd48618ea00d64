"""Cardmod.h structures as Python dataclasses (minidriver-spec.md §4).

In/out structures the caller passes by pointer are mutable dataclasses: the minidriver fills their
fields. Byte buffers inside them that the minidriver allocates (``pbSignedData``,
``pbSigPublicKey``) are ``bytearray`` from ``pfnCspAlloc``. Where a structure travels as bytes
(CardGetProperty's ``pbData``, the SKI blobs), ``__bytes__``/``from_bytes`` use the x64 layout of
Cardmod.h (little-endian DWORDs, natural alignment).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BcryptOaepPaddingInfo",
    "BcryptPkcs1PaddingInfo",
    "BcryptPssPaddingInfo",
    "CardCacheFile",
    "CardCapabilities",
    "CardDeriveKeyInfo",
    "CardDhAgreementInfo",
    "CardFileInfo",
    "CardFreeSpaceInfo",
    "CardKeySizes",
    "CardRsaDecryptInfo",
    "CardSigningInfo",
    "ContainerInfo",
    "ContainerMapRecord",
    "PinCachePolicy",
    "PinInfo",
]


@dataclass
class CardCapabilities:
    """CARD_CAPABILITIES (CARD_CAPABILITIES_CURRENT_VERSION 1)."""

    dwVersion: int = 1
    fCertificateCompression: bool = False
    fKeyGen: bool = False

    def __bytes__(self) -> bytes:
        return struct.pack("<III", self.dwVersion, int(self.fCertificateCompression), int(self.fKeyGen))


@dataclass
class CardFreeSpaceInfo:
    """CARD_FREE_SPACE_INFO (version 1); unknown values are CARD_DATA_VALUE_UNKNOWN."""

    dwVersion: int = 1
    dwBytesAvailable: int = 0
    dwKeyContainersAvailable: int = 0
    dwMaxKeyContainers: int = 0

    def __bytes__(self) -> bytes:
        return struct.pack(
            "<IIII", self.dwVersion, self.dwBytesAvailable, self.dwKeyContainersAvailable, self.dwMaxKeyContainers
        )


@dataclass
class CardKeySizes:
    """CARD_KEY_SIZES (version 1), in bits."""

    dwVersion: int = 1
    dwMinimumBitlen: int = 0
    dwDefaultBitlen: int = 0
    dwMaximumBitlen: int = 0
    dwIncrementalBitlen: int = 0

    def __bytes__(self) -> bytes:
        return struct.pack(
            "<IIIII",
            self.dwVersion,
            self.dwMinimumBitlen,
            self.dwDefaultBitlen,
            self.dwMaximumBitlen,
            self.dwIncrementalBitlen,
        )


@dataclass
class CardFileInfo:
    """CARD_FILE_INFO (version 1)."""

    dwVersion: int = 1
    cbFileSize: int = 0
    AccessCondition: int = 0


@dataclass
class ContainerInfo:
    """CONTAINER_INFO (CONTAINER_INFO_CURRENT_VERSION 1); public keys as CAPI/BCrypt blobs."""

    dwVersion: int = 1
    dwReserved: int = 0
    cbSigPublicKey: int = 0
    pbSigPublicKey: bytearray | None = None
    cbKeyExPublicKey: int = 0
    pbKeyExPublicKey: bytearray | None = None


@dataclass
class PinCachePolicy:
    """PIN_CACHE_POLICY (version 6)."""

    dwVersion: int = 6
    PinCachePolicyType: int = 0
    dwPinCachePolicyInfo: int = 0


@dataclass
class PinInfo:
    """PIN_INFO (PIN_INFO_CURRENT_VERSION 6), 36 bytes on the wire."""

    dwVersion: int = 6
    PinType: int = 0
    PinPurpose: int = 0
    dwChangePermission: int = 0
    dwUnblockPermission: int = 0
    PinCachePolicy: PinCachePolicy | None = None
    dwFlags: int = 0

    def __bytes__(self) -> bytes:
        policy = self.PinCachePolicy or PinCachePolicy()
        return struct.pack(
            "<IIIIIIIII",
            self.dwVersion,
            self.PinType,
            self.PinPurpose,
            self.dwChangePermission,
            self.dwUnblockPermission,
            policy.dwVersion,
            policy.PinCachePolicyType,
            policy.dwPinCachePolicyInfo,
            self.dwFlags,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PinInfo:
        v = struct.unpack("<IIIIIIIII", data[:36])
        return cls(v[0], v[1], v[2], v[3], v[4], PinCachePolicy(v[5], v[6], v[7]), v[8])


@dataclass(frozen=True)
class CardCacheFile:
    """CARD_CACHE_FILE_FORMAT: the 6-byte head of ``cardcf`` (packed, little-endian)."""

    bVersion: int = 1
    bPinsFreshness: int = 0
    wContainersFreshness: int = 0
    wFilesFreshness: int = 0

    def __bytes__(self) -> bytes:
        return struct.pack("<BBHH", self.bVersion, self.bPinsFreshness, self.wContainersFreshness, self.wFilesFreshness)

    @classmethod
    def from_bytes(cls, data: bytes) -> CardCacheFile:
        return cls(*struct.unpack("<BBHH", data[:6]))


CONTAINER_MAP_RECORD_LEN = 86
MAX_CONTAINER_NAME_LEN = 39


@dataclass(frozen=True)
class ContainerMapRecord:
    """CONTAINER_MAP_RECORD: one 86-byte record of ``mscp/cmapfile`` (index = container index)."""

    wszGuid: str = ""
    bFlags: int = 0
    wSigKeySizeBits: int = 0
    wKeyExchangeKeySizeBits: int = 0

    def __bytes__(self) -> bytes:
        if len(self.wszGuid) > MAX_CONTAINER_NAME_LEN:
            raise ValueError(f"container name longer than {MAX_CONTAINER_NAME_LEN} characters")
        name = self.wszGuid.encode("utf-16-le").ljust(80, b"\0")
        return name + struct.pack("<BBHH", self.bFlags, 0, self.wSigKeySizeBits, self.wKeyExchangeKeySizeBits)

    @classmethod
    def from_bytes(cls, data: bytes) -> ContainerMapRecord:
        if len(data) != CONTAINER_MAP_RECORD_LEN:
            raise ValueError(f"a container map record is {CONTAINER_MAP_RECORD_LEN} bytes, not {len(data)}")
        name = data[:80].decode("utf-16-le").split("\0", 1)[0]
        flags, _reserved, sig, kx = struct.unpack("<BBHH", data[80:])
        return cls(name, flags, sig, kx)


@dataclass
class CardSigningInfo:
    """CARD_SIGNING_INFO (version 1 basic, 2 with padding info)."""

    dwVersion: int = 2
    bContainerIndex: int = 0
    dwKeySpec: int = 0
    dwSigningFlags: int = 0
    aiHashAlg: int = 0
    pbData: bytes | None = None
    cbData: int = 0
    pbSignedData: bytearray | None = None
    cbSignedData: int = 0
    pPaddingInfo: Any = None
    dwPaddingType: int = 0


@dataclass
class CardRsaDecryptInfo:
    """CARD_RSA_DECRYPT_INFO (version 1 or 2); ``pbData`` is written back in place."""

    dwVersion: int = 2
    bContainerIndex: int = 0
    dwKeySpec: int = 0
    pbData: bytearray | None = None
    cbData: int = 0
    pPaddingInfo: Any = None
    dwPaddingType: int = 0


@dataclass
class CardDhAgreementInfo:
    """CARD_DH_AGREEMENT_INFO (version 2 only)."""

    dwVersion: int = 2
    bContainerIndex: int = 0
    dwFlags: int = 0
    dwPublicKey: int = 0
    pbPublicKey: bytes | None = None
    pbReserved: bytes | None = None
    cbReserved: int = 0
    bSecretAgreementIndex: int = 0


@dataclass
class CardDeriveKeyInfo:
    """CARD_DERIVE_KEY (named CardDeriveKeyInfo: CardDeriveKey is the entry point) (version 1, or 2 with pwszAlgId/dwKeyLen/hKey)."""

    dwVersion: int = 2
    dwFlags: int = 0
    pwszKDF: str | None = None
    bSecretAgreementIndex: int = 0
    pParameterList: Any = None
    pbDerivedKey: bytearray | None = None
    cbDerivedKey: int = 0
    pwszAlgId: str | None = None
    dwKeyLen: int = 0
    hKey: int = 0


# -- bcrypt.h padding information (pPaddingInfo of CardSignData, CardRSADecrypt, CardImportSessionKey)
@dataclass(frozen=True)
class BcryptPkcs1PaddingInfo:
    """BCRYPT_PKCS1_PADDING_INFO: ``pszAlgId`` None = no DigestInfo (raw type-1 padding)."""

    pszAlgId: str | None = None


@dataclass(frozen=True)
class BcryptPssPaddingInfo:
    """BCRYPT_PSS_PADDING_INFO: hash of the message and salt length in bytes."""

    pszAlgId: str | None = None
    cbSalt: int = 0


@dataclass(frozen=True)
class BcryptOaepPaddingInfo:
    """BCRYPT_OAEP_PADDING_INFO: hash for OAEP and MGF1, and the label."""

    pszAlgId: str | None = None
    pbLabel: bytes | None = None
    cbLabel: int = 0
