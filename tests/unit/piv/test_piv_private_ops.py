"""The private operations and their caches: results equal the textbook definitions.

RSA through the card is the raw private exponentiation ``block^d mod n``
(SP 800-73-4 part 2 §3.2.4), whichever way the applet computes it: the
``cryptography`` PKCS#1 v1.5 signer for signature blocks of a known hash,
the CRT for everything else. Each case here compares with ``pow(block, d, n)``.
"""

from __future__ import annotations

import json
import os
import random

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from piv_host import ALG_P256, ALG_RSA1024, ALG_RSA2048, OK, Host, tlv

from emulator.applets.piv.consts import Origin, PinPolicy, TouchPolicy
from emulator.applets.piv.keys import KeyRecord, SlotKey
from emulator.factory import PIV_NAMESPACE
from emulator.iso7816 import CardError
from emulator.store import MemoryStore

#: DigestInfo prefixes of RFC 8017 §9.2 note 1, written out independently of the applet's table
DIGEST_INFO = {
    "md5": ("3020300c06082a864886f70d020505000410", hashes.MD5()),
    "sha1": ("3021300906052b0e03021a05000414", hashes.SHA1()),
    "sha224": ("302d300d06096086480165030402040500041c", hashes.SHA224()),
    "sha256": ("3031300d060960864801650304020105000420", hashes.SHA256()),
    "sha384": ("3041300d060960864801650304020205000430", hashes.SHA384()),
    "sha512": ("3051300d060960864801650304020305000440", hashes.SHA512()),
}


@pytest.fixture(scope="module", params=[1024, 2048, 3072], ids=lambda bits: f"rsa{bits}")
def rsa_key(request: pytest.FixtureRequest) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, request.param)


def textbook(key: rsa.RSAPrivateKey, block: bytes) -> bytes:
    numbers = key.private_numbers()
    size = (key.key_size + 7) // 8
    return pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n).to_bytes(size, "big")


def emsa_pkcs1(digest_info: bytes, size: int, *, ps_len: int | None = None) -> bytes:
    ps = b"\xff" * (size - len(digest_info) - 3 if ps_len is None else ps_len)
    return b"\x00\x01" + ps + b"\x00" + digest_info


def random_below(n: int, rng: random.Random) -> bytes:
    size = (n.bit_length() + 7) // 8
    return rng.randrange(n).to_bytes(size, "big")


@pytest.mark.parametrize("hash_name", list(DIGEST_INFO))
def test_pkcs1_signature_blocks_take_the_signer_and_equal_the_exponentiation(
    rsa_key: rsa.RSAPrivateKey, hash_name: str
) -> None:
    prefix, alg = DIGEST_INFO[hash_name]
    size = rsa_key.key_size // 8
    slot_key = SlotKey(rsa_key)
    for _ in range(3):
        block = emsa_pkcs1(bytes.fromhex(prefix) + os.urandom(alg.digest_size), size)
        assert SlotKey._pkcs1v15_signature(rsa_key, block) is not None  # the fast path applies
        assert slot_key.rsa_private_operation(block) == textbook(rsa_key, block)


def test_other_blocks_take_the_crt_and_equal_the_exponentiation(rsa_key: rsa.RSAPrivateKey) -> None:
    rng = random.Random(rsa_key.key_size)
    n = rsa_key.public_key().public_numbers().n
    size = rsa_key.key_size // 8
    sha256 = bytes.fromhex(DIGEST_INFO["sha256"][0])
    valid = emsa_pkcs1(sha256 + os.urandom(32), size)
    near_misses = [
        valid[:20] + b"\xfe" + valid[21:],  # a padding byte that is not FF
        valid[: size - 52] + b"\xff" + valid[size - 51 :],  # no 00 after the padding
        b"\x00\x02" + valid[2:],  # block type 2 (encryption)
        valid[: size - 52 - 19 + 18] + b"\x09" + valid[size - 52 - 19 + 19 :],  # another OID, same length
        emsa_pkcs1(bytes.fromhex("302f300b0609608648016503040201") + b"\x04\x20" + os.urandom(32), size),  # no NULL
        emsa_pkcs1(sha256 + os.urandom(33), size),  # digest one byte too long
    ]
    blocks = [random_below(n, rng) for _ in range(8)] + near_misses
    slot_key = SlotKey(rsa_key)
    for block in blocks:
        assert len(block) == size
        assert SlotKey._pkcs1v15_signature(rsa_key, block) is None
        assert slot_key.rsa_private_operation(block) == textbook(rsa_key, block)


def test_rsa_input_at_or_above_the_modulus_or_of_the_wrong_length_is_6a80(rsa_key: rsa.RSAPrivateKey) -> None:
    n = rsa_key.public_key().public_numbers().n
    size = rsa_key.key_size // 8
    slot_key = SlotKey(rsa_key)
    for block in (n.to_bytes(size, "big"), b"\xff" * size, bytes(size - 1), bytes(size + 1)):
        with pytest.raises(CardError) as err:
            slot_key.rsa_private_operation(block)
        assert err.value.sw == 0x6A80


def test_pss_and_oaep_through_the_card_use_the_raw_operation() -> None:
    host = Host.fresh()
    host.authenticate()
    public = host.generate(0x9D, ALG_RSA1024)
    assert isinstance(public, rsa.RSAPublicKey) and host.verify() == OK
    n, e = public.public_numbers().n, public.public_numbers().e

    # PSS: the host encodes (here: by recovering the encoded message of a reference signature)
    reference = rsa.generate_private_key(e, 1024)
    message = b"vcard PSS through raw RSA"
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    reference_n = reference.public_key().public_numbers().n
    encoded = pow(int.from_bytes(reference.sign(message, pss, hashes.SHA256()), "big"), e, reference_n)
    assert encoded < n  # EMSA-PSS leaves the top bit clear (RFC 8017 §9.1.1)
    signature = host.private_op(0x9D, ALG_RSA1024, encoded.to_bytes(128, "big"))
    public.verify(signature, message, pss, hashes.SHA256())

    # OAEP: the card returns the encoded message; its length and leading zero show the raw result
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    ciphertext = public.encrypt(b"secret", oaep)
    em = host.private_op(0x9D, ALG_RSA1024, ciphertext)
    assert len(em) == 128 and em[0] == 0 and pow(int.from_bytes(em, "big"), e, n) == int.from_bytes(ciphertext, "big")


def test_each_generate_and_import_replaces_the_cached_key() -> None:
    host = Host.fresh()
    host.authenticate()
    message = b"which key signed this?"
    digest = hashes.Hash(hashes.SHA256())
    digest.update(message)
    h = digest.finalize()
    for _ in range(3):
        public = host.generate(0x9E, ALG_P256)  # 9E: no PIN
        assert isinstance(public, ec.EllipticCurvePublicKey)
        signature = host.private_op(0x9E, ALG_P256, h)
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))

    imported = ec.generate_private_key(ec.SECP256R1())
    scalar = imported.private_numbers().private_value.to_bytes(32, "big")
    assert host.sw(0xFE, ALG_P256, 0x9E, tlv(0x06, scalar)) == OK
    imported.public_key().verify(host.private_op(0x9E, ALG_P256, h), message, ec.ECDSA(hashes.SHA256()))


def test_a_slot_written_behind_the_applets_back_is_read_again() -> None:
    store = MemoryStore()
    host = Host.fresh(store)
    host.authenticate()
    host.generate(0x9E, ALG_P256)
    host.private_op(0x9E, ALG_P256, bytes(32))  # the key is now cached
    other = ec.generate_private_key(ec.SECP256R1())
    record = KeyRecord.create(other, pin_policy=PinPolicy.NEVER, touch_policy=TouchPolicy.NEVER, origin=Origin.IMPORTED)
    store.write({(PIV_NAMESPACE, "key/9e"): bytes(record)})
    digest = os.urandom(32)
    signature = host.private_op(0x9E, ALG_P256, digest)
    other.public_key().verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_key_record_encoding_is_sorted_json() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    record = KeyRecord.create(key, pin_policy=PinPolicy.ONCE, touch_policy=TouchPolicy.NEVER, origin=Origin.GENERATED)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    expected = {"alg": 0x11, "der": der.hex(), "pin": int(PinPolicy.ONCE), "touch": int(TouchPolicy.NEVER), "origin": 1}
    assert bytes(record) == json.dumps(expected, sort_keys=True).encode()
    assert KeyRecord.from_bytes(bytes(record)) == record


def test_rsa_2048_card_signature_equals_cryptography() -> None:
    """Same input, same key: the card's answer is the PKCS#1 v1.5 signature ``cryptography`` makes."""
    rsa_key = rsa.generate_private_key(65537, 2048)
    host = Host.fresh()
    host.authenticate()
    numbers = rsa_key.private_numbers()
    components = b"".join(
        tlv(tag, value.to_bytes(128, "big"))
        for tag, value in enumerate((numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp), start=1)
    )
    assert host.sw(0xFE, ALG_RSA2048, 0x9D, components) == OK
    assert host.verify() == OK
    message = b"deterministic"
    expected = rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    digest = hashes.Hash(hashes.SHA256())
    digest.update(message)
    block = emsa_pkcs1(bytes.fromhex(DIGEST_INFO["sha256"][0]) + digest.finalize(), 256)
    assert host.private_op(0x9D, ALG_RSA2048, block) == expected
