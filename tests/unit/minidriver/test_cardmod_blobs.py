"""CAPI and BCrypt key blobs (minidriver.cardmod.blobs): layouts, round trips, every rejection."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from minidriver.cardmod.blobs import (
    BlobError,
    CapiAlg,
    EccMagic,
    ecc_private_blob,
    ecc_public_blob,
    parse_ecc_private_blob,
    parse_ecc_public_blob,
    parse_rsa_private_blob,
    parse_rsa_public_blob,
    rsa_private_blob,
    rsa_public_blob,
)

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)


def test_rsa_public_blob_layout() -> None:
    blob = rsa_public_blob(RSA_KEY.public_key(), CapiAlg.CALG_RSA_KEYX)
    # BLOBHEADER: PUBLICKEYBLOB, CUR_BLOB_VERSION, reserved, CALG_RSA_KEYX
    assert blob[:8] == bytes.fromhex("0602000000a40000")
    assert blob[8:12] == b"RSA1"
    assert struct.unpack("<II", blob[12:20]) == (1024, 65537)
    n = RSA_KEY.public_key().public_numbers().n
    assert blob[20:] == n.to_bytes(128, "little")  # modulus little-endian
    assert len(blob) == 20 + 128


@pytest.mark.parametrize("alg", list(CapiAlg))
def test_rsa_public_round_trip(alg: CapiAlg) -> None:
    key, got_alg = parse_rsa_public_blob(rsa_public_blob(RSA_KEY.public_key(), alg))
    assert key.public_numbers() == RSA_KEY.public_key().public_numbers()
    assert got_alg == alg


def test_rsa_private_round_trip() -> None:
    blob = rsa_private_blob(RSA_KEY, CapiAlg.CALG_RSA_SIGN)
    assert blob[0] == 0x07 and blob[8:12] == b"RSA2"
    assert len(blob) == 20 + 2 * 128 + 5 * 64
    key, alg = parse_rsa_private_blob(blob)
    assert key.private_numbers() == RSA_KEY.private_numbers()
    assert alg == CapiAlg.CALG_RSA_SIGN


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, 0x07, "bType"),
        (1, 0x03, "bVersion"),
        (2, 0x01, "reserved"),
        (5, 0x66, "aiKeyAlg"),
        (8, ord("X"), "magic"),
    ],
)
def test_rsa_public_blob_rejects_bad_fields(offset: int, value: int, message: str) -> None:
    blob = bytearray(rsa_public_blob(RSA_KEY.public_key(), CapiAlg.CALG_RSA_KEYX))
    blob[offset] = value
    with pytest.raises(BlobError, match=message):
        parse_rsa_public_blob(bytes(blob))


def test_rsa_blobs_reject_wrong_lengths() -> None:
    public = rsa_public_blob(RSA_KEY.public_key(), CapiAlg.CALG_RSA_KEYX)
    with pytest.raises(BlobError, match="modulus"):
        parse_rsa_public_blob(public[:-1])
    with pytest.raises(BlobError, match="shorter"):
        parse_rsa_public_blob(public[:10])
    private = rsa_private_blob(RSA_KEY, CapiAlg.CALG_RSA_KEYX)
    with pytest.raises(BlobError, match="body"):
        parse_rsa_private_blob(private + b"\0")
    with pytest.raises(BlobError, match="PRIVATEKEYBLOB"):
        parse_rsa_private_blob(public)


def test_rsa_private_blob_rejects_inconsistent_key() -> None:
    blob = bytearray(rsa_private_blob(RSA_KEY, CapiAlg.CALG_RSA_KEYX))
    blob[20 + 128] ^= 0x02  # prime1 changed
    with pytest.raises(BlobError):
        parse_rsa_private_blob(bytes(blob))
    blob = bytearray(rsa_private_blob(RSA_KEY, CapiAlg.CALG_RSA_KEYX))
    blob[-1] ^= 0x40  # private exponent changed
    with pytest.raises(BlobError):
        parse_rsa_private_blob(bytes(blob))


CURVES = [
    (ec.SECP256R1(), 32, "ECK1", "ECS1"),
    (ec.SECP384R1(), 48, "ECK3", "ECS3"),
    (ec.SECP521R1(), 66, "ECK5", "ECS5"),
]


@pytest.mark.parametrize(("curve", "size", "ecdh_tag", "ecdsa_tag"), CURVES)
def test_ecc_public_blob_layout_and_round_trip(
    curve: ec.EllipticCurve, size: int, ecdh_tag: str, ecdsa_tag: str
) -> None:
    key = ec.generate_private_key(curve)
    numbers = key.public_key().public_numbers()
    for ecdh, tag in ((True, ecdh_tag), (False, ecdsa_tag)):
        blob = ecc_public_blob(key.public_key(), ecdh=ecdh)
        assert blob[:4] == tag.encode()
        assert struct.unpack("<I", blob[4:8])[0] == size
        assert blob[8:] == numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")
        parsed, kind = parse_ecc_public_blob(blob)
        assert parsed.public_numbers() == numbers
        assert kind.ecdh is ecdh and not kind.private and kind.size == size


@pytest.mark.parametrize(("curve", "size", "ecdh_tag", "ecdsa_tag"), CURVES)
def test_ecc_private_round_trip(curve: ec.EllipticCurve, size: int, ecdh_tag: str, ecdsa_tag: str) -> None:
    key = ec.generate_private_key(curve)
    for ecdh, tag in ((True, ecdh_tag), (False, ecdsa_tag)):
        blob = ecc_private_blob(key, ecdh=ecdh)
        assert blob[:3] == tag[:3].encode() and blob[3] == ord(tag[3]) + 1  # private magic = public + 1
        assert len(blob) == 8 + 3 * size
        parsed, kind = parse_ecc_private_blob(blob)
        assert parsed.private_numbers() == key.private_numbers()
        assert kind.private and kind.ecdh is ecdh


def test_ecc_magic_values() -> None:
    assert EccMagic.ECDSA_PUBLIC_P256 == 0x31534345
    assert EccMagic.ECDH_PUBLIC_P256 == 0x314B4345
    assert EccMagic.ECDH_PRIVATE_P384 == 0x344B4345


def test_ecc_blobs_reject_bad_input() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = ecc_public_blob(key.public_key(), ecdh=True)
    private = ecc_private_blob(key, ecdh=True)
    with pytest.raises(BlobError, match="magic"):
        parse_ecc_public_blob(b"ECX1" + public[4:])
    with pytest.raises(BlobError, match="cbKey"):
        parse_ecc_public_blob(public[:4] + struct.pack("<I", 48) + public[8:])
    with pytest.raises(BlobError, match="bytes"):
        parse_ecc_public_blob(public[:-1])
    with pytest.raises(BlobError, match="public blob"):
        parse_ecc_public_blob(private)
    with pytest.raises(BlobError, match="private blob"):
        parse_ecc_private_blob(public)
    with pytest.raises(BlobError, match="shorter"):
        parse_ecc_public_blob(b"ECK1")
    off_curve = bytearray(public)
    off_curve[-1] ^= 1
    with pytest.raises(BlobError, match="curve"):
        parse_ecc_public_blob(bytes(off_curve))
    other = ec.generate_private_key(ec.SECP256R1())
    mixed = private[:-32] + other.private_numbers().private_value.to_bytes(32, "big")
    with pytest.raises(BlobError, match="public point"):
        parse_ecc_private_blob(mixed)
