"""A tiny PIV host for the unit tests: APDUs in bytes, through a whole VirtualCard.

It does what middleware does on the wire (command chaining, GET RESPONSE,
the 9B challenge-response), written from the specification, so the tests
read like the host side of SP 800-73-4 part 2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from emulator.card import VirtualCard
from emulator.factory import build_card
from emulator.iso7816 import encode_tlv, find_tlv, parse_tlvs
from emulator.profile import load_profile
from emulator.store import MemoryStore, Store

PIV_AID = bytes.fromhex("A000000308000010000100")
SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
DEFAULT_MGMT = bytes.fromhex("010203040506070801020304050607080102030405060708")
OK = 0x9000
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

ALG_TDES, ALG_AES128, ALG_AES192, ALG_AES256 = 0x03, 0x08, 0x0A, 0x0C
ALG_RSA1024, ALG_RSA2048, ALG_P256, ALG_P384 = 0x06, 0x07, 0x11, 0x14


def pin_block(value: str) -> bytes:
    return value.encode().ljust(8, b"\xff")


def tlv(tag: int, value: bytes = b"") -> bytes:
    return encode_tlv(tag, value)


class APDUError(AssertionError):
    def __init__(self, sw: int) -> None:
        super().__init__(f"SW {sw:04X}")
        self.sw = sw


@dataclass
class Host:
    card: VirtualCard

    @classmethod
    def fresh(cls, store: Store | None = None) -> Host:
        card = build_card(load_profile(), store if store is not None else MemoryStore())
        card.power_on()
        host = cls(card)
        host.select()
        return host

    # -- wire -------------------------------------------------------------------
    def send(self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", *, le: int = 256) -> tuple[bytes, int]:
        """Send with command chaining (255-byte links) and collect 61xx answers."""
        chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            apdu = bytes((cla | (0 if last else 0x10), ins, p1, p2))
            if chunk:
                apdu += bytes((len(chunk),)) + chunk
            if last and le:
                apdu += bytes((le % 256,))
            resp = self.card.transmit(apdu)
            out, sw = resp[:-2], int.from_bytes(resp[-2:], "big")
            if not last and sw != OK:
                return out, sw
        while sw >> 8 == 0x61:
            resp = self.card.transmit(bytes((0x00, 0xC0, 0x00, 0x00, sw & 0xFF)))
            out, sw = out + resp[:-2], int.from_bytes(resp[-2:], "big")
        return out, sw

    def ok(self, ins: int, p1: int, p2: int, data: bytes = b"", *, cla: int = 0x00) -> bytes:
        out, sw = self.send(cla, ins, p1, p2, data)
        if sw != OK:
            raise APDUError(sw)
        return out

    def sw(self, ins: int, p1: int, p2: int, data: bytes = b"", *, cla: int = 0x00) -> int:
        return self.send(cla, ins, p1, p2, data)[1]

    # -- PIV operations ------------------------------------------------------------
    def select(self) -> bytes:
        resp = self.card.transmit(SELECT_PIV)
        assert resp[-2:] == b"\x90\x00", resp.hex()
        return resp[:-2]

    def verify(self, pin: str = "123456") -> int:
        return self.sw(0x20, 0x00, 0x80, pin_block(pin))

    def authenticate(self, key: bytes = DEFAULT_MGMT, alg: int = ALG_TDES, *, mutual: bool = True) -> None:
        cipher = _cipher(alg, key)
        if mutual:
            resp = self.ok(0x87, alg, 0x9B, tlv(0x7C, tlv(0x80)))
            witness = _unwrap(resp, 0x80)
            dec = cipher.decryptor()
            plain = dec.update(witness) + dec.finalize()
            challenge = os.urandom(len(witness))
            resp = self.ok(0x87, alg, 0x9B, tlv(0x7C, tlv(0x80, plain) + tlv(0x81, challenge)))
            enc = cipher.encryptor()
            assert _unwrap(resp, 0x82) == enc.update(challenge) + enc.finalize(), "card answer wrong"
        else:
            challenge = _unwrap(self.ok(0x87, alg, 0x9B, tlv(0x7C, tlv(0x81))), 0x81)
            enc = cipher.encryptor()
            self.ok(0x87, alg, 0x9B, tlv(0x7C, tlv(0x82, enc.update(challenge) + enc.finalize())))

    def generate(self, slot: int, alg: int, *, pin_policy: int = 0, touch_policy: int = 0) -> PublicKey:
        body = tlv(0x80, bytes((alg,)))
        if pin_policy:
            body += tlv(0xAA, bytes((pin_policy,)))
        if touch_policy:
            body += tlv(0xAB, bytes((touch_policy,)))
        resp = self.ok(0x47, 0x00, slot, tlv(0xAC, body))
        return public_key_from_tlvs(alg, _unwrap_one(resp, 0x7F49))

    def private_op(self, slot: int, alg: int, data: bytes, *, tag: int = 0x81) -> bytes:
        resp = self.ok(0x87, alg, slot, tlv(0x7C, tlv(0x82) + tlv(tag, data)))
        return _unwrap(resp, 0x82)

    def put_object(self, tag: int, content: bytes) -> int:
        tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
        return self.sw(0xDB, 0x3F, 0xFF, tlv(0x5C, tag_bytes) + tlv(0x53, content))

    def get_object(self, tag: int) -> tuple[bytes, int]:
        tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
        return self.send(0x00, 0xCB, 0x3F, 0xFF, tlv(0x5C, tag_bytes))

    def metadata(self, ref: int) -> dict[int, bytes]:
        return {t.tag: t.value for t in parse_tlvs(self.ok(0xF7, 0x00, ref))}


def public_key_from_tlvs(alg: int, encoded: bytes) -> PublicKey:
    items = {t.tag: t.value for t in parse_tlvs(encoded)}
    if alg in (ALG_P256, ALG_P384):
        curve = ec.SECP256R1() if alg == ALG_P256 else ec.SECP384R1()
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, items[0x86])
    n, e = (int.from_bytes(items[t], "big") for t in (0x81, 0x82))
    return rsa.RSAPublicNumbers(e, n).public_key()


def public_der(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _cipher(alg: int, key: bytes) -> Cipher:
    algo = TripleDES(key) if alg == ALG_TDES else algorithms.AES(key)
    return Cipher(algo, modes.ECB())


def _unwrap_one(data: bytes, tag: int) -> bytes:
    items = parse_tlvs(data)
    assert len(items) == 1 and items[0].tag == tag, data.hex()
    return items[0].value


def _unwrap(resp: bytes, inner: int) -> bytes:
    found = find_tlv(_unwrap_one(resp, 0x7C), inner)
    assert found is not None, resp.hex()
    return found.value
