"""MOVE KEY and DELETE KEY (YubiKey 5.7, INS F6) on the yubikey-5.7 persona.

P1 is the target slot (FF: delete), P2 the source slot (yubikit ``PivSession.move_key`` /
``delete_key``). The key moves with its metadata; certificates stay where they are.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from piv_host import ALG_AES192, ALG_P256, DEFAULT_MGMT, OK, Host, tlv

from emulator.factory import build_card
from emulator.profile import load_profile
from emulator.store import MemoryStore, Store

MOVE = 0xF6
DELETE_P1 = 0xFF
AUTH, SIGN, KEY_MGMT, CARD_AUTH, RETIRED_1, ATTESTATION = 0x9A, 0x9C, 0x9D, 0x9E, 0x82, 0xF9
AUTH_CERT = 0x5FC105


def yubikey(store: Store | None = None) -> Host:
    card = build_card(load_profile("yubikey-5.7"), store if store is not None else MemoryStore())
    card.power_on()
    host = Host(card)
    host.select()
    return host


@pytest.fixture
def host() -> Host:
    h = yubikey()
    h.authenticate(DEFAULT_MGMT, ALG_AES192)
    return h


def sign(host: Host, slot: int, message: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(message)
    return host.private_op(slot, ALG_P256, digest.finalize())


def test_move_key_carries_key_and_metadata_and_empties_the_source(host: Host) -> None:
    public = host.generate(AUTH, ALG_P256, pin_policy=0x01, touch_policy=0x03)
    before = host.metadata(AUTH)
    host.ok(MOVE, KEY_MGMT, AUTH)
    assert host.metadata(KEY_MGMT) == before  # algorithm, policies, origin "generated", public key
    assert host.sw(0xF7, 0x00, AUTH) == 0x6A88
    assert host.sw(0x87, ALG_P256, AUTH, tlv(0x7C, tlv(0x82) + tlv(0x81, bytes(32)))) == 0x6A88
    signature = sign(host, KEY_MGMT, b"moved")  # PIN policy never: no VERIFY needed
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, b"moved", ec.ECDSA(hashes.SHA256()))


def test_move_key_leaves_certificates_where_they_are(host: Host) -> None:
    host.generate(AUTH, ALG_P256)
    content = tlv(0x70, b"\x30\x03\x02\x01\x01") + tlv(0x71, b"\x00") + tlv(0xFE)
    assert host.put_object(AUTH_CERT, content) == OK
    host.ok(MOVE, SIGN, AUTH)
    data, sw = host.get_object(AUTH_CERT)
    assert sw == OK and data == tlv(0x53, content)
    assert host.get_object(0x5FC10A)[1] == 0x6A82  # the signature slot's container stays empty


def test_delete_key_removes_key_and_metadata_only(host: Host) -> None:
    host.generate(RETIRED_1, ALG_P256)
    host.ok(MOVE, DELETE_P1, RETIRED_1)
    assert host.sw(0xF7, 0x00, RETIRED_1) == 0x6A88
    assert host.sw(MOVE, DELETE_P1, RETIRED_1) == 0x6A88  # nothing left to delete


def test_move_refuses_an_occupied_target_and_changes_nothing(host: Host) -> None:
    host.generate(AUTH, ALG_P256)
    host.generate(SIGN, ALG_P256)
    auth, signature_slot = host.metadata(AUTH), host.metadata(SIGN)
    assert host.sw(MOVE, SIGN, AUTH) == 0x6985
    assert (host.metadata(AUTH), host.metadata(SIGN)) == (auth, signature_slot)


def test_the_attestation_key_can_be_deleted_but_not_moved(host: Host) -> None:
    host.generate(AUTH, ALG_P256)
    assert host.sw(MOVE, SIGN, ATTESTATION) == 0x6A86
    assert host.sw(MOVE, ATTESTATION, AUTH) == 0x6A86  # nor can a key be moved into F9
    host.ok(MOVE, DELETE_P1, ATTESTATION)
    assert host.sw(0xF9, AUTH, 0x00) == 0x6A88  # no attestation key: nothing can be attested


@pytest.mark.parametrize(
    ("p1", "p2", "data", "sw"),
    [
        (AUTH, AUTH, b"", 0x6A86),  # onto itself
        (0x9B, AUTH, b"", 0x6A86),  # the management key is no key slot
        (SIGN, 0x96, b"", 0x6A86),  # no such slot
        (0x00, AUTH, b"", 0x6A86),
        (SIGN, CARD_AUTH, b"", 0x6A88),  # empty source
        (SIGN, AUTH, b"\x00", 0x6700),  # MOVE KEY takes no data
    ],
)
def test_malformed_moves_get_their_status_word(host: Host, p1: int, p2: int, data: bytes, sw: int) -> None:
    if sw != 0x6A88:
        host.generate(AUTH, ALG_P256)
    assert host.sw(MOVE, p1, p2, data) == sw


def test_move_and_delete_need_the_management_key() -> None:
    host = yubikey()
    assert host.sw(MOVE, SIGN, ATTESTATION) == 0x6A86  # parameters are checked first
    assert host.sw(MOVE, DELETE_P1, ATTESTATION) == 0x6982
    assert host.metadata(ATTESTATION)[0x01] == bytes((ALG_P256,))  # still there


def test_a_move_persists_in_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "card.sqlite"
    store = Store(path)
    try:
        with store.batch():
            host = yubikey(store)
        host.authenticate(DEFAULT_MGMT, ALG_AES192)
        host.generate(AUTH, ALG_P256)
        moved = host.metadata(AUTH)
        host.ok(MOVE, RETIRED_1, AUTH)
    finally:
        store.close()
    store = Store(path)
    try:
        again = yubikey(store)
        assert again.metadata(RETIRED_1) == moved
        assert again.sw(0xF7, 0x00, AUTH) == 0x6A88
    finally:
        store.close()


def test_gp_standard_does_not_offer_move_key() -> None:
    host = Host.fresh()
    host.authenticate()
    assert host.sw(MOVE, SIGN, AUTH) == 0x6D00
    assert host.metadata(AUTH)[0x01] == bytes((ALG_P256,))  # the profile's key did not move
