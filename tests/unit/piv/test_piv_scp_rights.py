"""Issuer rights inside SCP03 (emulator/applets/piv/scp_rights.py): a session the ISD opened at
C-MAC + C-DECRYPTION or higher may do what the 9B management key allows; nothing else may.

The host side is minidriver's SCP03 code (written apart from the card side).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from piv_host import ALG_P256, OK, Host, pin_block, tlv

from emulator.iso7816 import parse_tlvs
from minidriver.scp03 import SCP03Host
from minidriver.scpbase import StaticKeys

ISD_AID = bytes.fromhex("A000000151000000")
GP_TEST_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
SECURITY_STATUS_NOT_SATISFIED = 0x6982
SLOT = 0x9D


def import_apdu(scalar: bytes, *, cla: int = 0x00, slot: int = SLOT) -> bytes:
    data = tlv(0x06, scalar)
    return bytes((cla, 0xFE, ALG_P256, slot, len(data))) + data


def new_scalar() -> tuple[bytes, ec.EllipticCurvePublicKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_numbers().private_value.to_bytes(32, "big"), key.public_key()


class Secure:
    def __init__(self, host: Host, channel: int = 0) -> None:
        self.card = host.card
        self.scp = SCP03Host(StaticKeys.same(GP_TEST_KEY, kvn=0), sd_aid=ISD_AID, channel=channel)

    def open(self, level: int) -> None:
        resp = self.card.transmit(self.scp.initialize_update_apdu(0))
        assert resp[-2:] == b"\x90\x00", resp.hex()
        self.scp.process_initialize_update_response(resp[:-2])
        assert self.card.transmit(self.scp.external_authenticate_apdu(level))[-2:] == b"\x90\x00"

    def sw(self, apdu: bytes) -> int:
        resp = self.card.transmit(self.scp.wrap(apdu))
        if resp[-2:] == b"\x90\x00" or resp[-2] in (0x62, 0x63):
            resp = self.scp.unwrap(resp)
        return int.from_bytes(resp[-2:], "big")


def slot_point(host: Host, slot: int = SLOT) -> bytes | None:
    out, sw = host.send(0x00, 0xF7, 0x00, slot)
    if sw != OK:
        return None
    meta = {t.tag: t.value for t in parse_tlvs(out)}
    return {t.tag: t.value for t in parse_tlvs(meta[0x04])}[0x86]


def point(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@pytest.mark.parametrize("level", [0x03, 0x13, 0x33])
def test_issuer_session_imports_a_key(level: int) -> None:
    host = Host.fresh()
    secure = Secure(host)
    secure.open(level)
    scalar, public = new_scalar()
    assert secure.sw(import_apdu(scalar)) == OK
    host.select()  # ends the session; the key stays
    assert slot_point(host) == point(public)


@pytest.mark.parametrize("level", [0x00, 0x01, 0x11])
def test_session_without_c_decryption_cannot_import(level: int) -> None:
    host = Host.fresh()
    secure = Secure(host)
    secure.open(level)
    scalar, _ = new_scalar()
    if level == 0x00:  # commands travel plain at level 00
        sw = int.from_bytes(host.card.transmit(import_apdu(scalar))[-2:], "big")
    else:
        sw = secure.sw(import_apdu(scalar))
    assert sw == SECURITY_STATUS_NOT_SATISFIED
    host.select()
    assert slot_point(host) is None


def test_plain_client_cannot_import_or_write() -> None:
    host = Host.fresh()
    scalar, _ = new_scalar()
    assert int.from_bytes(host.card.transmit(import_apdu(scalar))[-2:], "big") == SECURITY_STATUS_NOT_SATISFIED
    assert host.put_object(0x5FC102, b"\x30\x00") == SECURITY_STATUS_NOT_SATISFIED
    assert slot_point(host) is None


def test_half_open_session_has_no_rights() -> None:
    host = Host.fresh()
    secure = Secure(host)
    resp = host.card.transmit(secure.scp.initialize_update_apdu(0))
    assert resp[-2:] == b"\x90\x00"
    scalar, _ = new_scalar()
    assert int.from_bytes(host.card.transmit(import_apdu(scalar))[-2:], "big") == SECURITY_STATUS_NOT_SATISFIED


def test_rights_end_with_the_session_and_leave_no_management_status() -> None:
    host = Host.fresh()
    secure = Secure(host)
    secure.open(0x03)
    body = tlv(0x5C, bytes.fromhex("5FC102")) + tlv(0x53, b"\x30\x00")
    assert secure.sw(bytes.fromhex("00DB3FFF") + bytes((len(body),)) + body) == OK  # PUT DATA with issuer rights
    host.select()  # SELECT ends the session (GPCS §10.2.3)
    scalar, _ = new_scalar()
    assert int.from_bytes(host.card.transmit(import_apdu(scalar))[-2:], "big") == SECURITY_STATUS_NOT_SATISFIED
    assert host.put_object(0x5FC102, b"\x30\x00") == SECURITY_STATUS_NOT_SATISFIED


def test_tampered_command_closes_the_session_and_imports_nothing() -> None:
    host = Host.fresh()
    secure = Secure(host)
    secure.open(0x03)
    scalar, _ = new_scalar()
    wire = bytearray(secure.scp.wrap(import_apdu(scalar)))
    wire[10] ^= 0x01  # one bit of the encrypted key
    assert host.card.transmit(bytes(wire))[-2:] == bytes.fromhex("6982")
    assert slot_point(host) is None
    # the session is gone: the same host cannot continue it
    assert (
        int.from_bytes(host.card.transmit(secure.scp.wrap(import_apdu(scalar)))[-2:], "big")
        == SECURITY_STATUS_NOT_SATISFIED
    )
    assert slot_point(host) is None


def test_rights_are_per_logical_channel() -> None:
    host = Host.fresh()
    assert host.card.transmit(bytes.fromhex("0070000001")) == b"\x01\x90\x00"
    resp = host.card.transmit(bytes.fromhex("01A4040009A00000030800001000"))
    assert resp[-2:] == b"\x90\x00"
    secure = Secure(host, channel=1)
    secure.open(0x03)
    scalar, public = new_scalar()
    assert int.from_bytes(host.card.transmit(import_apdu(scalar))[-2:], "big") == SECURITY_STATUS_NOT_SATISFIED
    assert secure.sw(import_apdu(scalar, cla=0x01)) == OK
    assert slot_point(host) == point(public)
    # the issuer session may also change the PIN retries only with the PIN verified, as 9B would
    assert secure.sw(bytes.fromhex("01FA0303")) == SECURITY_STATUS_NOT_SATISFIED
    assert secure.sw(bytes.fromhex("0120008008") + pin_block("123456")) == OK
    assert secure.sw(bytes.fromhex("01FA0303")) == OK
