"""PIV benchmarks: signatures and key generation through the full stack vs `cryptography`.

Each row is an operation through pyscard -> pcscd -> vpcd -> daemon -> PIV applet;
beside it, the same private-key operation done directly with `cryptography` in
this process, and the floor round trip (a 9000-only responder on the same
transport), all measured in this run.

Run: .venv/bin/python -m bench.bench_piv  (as root; starts and stops a private stack)
"""

from __future__ import annotations

import argparse
import os

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from emulator.iso7816 import encode_tlv, find_tlv

from ._harness import Stats, connect, floor_responder, interleave, private_stack, table

SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
#: PIV's well-known default management key (TEST ONLY, as in the default profile)
TEST_MGMT_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")
TEST_PIN = b"123456\xff\xff"
ALG_3DES, ALG_RSA2048, ALG_P256 = 0x03, 0x07, 0x11
SLOT_AUTH, SLOT_KEY_MGMT, SLOT_RETIRED1, SLOT_MGMT = 0x9A, 0x9D, 0x82, 0x9B


class PIVHost:
    def __init__(self, conn) -> None:  # type: ignore[no-untyped-def]
        self.conn = conn

    def send(self, apdu: bytes) -> bytes:
        data, sw1, sw2 = self.conn.transmit(list(apdu))
        out = bytes(data)
        while sw1 == 0x61:
            more, sw1, sw2 = self.conn.transmit([0x00, 0xC0, 0x00, 0x00, sw2])
            out += bytes(more)
        if (sw1, sw2) != (0x90, 0x00):
            raise RuntimeError(f"{apdu[:4].hex()} answered {sw1:02X}{sw2:02X}")
        return out

    def general_authenticate(self, alg: int, slot: int, template: bytes) -> bytes:
        body = encode_tlv(0x7C, template)
        if len(body) <= 255:
            apdu = bytes((0x00, 0x87, alg, slot, len(body))) + body + b"\x00"
        else:  # extended length: one round trip, as with a real token on a T=1 reader
            apdu = bytes((0x00, 0x87, alg, slot, 0x00)) + len(body).to_bytes(2, "big") + body + b"\x00\x00"
        resp = self.send(apdu)
        outer = find_tlv(resp, 0x7C)
        assert outer is not None
        return outer.value

    def authenticate_management_key(self) -> None:
        """Mutual authentication with the 3DES management key (SP 800-73-4 pt 2 §3.2.4)."""
        witness_tlv = find_tlv(self.general_authenticate(ALG_3DES, SLOT_MGMT, encode_tlv(0x80, b"")), 0x80)
        assert witness_tlv is not None
        cipher = Cipher(TripleDES(TEST_MGMT_KEY), modes.ECB())
        dec = cipher.decryptor()
        plain = dec.update(witness_tlv.value) + dec.finalize()
        challenge = os.urandom(8)
        self.general_authenticate(ALG_3DES, SLOT_MGMT, encode_tlv(0x80, plain) + encode_tlv(0x81, challenge))

    def generate(self, slot: int, alg: int) -> bytes:
        return self.send(
            bytes((0x00, 0x47, 0x00, slot, 0x05)) + encode_tlv(0xAC, encode_tlv(0x80, bytes((alg,)))) + b"\x00"
        )

    def verify_pin(self) -> None:
        self.send(bytes.fromhex("0020008008") + TEST_PIN)

    def sign(self, alg: int, slot: int, data: bytes) -> bytes:
        return self.general_authenticate(alg, slot, encode_tlv(0x82, b"") + encode_tlv(0x81, data))


def pkcs1_block(digest: bytes, size: int) -> bytes:
    """EMSA-PKCS1-v1_5 encoding of a SHA-256 digest (the host pads; the card does raw RSA)."""
    prefix = bytes.fromhex("3031300d060960864801650304020105000420")
    t = prefix + digest
    return b"\x00\x01" + b"\xff" * (size - len(t) - 3) + b"\x00" + t


def run(n: int) -> list[Stats]:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"vcard benchmark")
    h = digest.finalize()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with private_stack() as vc, floor_responder(vc, slot=1) as floor_reader:
        floor = connect(floor_reader)
        conn = connect(vc.reader_name(0))
        try:
            piv = PIVHost(conn)
            piv.send(SELECT_PIV)
            piv.authenticate_management_key()
            piv.generate(SLOT_KEY_MGMT, ALG_RSA2048)
            piv.verify_pin()
            block = pkcs1_block(h, 256)
            nop = [0x80, 0xCA, 0x00, 0x42, 0x00]
            ecdsa = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
            pkcs1 = (padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
            rows = interleave(
                {
                    "floor: 9000-only responder round trip": lambda: floor.transmit(nop),
                    "card: ECDSA P-256 sign (9A)": lambda: piv.sign(ALG_P256, SLOT_AUTH, h),
                    "cryptography: ECDSA P-256 sign": lambda: ec_key.sign(h, ecdsa),
                    "card: RSA-2048 sign (9D, raw PKCS#1 block)": lambda: piv.sign(ALG_RSA2048, SLOT_KEY_MGMT, block),
                    "cryptography: RSA-2048 sign": lambda: rsa_key.sign(h, *pkcs1),
                    "card: GENERATE P-256 (retired slot 82)": lambda: piv.generate(SLOT_RETIRED1, ALG_P256),
                    "cryptography: generate P-256 key": lambda: ec.generate_private_key(ec.SECP256R1()),
                },
                n=n,
            )
        finally:
            conn.release()
            floor.release()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=300)
    args = parser.parse_args()
    rows = run(args.n)
    print(table("PIV through the full stack vs the same operation in cryptography (same run)", rows, baseline=rows[0]))
    floor = rows[0].median_ms
    for card, direct in ((rows[1], rows[2]), (rows[3], rows[4]), (rows[5], rows[6])):
        budget = direct.median_ms + 1.5 * floor
        verdict = "within" if card.median_ms <= budget else "OVER"
        print(f"{card.name}: {card.median_ms:.3f} ms vs target {budget:.3f} ms (crypto + 1.5x floor): {verdict}")


if __name__ == "__main__":
    main()
