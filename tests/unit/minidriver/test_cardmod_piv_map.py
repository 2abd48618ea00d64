"""piv_map: slot <-> index, card identity, key usage, names, default container (pure functions)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from minidriver.cardmod import piv_map as m
from minidriver.cardmod.types import KeySpec, PinId
from minidriver.iso7816 import ApduError, encode_tlv
from minidriver.piv import SlotMetadata

NON_FEDERAL = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")
GUID = bytes(range(0x10, 0x20))


def fascn(agency: str) -> bytes:
    """A FASC-N whose characters 1..4 are ``agency`` (5-bit BCD, LSB first, odd parity)."""
    chars = [0xB, *(int(d) for d in agency)] + [0] * 35
    bits = ""
    for c in chars:
        data = f"{c:04b}"[::-1]
        bits += data + ("0" if data.count("1") % 2 else "1")
    return int(bits, 2).to_bytes(25, "big")


def certificate(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, usage: x509.KeyUsage | None = None, ca: bool = False
) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def ku(**on: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")  # fmt: skip
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(65537, 1024)


def test_fixed_index_per_slot() -> None:
    assert m.SLOTS[:4] == (0x9A, 0x9C, 0x9D, 0x9E)
    assert [m.index_for_slot(s) for s in (0x9A, 0x9E, 0x82, 0x95)] == [0, 3, 4, 23]
    assert m.slot_for_index(23) == 0x95 and m.slot_for_index(24) is None and m.slot_for_index(-1) is None
    assert m.key_id(0x9A) == 1 and m.key_id(0x82) == 5
    with pytest.raises(ValueError):
        m.index_for_slot(0x9B)


def test_fascn_agency_and_serial_rule() -> None:
    assert m.fascn_agency(NON_FEDERAL) == "9999"
    assert m.fascn_agency(fascn("1234")) == "1234"
    # non-federal FASC-N beside a GUID: the GUID is the identity (OpenSC)
    assert m.CardIdentity(GUID, NON_FEDERAL).serial == GUID
    # a federal FASC-N wins over the GUID
    assert m.CardIdentity(GUID, fascn("1234")).serial == fascn("1234")
    assert m.CardIdentity(bytes(16), NON_FEDERAL).serial == NON_FEDERAL
    assert m.CardIdentity().serial == b""


def test_card_id_is_the_serial_on_16_bytes() -> None:
    assert m.card_id(m.CardIdentity(GUID, NON_FEDERAL)) == GUID
    assert m.card_id(m.CardIdentity(b"", fascn("1234"))) == fascn("1234")[:16]
    assert m.card_id(m.CardIdentity()) == bytes(16)


def test_parse_chuid() -> None:
    content = (
        encode_tlv(0x30, NON_FEDERAL) + encode_tlv(0x34, GUID) + encode_tlv(0x35, b"20991231") + encode_tlv(0xFE, b"")
    )
    assert m.parse_chuid(content) == m.CardIdentity(GUID, NON_FEDERAL)
    assert m.parse_chuid(b"\x30") == m.CardIdentity()


def test_container_names_replace_the_first_guid_byte_by_the_key_id() -> None:
    identity = m.CardIdentity(GUID, NON_FEDERAL)
    assert m.container_guid(identity, 0x9A) == "01" + GUID[1:].hex()
    assert m.container_guid(identity, 0x95) == "18" + GUID[1:].hex()
    assert len(m.container_guid(identity, 0x9D)) == 32


@pytest.mark.parametrize(
    ("slot", "key", "usage", "exchange", "spec"),
    [
        (0x9A, RSA_KEY, None, True, KeySpec.AT_KEYEXCHANGE),  # RSA 9A decrypts by default
        (0x9E, RSA_KEY, None, False, KeySpec.AT_SIGNATURE),
        (0x9A, RSA_KEY, ku(digital_signature=True), False, KeySpec.AT_SIGNATURE),
        (0x9C, RSA_KEY, ku(key_encipherment=True), True, KeySpec.AT_KEYEXCHANGE),
        (0x9A, EC_KEY, None, False, KeySpec.AT_ECDSA_P256),
        (0x9D, EC_KEY, None, True, KeySpec.AT_ECDHE_P256),
        (0x82, EC_KEY, None, True, KeySpec.AT_ECDHE_P256),
        (0x9D, EC_KEY, ku(digital_signature=True), False, KeySpec.AT_ECDSA_P256),
        (0x9A, EC_KEY, ku(key_agreement=True), True, KeySpec.AT_ECDHE_P256),
    ],
)
def test_key_exchange_or_signature(slot: int, key, usage, exchange: bool, spec: KeySpec) -> None:  # type: ignore[no-untyped-def]
    info = m.key_info(slot, certificate=certificate(key, usage))
    assert info is not None
    assert (info.key_exchange, info.key_spec) == (exchange, spec)


def test_pin_of_a_key_follows_its_policy() -> None:
    der = certificate(EC_KEY)
    assert m.key_info(0x9A, certificate=der).pin_id == PinId.ROLE_USER  # type: ignore[union-attr]
    assert m.key_info(0x9C, certificate=der).pin_id == m.PIN_SIGN  # type: ignore[union-attr]
    assert m.key_info(0x9E, certificate=der).pin_id == PinId.ROLE_EVERYONE  # type: ignore[union-attr]
    meta = SlotMetadata(0x9C, 0x11, pin_policy=0x02, public_key=EC_KEY.public_key())
    assert m.key_info(0x9C, metadata=meta).pin_id == PinId.ROLE_USER  # type: ignore[union-attr]


def test_no_key_no_container() -> None:
    assert m.key_info(0x9A) is None
    assert m.key_info(0x9A, certificate=b"not a certificate") is None
    p521 = ec.generate_private_key(ec.SECP521R1())
    assert m.key_info(0x9A, public_key=p521.public_key()) is None


class FakePiv:
    """A card with certificates only, no YubiKey metadata (F7 -> 6D00 -> None)."""

    def __init__(self, certs: dict[int, bytes], chuid: bytes | None = None) -> None:
        self.certs, self.chuid, self.reads = certs, chuid, 0

    def get_data(self, object_id: int) -> bytes:
        if self.chuid is None:
            raise ApduError(0x6A82)
        return self.chuid

    def get_certificate(self, slot: int) -> bytes:
        self.reads += 1
        if slot not in self.certs:
            raise ApduError(0x6A82)
        return self.certs[slot]

    def get_slot_metadata(self, slot: int) -> SlotMetadata | None:
        return None


def test_read_card_without_metadata_and_the_default_container() -> None:
    piv = FakePiv({0x9C: certificate(EC_KEY), 0x9D: certificate(RSA_KEY), 0x83: certificate(EC_KEY)})
    model = m.CardModel()
    found = m.read_card(piv, model)
    assert [c.index for c in found if c] == [1, 2, 5]
    assert model.metadata_supported is False
    # 9C is "PIN always": the default is the first container under the user PIN, 9D
    assert m.default_index(found) == 2
    records = m.cmap_records(found)
    assert len(records) == 24
    assert records[2].bFlags == 3 and records[2].wKeyExchangeKeySizeBits == 1024 and records[2].wSigKeySizeBits == 0
    assert records[1].bFlags == 1 and records[1].wSigKeySizeBits == 256
    assert records[0].bFlags == 0 and records[0].wszGuid == ""
    # read once per context: a second pass costs no APDU
    reads = piv.reads
    m.read_card(piv, model)
    assert piv.reads == reads


def test_a_generated_key_is_a_container_before_its_certificate() -> None:
    piv = FakePiv({})
    model = m.CardModel()
    assert m.read_slot(piv, model, 0x9D) is None
    model.remember_key(0x9D, EC_KEY.public_key())
    found = m.read_slot(piv, model, 0x9D)
    assert found is not None and found.key.key_spec == KeySpec.AT_ECDHE_P256 and not found.has_certificate
    assert m.cert_file_name(found) == "kxc02"
