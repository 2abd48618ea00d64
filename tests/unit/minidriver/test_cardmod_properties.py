"""Capabilities, properties and container properties, in process (minidriver-spec.md §3.2)."""

from __future__ import annotations

import struct

import pytest
from cardmod_support import acquired
from incard import InProcessConnection

from minidriver.cardmod import (
    CardData,
    CardGetContainerProperty,
    CardGetProperty,
    CardQueryCapabilities,
    CardQueryFreeSpace,
    CardQueryKeySizes,
    CardSetContainerProperty,
    CardSetProperty,
    Minidriver,
    Out,
    ScardCode,
)
from minidriver.cardmod.structs import CardCapabilities, CardFreeSpaceInfo, CardKeySizes, ContainerInfo, PinInfo
from minidriver.piv import PivSession

MGMT = bytes.fromhex("010203040506070801020304050607080102030405060708")
INVALID, UNSUPPORTED = ScardCode.SCARD_E_INVALID_PARAMETER, ScardCode.SCARD_E_UNSUPPORTED_FEATURE


@pytest.fixture
def card() -> InProcessConnection:
    return InProcessConnection()


def get(cd: CardData, name: str, flags: int = 0, size: int = 256) -> tuple[int, bytes]:
    buf = bytearray(size)
    if name == "PIN Information":
        buf[:4] = struct.pack("<I", 6)  # the caller sets PIN_INFO.dwVersion
    length: Out[int] = Out()
    code = CardGetProperty(cd, name, buf, size, length, flags)
    return code, bytes(buf[: length.value or 0]) if code == 0 else b""


def multi_sz(raw: bytes) -> list[str]:
    return [s for s in raw.decode("utf-16-le").split("\0") if s]


def test_capabilities_and_versions(card: InProcessConnection) -> None:
    cd = acquired(card)
    caps = CardCapabilities(dwVersion=0)
    assert CardQueryCapabilities(cd, caps) == 0
    assert caps == CardCapabilities(1, True, True)
    assert get(cd, "Capabilities") == (0, struct.pack("<III", 1, 1, 1))
    assert CardQueryCapabilities(cd, CardCapabilities(dwVersion=2)) == ScardCode.ERROR_REVISION_MISMATCH


def test_key_sizes(card: InProcessConnection) -> None:
    cd = acquired(card)
    sizes = CardKeySizes()
    assert CardQueryKeySizes(cd, 1, 0, sizes) == 0
    assert (sizes.dwMinimumBitlen, sizes.dwDefaultBitlen) == (1024, 2048)
    # the virtual card's SELECT answer lists RSA 1024/2048/3072/4096
    assert (sizes.dwMaximumBitlen, sizes.dwIncrementalBitlen) == (4096, 1024)
    assert CardQueryKeySizes(cd, 7, 0, sizes) == 0 and sizes.dwDefaultBitlen == 384
    assert CardQueryKeySizes(cd, 8, 0, sizes) == UNSUPPORTED  # P-521: defined, not on PIV
    assert CardQueryKeySizes(cd, 42, 0, sizes) == INVALID
    code, raw = get(cd, "Key Sizes", 3)
    assert code == 0 and struct.unpack("<5I", raw) == (1, 256, 256, 256, 1)


def test_free_space_counts_empty_slots(card: InProcessConnection) -> None:
    cd = acquired(card)
    info = CardFreeSpaceInfo()
    assert CardQueryFreeSpace(cd, 0, info) == 0
    assert info == CardFreeSpaceInfo(1, 0xFFFFFFFF, 23, 24)
    assert CardQueryFreeSpace(cd, 0, CardFreeSpaceInfo(dwVersion=3)) == ScardCode.ERROR_REVISION_MISMATCH


def test_pin_properties(card: InProcessConnection) -> None:
    cd = acquired(card)
    assert get(cd, "PIN List") == (0, struct.pack("<I", 0x1E))
    user = PinInfo.from_bytes(get(cd, "PIN Information", 1)[1])
    assert (user.PinType, user.PinPurpose, user.dwChangePermission, user.dwUnblockPermission) == (0, 5, 0x02, 0x10)
    admin = PinInfo.from_bytes(get(cd, "PIN Information", 2)[1])
    assert (admin.PinType, admin.PinPurpose) == (2, 4)  # challenge/response administrator
    sign = PinInfo.from_bytes(get(cd, "PIN Information", 3)[1])
    assert sign.PinCachePolicy is not None and sign.PinCachePolicy.PinCachePolicyType == 3  # always prompt
    puk = PinInfo.from_bytes(get(cd, "PIN Information", 4)[1])
    assert puk.PinPurpose == 6  # UnblockOnlyPin
    assert get(cd, "PIN Information", 5)[0] == INVALID
    assert get(cd, "PIN Strength Verify", 1) == (0, struct.pack("<I", 1))  # plaintext, no session PIN
    assert get(cd, "PIN Strength Verify", 0)[0] == INVALID


def test_small_buffer_and_size_probe(card: InProcessConnection) -> None:
    cd = acquired(card)
    length: Out[int] = Out()
    assert CardGetProperty(cd, "PIN Information", None, 0, length, 1) == 0 and length.value == 36
    length = Out()
    small = bytearray(struct.pack("<I", 6) + bytes(16))
    assert CardGetProperty(cd, "PIN Information", small, 20, length, 1) == ScardCode.ERROR_INSUFFICIENT_BUFFER
    assert length.value == 36
    old = bytearray(struct.pack("<I", 5) + bytes(32))
    assert CardGetProperty(cd, "PIN Information", old, 36, Out(), 1) == ScardCode.ERROR_REVISION_MISMATCH
    assert CardGetProperty(cd, "PIN Information", bytearray(4), 8, Out(), 1) == INVALID  # cbData beyond the buffer


def test_v7_discovery_properties(card: InProcessConnection) -> None:
    cd = acquired(card)
    assert get(cd, "Key Import Support") == (0, struct.pack("<I", 0x8))
    assert multi_sz(get(cd, "Algorithms", 1)[1]) == ["AES"]
    assert "RSA" in multi_sz(get(cd, "Algorithms", 2)[1])
    assert get(cd, "Padding Schemes", 1) == (0, struct.pack("<I", 0))
    assert get(cd, "Padding Schemes", 2) == (0, struct.pack("<I", 0xF))
    assert multi_sz(get(cd, "Chaining Modes", 1)[1]) == ["ChainingModeCBC"]
    assert get(cd, "Chaining Modes", 2)[0] == INVALID
    six = acquired(card, dwVersion=6)
    assert get(six, "Key Import Support")[0] == INVALID
    assert acquired(card, dwVersion=5).pfnCardGetProperty is None


def test_card_properties(card: InProcessConnection) -> None:
    cd = acquired(card)
    m = Minidriver(card_data=cd)
    assert get(cd, "Card Identifier")[1] == m.card_id()
    assert get(cd, "Card Serial Number")[1] == m.card_id()  # non-federal FASC-N: the GUID
    assert get(cd, "Read Only Mode") == (0, bytes(4))
    assert get(cd, "Cache Mode") == (0, struct.pack("<I", 2))
    assert get(cd, "Supports Windows x.509 Enrollment") == (0, bytes(4))
    assert get(cd, "Parent Window")[0] == INVALID  # write-only
    assert get(cd, "Cache Mode", 1)[0] == INVALID
    assert CardSetProperty(cd, "Cache Mode", struct.pack("<I", 1), 4, 0) == UNSUPPORTED
    assert CardSetProperty(cd, "Free Space", bytes(16), 16, 0) == UNSUPPORTED
    assert CardSetProperty(cd, "Made Up", bytes(4), 4, 0) == INVALID
    assert CardSetProperty(cd, "Parent Window", bytes(8), 8, 0) == 0
    assert CardSetProperty(cd, "PIN Context String", "x".encode("utf-16-le"), 2, 0) == 0


def test_container_properties(card: InProcessConnection) -> None:
    cd = acquired(card)
    raw = bytearray(4)
    length: Out[int] = Out()
    assert CardGetContainerProperty(cd, 0, "PIN Identifier", raw, 4, length, 0) == 0
    assert struct.unpack("<I", raw)[0] == 1 and length.value == 4
    assert CardSetContainerProperty(cd, 0, "PIN Identifier", struct.pack("<I", 1), 4, 0) == 0
    assert CardSetContainerProperty(cd, 0, "PIN Identifier", struct.pack("<I", 3), 4, 0) == UNSUPPORTED
    assert CardSetContainerProperty(cd, 0, "PIN Identifier", struct.pack("<I", 9), 4, 0) == INVALID
    assert CardGetContainerProperty(cd, 1, "PIN Identifier", raw, 4, Out(), 0) == ScardCode.SCARD_E_NO_KEY_CONTAINER
    # 9A is an ECDSA key; no ECDH key on the card yet
    assert (
        CardGetContainerProperty(cd, 0, "Associated ECDH Key", raw, 4, Out(), 0) == ScardCode.SCARD_E_NO_KEY_CONTAINER
    )
    info = ContainerInfo()
    length = Out()
    assert CardGetContainerProperty(cd, 0, "Container Info", info, 40, length, 0) == 0
    assert length.value == 40 and info.cbSigPublicKey > 0 and info.pbKeyExPublicKey is None


def test_associated_ecdh_key_after_a_new_key(card: InProcessConnection) -> None:
    piv = PivSession(card)
    piv.authenticate(MGMT)
    piv.generate_key(0x9D, 0x11)
    cd = acquired(card)
    raw = bytearray(1)
    assert CardGetContainerProperty(cd, 0, "Associated ECDH Key", raw, 1, Out(), 0) == 0
    assert raw[0] == 2
    info = CardFreeSpaceInfo()
    assert CardQueryFreeSpace(cd, 0, info) == 0 and info.dwKeyContainersAvailable == 22


def test_key_sizes_without_an_algorithm_list(card: InProcessConnection) -> None:
    from minidriver.cardmod.binding import session

    cd = acquired(card)
    session(cd).algorithms = None  # a card whose SELECT answer has no AC template
    sizes = CardKeySizes()
    assert CardQueryKeySizes(cd, 2, 0, sizes) == 0
    assert (sizes.dwMinimumBitlen, sizes.dwDefaultBitlen, sizes.dwMaximumBitlen) == (1024, 2048, 2048)
    session(cd).algorithms = (0x07, 0x11)  # RSA-2048 and P-256 only
    assert CardQueryKeySizes(cd, 4, 0, sizes) == UNSUPPORTED
    assert CardQueryKeySizes(cd, 1, 0, sizes) == 0 and sizes.dwMinimumBitlen == sizes.dwMaximumBitlen == 2048
