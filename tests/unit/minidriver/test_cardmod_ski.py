"""Secure key injection (minidriver.cardmod.ski*) against a whole virtual card in process.

Both roles run through the entry points, so every byte the relay carries is the real one; the
card side is emulator/ (its PIV applet grants issuer rights to an SCP03 session at C-MAC +
C-DECRYPTION). Two-process relay through pcscd: tests/e2e/test_ski.py.
"""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from incard import InProcessConnection

from minidriver.cardmod import CardAcquireContext, CardData, CardDeleteContext, Out, ScardCode, ski
from minidriver.cardmod.ski_local import LocalInjector, import_struct
from minidriver.cardmod.ski_state import configure_server, ski_state
from minidriver.cardmod.ski_wire import (
    CSF_AUTHENTICATE,
    CSF_CHANGE_AUTHENTICATOR,
    CSF_IMPORT_KEYPAIR,
    CardAuthenticate,
    CardChangeAuthenticator,
    CardEncryptedData,
)
from minidriver.cardmod.types import CARD_SECURE_KEY_INJECTION_NO_CARD_MODE, PinId
from minidriver.iso7816 import ApduError
from minidriver.piv import Algorithm, InvalidPinError, PinPolicy, PivSession
from minidriver.scpbase import ChannelState, StaticKeys

C = ScardCode
TEST_KEY = bytes(range(0x40, 0x50))
KEYS = StaticKeys.same(TEST_KEY, kvn=0xFF)
SLOT_9D, INDEX_9D = 0x9D, 2


@pytest.fixture
def conn() -> InProcessConnection:
    return InProcessConnection()


def card_context(conn: InProcessConnection) -> CardData:
    card = CardData(pbAtr=conn.atr, cbAtr=len(conn.atr), pwszCardName="vcard", hSCardCtx=1, hScard=1, connection=conn)
    assert CardAcquireContext(card, 0) == 0
    return card


def server_context(keys: StaticKeys = KEYS, level: int = 0x03) -> CardData:
    server = CardData()
    assert CardAcquireContext(server, CARD_SECURE_KEY_INJECTION_NO_CARD_MODE) == 0
    configure_server(server, keys, level=level)
    return server


@pytest.fixture
def card(conn: InProcessConnection) -> CardData:
    return card_context(conn)


def get_shared(cd: CardData, message: bytes | None) -> tuple[int, bytes, int]:
    out, size, key = Out[bytearray](), Out[int](), Out[int]()
    code = ski.CardGetSharedKeyHandle(cd, message, len(message or b""), out, size, key)
    return code, bytes(out.value or b""), key.value or 0


def handshake(server: CardData, card: CardData) -> tuple[int, int]:
    code, hello, zero = get_shared(server, None)
    assert (code, zero) == (0, 0) and len(hello) == 12
    code, challenge, zero = get_shared(card, hello)
    assert (code, zero) == (0, 0), hex(code)
    code, auth, server_key = get_shared(server, challenge)
    assert code == 0 and server_key and len(auth) == 24
    code, _, client_key = get_shared(card, auth)
    assert code == 0 and client_key
    return server_key, client_key


def encrypt(server: CardData, hkey: int, function: str, structure: bytes) -> tuple[int, list[CardEncryptedData]]:
    items, count = Out[list[CardEncryptedData]](), Out[int]()
    code = ski.MDEncryptData(server, hkey, function, structure, len(structure), 0, items, count)
    return code, list(items.value or [])


def process(card: CardData, hkey: int, function: str, blobs: list[CardEncryptedData]) -> tuple[int, bytes]:
    out, size = bytearray(16), Out[int]()
    code = ski.CardProcessEncryptedData(card, hkey, function, blobs, len(blobs), out, 16, size, 0)
    return code, bytes(out[: size.value or 0])


def slot_public(conn: InProcessConnection, slot: int = SLOT_9D) -> bytes | None:
    try:
        meta = PivSession(conn).get_slot_metadata(slot)
    except ApduError as exc:
        assert exc.sw == 0x6A88, exc  # an empty slot
        return None
    if meta is None or meta.public_key is None:
        return None
    return meta.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def der(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- the relay, end to end in process ------------------------------------------------------------------
def test_relay_imports_a_p256_key_that_signs_and_changes_the_pin(conn: InProcessConnection, card: CardData) -> None:
    server = server_context()
    skey, ckey = handshake(server, card)
    key = ec.generate_private_key(ec.SECP256R1())
    code, blobs = encrypt(server, skey, CSF_IMPORT_KEYPAIR, import_struct(INDEX_9D, key))
    assert code == 0 and len(blobs) == 1
    assert key.private_numbers().private_value.to_bytes(32, "big") not in blobs[0].pbEncryptedData  # type: ignore[operator]
    assert process(card, ckey, CSF_IMPORT_KEYPAIR, blobs) == (0, b"")
    change = CardChangeAuthenticator(0x02, PinId.ROLE_USER, b"123456", PinId.ROLE_USER, b"24681357")
    code, blobs = encrypt(server, skey, CSF_CHANGE_AUTHENTICATOR, bytes(change))
    assert code == 0 and b"24681357" not in b"".join(bytes(b.pbEncryptedData or b"") for b in blobs)
    assert process(card, ckey, CSF_CHANGE_AUTHENTICATOR, blobs) == (0, struct.pack("<II", 7, 3))
    assert slot_public(conn) == der(key)
    piv = PivSession(conn)
    with pytest.raises(InvalidPinError):
        piv.verify_pin(b"123456")
    piv.verify_pin(b"24681357")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"signed by the injected key")
    hashed = digest.finalize()
    signature = piv.sign_raw(SLOT_9D, Algorithm.ECCP256, hashed)
    key.public_key().verify(signature, hashed, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_rsa_2048_import_goes_chained(conn: InProcessConnection, card: CardData) -> None:
    key = rsa.generate_private_key(65537, 2048)
    with LocalInjector(card, KEYS) as injector:
        code, blobs = encrypt(injector.server, (injector.open(), injector.server_key)[1], CSF_IMPORT_KEYPAIR,
                              import_struct(0, key))  # fmt: skip
        assert code == 0 and len(blobs) == 3  # 5 CRT parts + policy: three chained blocks
        assert process(card, injector.client_key, CSF_IMPORT_KEYPAIR, blobs) == (0, b"")
    assert slot_public(conn, 0x9A) == der(key)


def test_pin_id_becomes_the_pin_policy(conn: InProcessConnection, card: CardData) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    with LocalInjector(card, KEYS) as injector:
        injector.import_key(1, key, pin_id=3)  # PIN_SIGN -> "PIN always"
        injector.import_key(3, ec.generate_private_key(ec.SECP256R1()), pin_id=PinId.ROLE_EVERYONE)
    piv = PivSession(conn)
    meta_9c, meta_9e = piv.get_slot_metadata(0x9C), piv.get_slot_metadata(0x9E)
    assert meta_9c is not None and meta_9c.pin_policy == PinPolicy.ALWAYS and meta_9c.algorithm == Algorithm.ECCP384
    assert meta_9e is not None and meta_9e.pin_policy == PinPolicy.NEVER


def test_wrong_pin_reports_tries_and_keeps_the_handle(card: CardData) -> None:
    with LocalInjector(card, KEYS) as injector:
        injector.open()
        code, response = injector.run(CSF_AUTHENTICATE, bytes(CardAuthenticate(0, PinId.ROLE_USER, b"999999")))
        assert code == C.SCARD_W_WRONG_CHV
        assert response == struct.pack("<III", 7, 0, 2)
        assert injector.verify_pin(b"123456") == 3  # same handle, tries restored


def test_unblock_with_the_puk(conn: InProcessConnection, card: CardData) -> None:
    with LocalInjector(card, KEYS) as injector:
        for _ in range(3):
            injector.run(CSF_AUTHENTICATE, bytes(CardAuthenticate(0, PinId.ROLE_USER, b"000000")))
        code, response = injector.run(CSF_AUTHENTICATE, bytes(CardAuthenticate(0, PinId.ROLE_USER, b"123456")))
        assert code == C.SCARD_W_CHV_BLOCKED and response[-4:] == bytes(4)
        assert injector.unblock_pin(b"12345678", b"11223344") == 3
    PivSession(conn).verify_pin(b"11223344")


@pytest.mark.parametrize(("level", "attempts"), [(0x13, 3), (0x33, 0xFFFFFFFF)])
def test_response_protection_levels(card: CardData, level: int, attempts: int) -> None:
    """R-MAC: the client strips it and still reads the tries; R-ENC hides them from the client."""
    with LocalInjector(card, KEYS, level=level) as injector:
        assert injector.change_pin(b"123456", b"654321") == attempts
        assert injector.verify_pin(b"654321") == attempts


# -- message formats: strict -----------------------------------------------------------------------------
HELLO = bytes.fromhex("530101FF") + bytes(8)


@pytest.mark.parametrize(
    "message",
    [
        HELLO[:-1],  # short
        HELLO + b"\x00",  # long
        b"\x54" + HELLO[1:],  # magic
        HELLO[:1] + b"\x02" + HELLO[2:],  # version
        HELLO[:2] + b"\x09" + HELLO[3:],  # unknown type
        HELLO[:2] + b"\x02" + HELLO[3:],  # a CHALLENGE on the client
        b"",
    ],
)
def test_client_refuses_malformed_messages_and_sends_nothing(
    conn: InProcessConnection, card: CardData, message: bytes
) -> None:
    sent = len(conn.sent)
    code, out, key = get_shared(card, message)
    assert (code, out, key) == (C.SCARD_E_INVALID_PARAMETER, b"", 0)
    assert len(conn.sent) == sent


def test_server_refuses_malformed_challenges(card: CardData) -> None:
    server = server_context()
    _, hello, _ = get_shared(server, None)
    _, challenge, _ = get_shared(card, hello)
    for bad in (challenge[:-1], challenge + b"\x00", challenge[:3] + b"\x05" + challenge[4:], hello):
        assert get_shared(server, bad)[0] == C.SCARD_E_INVALID_PARAMETER
    assert get_shared(server, challenge)[0] == 0  # the handshake survived the bad ones


def test_replayed_challenge_is_refused(card: CardData) -> None:
    server = server_context()
    _, hello, _ = get_shared(server, None)
    _, challenge, _ = get_shared(card, hello)
    assert get_shared(server, challenge)[0] == 0
    code, out, key = get_shared(server, challenge)
    assert (code, out, key) == (C.SCARD_E_INVALID_PARAMETER, b"", 0)


def test_wrong_keys_fail_with_wrong_chv_and_leave_nothing_open(conn: InProcessConnection, card: CardData) -> None:
    server = server_context(StaticKeys.same(bytes(16), kvn=0xFF))
    _, hello, _ = get_shared(server, None)
    _, challenge, _ = get_shared(card, hello)
    code, out, key = get_shared(server, challenge)
    assert (code, out, key) == (C.SCARD_W_WRONG_CHV, b"", 0)
    assert not ski_state(server).handles and not ski_state(server).pending_server


def test_replayed_auth_is_refused_by_the_card(conn: InProcessConnection, card: CardData) -> None:
    server = server_context()
    _, hello, _ = get_shared(server, None)
    _, challenge, _ = get_shared(card, hello)
    _, old_auth, _ = get_shared(server, challenge)
    _, hello2, _ = get_shared(server, None)
    _, challenge2, _ = get_shared(card, hello2)  # new card challenge: the old cryptogram is stale
    assert challenge2[3] == challenge[3]  # same channel was reused
    code, _, key = get_shared(card, old_auth)
    assert (code, key) == (C.SCARD_W_WRONG_CHV, 0)
    assert get_shared(card, old_auth)[0] == C.SCARD_E_INVALID_PARAMETER  # no round 1 waits any more
    assert set(conn.card.channels) == {0}  # the channel was closed: nothing half-open on the card


def test_card_swap_between_rounds(conn: InProcessConnection, card: CardData) -> None:
    server = server_context()
    _, hello, _ = get_shared(server, None)
    _, challenge, _ = get_shared(card, hello)
    _, auth, _ = get_shared(server, challenge)
    conn.remove()
    assert get_shared(card, auth)[0] == C.SCARD_W_REMOVED_CARD
    conn.insert()
    card.hScard = 2  # the caller reconnected
    code, _, key = get_shared(card, auth)
    assert (code, key) == (C.SCARD_W_REMOVED_CARD, 0)


def test_handshakes_of_one_server_interleave(conn: InProcessConnection) -> None:
    server = server_context()
    card_a, card_b = card_context(conn), card_context(InProcessConnection())
    _, hello_a, _ = get_shared(server, None)
    _, hello_b, _ = get_shared(server, None)
    _, ch_b, _ = get_shared(card_b, hello_b)
    _, ch_a, _ = get_shared(card_a, hello_a)
    code_a, auth_a, ka = get_shared(server, ch_a)
    code_b, auth_b, kb = get_shared(server, ch_b)
    assert code_a == code_b == 0 and 0 < ka < kb
    assert get_shared(card_a, auth_a)[0] == 0 and get_shared(card_b, auth_b)[0] == 0


# -- handles ------------------------------------------------------------------------------------------
def test_handles_are_monotonic_and_never_reused(card: CardData) -> None:
    server = server_context()
    seen = []
    for _ in range(3):
        skey, ckey = handshake(server, card)
        seen += [skey, ckey]
        assert ski.CardDestroyKey(card, ckey) == 0
        assert ski.CardDestroyKey(server, skey) == 0
    assert seen == sorted(seen) and len(set(seen)) == 6 and 0 not in seen


def test_destroyed_handle_is_invalid_and_its_session_ended(conn: InProcessConnection, card: CardData) -> None:
    server = server_context()
    skey, ckey = handshake(server, card)
    scp = ski_state(server).handles[skey].scp  # type: ignore[union-attr]
    assert set(conn.card.channels) == {0, 1} and conn.card.channels[1].session is not None
    assert ski.CardDestroyKey(card, ckey) == 0
    assert ski.CardDestroyKey(server, skey) == 0
    assert conn.card.channels[1].session is None  # the card's session ended with the handle
    assert scp.state is ChannelState.CLOSED  # host session keys dropped
    assert ski.CardDestroyKey(card, ckey) == C.SCARD_E_INVALID_HANDLE
    assert (
        encrypt(server, skey, CSF_AUTHENTICATE, bytes(CardAuthenticate(0, 1, b"123456")))[0] == C.SCARD_E_INVALID_HANDLE
    )
    assert process(card, ckey, CSF_AUTHENTICATE, [CardEncryptedData(b"x", 1)])[0] in (
        C.SCARD_E_INVALID_HANDLE,
        C.SCARD_E_INVALID_PARAMETER,
    )
    size = Out[int]()
    assert ski.CardGetKeyProperty(card, ckey, "BlockLength", None, 0, size, 0) == C.SCARD_E_INVALID_HANDLE
    assert ski.CardGetKeyProperty(card, 0, "BlockLength", None, 0, size, 0) == C.SCARD_E_INVALID_HANDLE
    # the next handshake of the context uses the same channel: no MANAGE CHANNEL, no SELECT
    sent = len(conn.sent)
    handshake(server, card)
    assert [apdu[1] for apdu in conn.sent[sent:]] == [0x50, 0x82]
    assert CardDeleteContext(card) == 0
    assert set(conn.card.channels) == {0}  # CardDeleteContext closed it


@pytest.mark.parametrize("event", ["remove", "reset"])
def test_card_removal_and_reset_end_the_handle(conn: InProcessConnection, card: CardData, event: str) -> None:
    server = server_context()
    skey, ckey = handshake(server, card)
    _, blobs = encrypt(server, skey, CSF_AUTHENTICATE, bytes(CardAuthenticate(0, 1, b"123456")))
    getattr(conn, event)()
    expected = C.SCARD_W_REMOVED_CARD if event == "remove" else C.SCARD_W_RESET_CARD
    assert process(card, ckey, CSF_AUTHENTICATE, blobs)[0] == expected
    if event == "remove":
        conn.insert()
    else:
        conn.reconnect()
    size = Out[int]()
    assert ski.CardGetKeyProperty(card, ckey, "BlockLength", None, 0, size, 0) == expected
    assert process(card, ckey, CSF_AUTHENTICATE, blobs)[0] == expected
    assert not ski_state(card).handles


def test_delete_context_wipes_every_handle(card: CardData) -> None:
    server = server_context()
    skey, _ = handshake(server, card)
    scp = ski_state(server).handles[skey].scp  # type: ignore[union-attr]
    assert CardDeleteContext(server) == 0
    assert scp.state is ChannelState.CLOSED
    assert CardDeleteContext(card) == 0


# -- tampering ----------------------------------------------------------------------------------------
def test_flipped_bit_is_refused_by_the_card_and_changes_nothing(conn: InProcessConnection, card: CardData) -> None:
    server = server_context()
    skey, ckey = handshake(server, card)
    key = ec.generate_private_key(ec.SECP256R1())
    _, blobs = encrypt(server, skey, CSF_IMPORT_KEYPAIR, import_struct(INDEX_9D, key))
    blob = bytearray(blobs[0].pbEncryptedData or b"")
    blob[20] ^= 0x04  # inside the encrypted key data
    code, _ = process(card, ckey, CSF_IMPORT_KEYPAIR, [CardEncryptedData(blob, len(blob))])
    assert code == C.SCARD_W_SECURITY_VIOLATION
    assert slot_public(conn) is None
    assert process(card, ckey, CSF_IMPORT_KEYPAIR, blobs)[0] == C.SCARD_E_INVALID_HANDLE  # session ended


def test_tampered_header_is_refused_before_sending(conn: InProcessConnection, card: CardData) -> None:
    server = server_context()
    skey, ckey = handshake(server, card)
    _, blobs = encrypt(server, skey, CSF_AUTHENTICATE, bytes(CardAuthenticate(0, 1, b"123456")))
    sent = len(conn.sent)
    for pos in (0, 1, 2, 3, 4, 5, 7):
        blob = bytearray(blobs[0].pbEncryptedData or b"")
        blob[pos] ^= 0x01
        tampered = [CardEncryptedData(blob, len(blob)), blobs[1]]
        assert process(card, ckey, CSF_AUTHENTICATE, tampered)[0] == C.SCARD_E_INVALID_PARAMETER, pos
    assert process(card, ckey, CSF_CHANGE_AUTHENTICATOR, blobs)[0] == C.SCARD_E_INVALID_PARAMETER  # wrong function
    assert process(card, ckey, CSF_AUTHENTICATE, blobs[1:])[0] == C.SCARD_E_INVALID_PARAMETER  # incomplete set
    assert len(conn.sent) == sent
    assert process(card, ckey, CSF_AUTHENTICATE, blobs)[0] == 0  # the session is intact


# -- parameter rules ------------------------------------------------------------------------------------
def test_no_card_mode_filter(card: CardData) -> None:
    server = server_context()
    assert ski.CardImportSessionKey(server, 0, None, "KeyDataBlob", "AES", Out[int](), b"", 0, 1) == (
        C.SCARD_E_INVALID_PARAMETER
    )
    assert ski.MDEncryptData(card, 1, CSF_AUTHENTICATE, b"", 0, 0, Out(), Out()) == C.SCARD_E_INVALID_PARAMETER
    assert ski.MDImportSessionKey(card, "KeyDataBlob", "AES", Out[int](), b"", 0) == C.SCARD_E_INVALID_PARAMETER


def test_get_shared_key_handle_parameters(card: CardData) -> None:
    server = server_context()
    assert ski.CardGetSharedKeyHandle(server, None, 0, Out(), Out(), None) == C.SCARD_E_INVALID_PARAMETER
    assert ski.CardGetSharedKeyHandle(server, None, 0, None, None, Out()) == C.SCARD_E_INVALID_PARAMETER
    assert ski.CardGetSharedKeyHandle(server, HELLO, 20, Out(), Out(), Out()) == C.SCARD_E_INVALID_PARAMETER
    unconfigured = CardData()
    assert CardAcquireContext(unconfigured, CARD_SECURE_KEY_INJECTION_NO_CARD_MODE) == 0
    assert ski.CardGetSharedKeyHandle(unconfigured, None, 0, Out(), Out(), Out()) == C.SCARD_E_UNSUPPORTED_FEATURE


def test_md_encrypt_data_parameters(card: CardData) -> None:
    server = server_context()
    skey, ckey = handshake(server, card)
    good = bytes(CardAuthenticate(0, 1, b"123456"))
    assert encrypt(server, skey, "Import Key", good)[0] == C.SCARD_E_INVALID_PARAMETER
    items, count = Out[list[CardEncryptedData]](), Out[int]()
    assert ski.MDEncryptData(server, skey, CSF_AUTHENTICATE, good, len(good), 1, items, count) == (
        C.SCARD_E_INVALID_PARAMETER
    )
    assert ski.MDEncryptData(server, skey, CSF_AUTHENTICATE, good, len(good), 0, None, count) == (
        C.SCARD_E_INVALID_PARAMETER
    )
    assert encrypt(server, skey, CSF_AUTHENTICATE, good[:-1])[0] == C.SCARD_E_INVALID_PARAMETER
    assert encrypt(server, skey, CSF_AUTHENTICATE, struct.pack("<I", 6) + good[4:])[0] == C.ERROR_REVISION_MISMATCH
    assert encrypt(server, skey, CSF_AUTHENTICATE, bytes(CardAuthenticate(0x10000000, 1, b"1")))[0] == (
        C.SCARD_E_UNSUPPORTED_FEATURE
    )
    assert encrypt(server, skey, CSF_AUTHENTICATE, bytes(CardAuthenticate(0, 2, b"1")))[0] == (
        C.SCARD_E_INVALID_PARAMETER
    )
    key = ec.generate_private_key(ec.SECP256R1())
    assert encrypt(server, skey, CSF_IMPORT_KEYPAIR, import_struct(24, key))[0] == C.SCARD_E_NO_KEY_CONTAINER
    assert encrypt(server, skey, CSF_IMPORT_KEYPAIR, import_struct(2, key, pin_id=5))[0] == (
        C.SCARD_E_INVALID_PARAMETER
    )
    p521 = import_struct(2, ec.generate_private_key(ec.SECP521R1()))
    assert encrypt(server, skey, CSF_IMPORT_KEYPAIR, p521)[0] == C.SCARD_E_UNSUPPORTED_FEATURE
    change = CardChangeAuthenticator(0x02, 1, b"123456", 1, b"123456789")  # new PIN too long
    assert encrypt(server, skey, CSF_CHANGE_AUTHENTICATOR, bytes(change))[0] == C.SCARD_E_INVALID_PARAMETER
    # refused requests did not move the MAC chain: the session still works
    code, blobs = encrypt(server, skey, CSF_AUTHENTICATE, good)
    assert code == 0
    assert process(card, ckey, CSF_AUTHENTICATE, blobs) == (0, struct.pack("<III", 7, 0, 3))


def test_process_encrypted_data_checks_the_output_buffer_first(conn: InProcessConnection, card: CardData) -> None:
    server = server_context()
    skey, ckey = handshake(server, card)
    _, blobs = encrypt(server, skey, CSF_AUTHENTICATE, bytes(CardAuthenticate(0, 1, b"123456")))
    sent, size = len(conn.sent), Out[int]()
    code = ski.CardProcessEncryptedData(card, ckey, CSF_AUTHENTICATE, blobs, 2, bytearray(4), 4, size, 0)
    assert (code, size.value, len(conn.sent)) == (C.ERROR_INSUFFICIENT_BUFFER, 12, sent)
    assert ski.CardProcessEncryptedData(card, ckey, CSF_AUTHENTICATE, blobs, 2, None, 0, size, 1) == (
        C.SCARD_E_INVALID_PARAMETER
    )
    assert ski.CardProcessEncryptedData(card, ckey, CSF_AUTHENTICATE, blobs, 2, None, 0, size, 0) == 0
    assert size.value == 12


def test_key_and_algorithm_properties(card: CardData) -> None:
    server = server_context()
    skey, ckey = handshake(server, card)
    for cd, hkey in ((server, skey), (card, ckey)):
        buf, size = bytearray(4), Out[int]()
        assert ski.CardGetKeyProperty(cd, hkey, "BlockLength", buf, 4, size, 0) == 0
        assert (bytes(buf), size.value) == (struct.pack("<I", 16), 4)
        assert ski.CardGetKeyProperty(cd, hkey, "ChainingMode", None, 0, size, 0) == 0 and size.value == 32
        assert ski.CardGetKeyProperty(cd, hkey, "ChainingMode", bytearray(8), 8, size, 0) == C.ERROR_INSUFFICIENT_BUFFER
        assert ski.CardGetKeyProperty(cd, hkey, "BlockLength", buf, 4, size, 1) == C.SCARD_E_INVALID_PARAMETER
        assert ski.CardGetKeyProperty(cd, hkey, "Color", buf, 4, size, 0) == C.SCARD_E_INVALID_PARAMETER
        cbc = "ChainingModeCBC".encode("utf-16-le")
        assert ski.CardSetKeyProperty(cd, hkey, "ChainingMode", cbc, len(cbc), 0) == 0
        ecb = "ChainingModeECB".encode("utf-16-le")
        assert ski.CardSetKeyProperty(cd, hkey, "ChainingMode", ecb, len(ecb), 0) == C.SCARD_E_INVALID_PARAMETER
        assert ski.CardSetKeyProperty(cd, hkey, "IV", bytes(16), 16, 0) == 0
        assert ski.CardSetKeyProperty(cd, hkey, "IV", bytes(8), 8, 0) == C.SCARD_E_INVALID_PARAMETER
        assert ski.CardSetKeyProperty(cd, hkey, "BlockLength", bytes(4), 4, 0) == C.SCARD_E_INVALID_PARAMETER
    buf, size = bytearray(20), Out[int]()
    assert ski.CardGetAlgorithmProperty(server, "AES", "Key Sizes", buf, 20, size, 0) == 0
    assert struct.unpack("<5I", buf) == (1, 128, 128, 256, 64)
    assert ski.CardGetAlgorithmProperty(card, "AES", "Key Sizes", None, 0, size, 0) == 0 and size.value == 20
    assert ski.CardGetAlgorithmProperty(card, "AES", "Key Sizes", bytearray(4), 4, size, 0) == (
        C.ERROR_INSUFFICIENT_BUFFER
    )
    assert ski.CardGetAlgorithmProperty(card, "3DES", "Key Sizes", None, 0, size, 0) == C.SCARD_E_UNSUPPORTED_FEATURE
    assert ski.CardGetAlgorithmProperty(card, "RC4", "Key Sizes", None, 0, size, 0) == C.SCARD_E_INVALID_PARAMETER
    assert ski.CardGetAlgorithmProperty(card, "AES", "Block", None, 0, size, 0) == C.SCARD_E_INVALID_PARAMETER
    assert ski.CardGetAlgorithmProperty(card, "AES", "Key Sizes", None, 0, size, 2) == C.SCARD_E_INVALID_PARAMETER


def test_session_key_import_is_checked_then_unsupported(card: CardData) -> None:
    server = server_context()
    blob = struct.pack("<III", 0x4D42444B, 1, 16) + bytes(16)
    assert ski.MDImportSessionKey(server, "KeyDataBlob", "AES", Out[int](), blob, len(blob)) == (
        C.SCARD_E_UNSUPPORTED_FEATURE
    )
    assert ski.MDImportSessionKey(server, "KeyDataBlob", "AES", Out[int](), blob[:-1], len(blob) - 1) == (
        C.SCARD_E_INVALID_PARAMETER
    )
    assert ski.MDImportSessionKey(server, "OpaqueBlob", "AES", Out[int](), blob, len(blob)) == (
        C.SCARD_E_INVALID_PARAMETER
    )
    assert ski.CardImportSessionKey(card, 0, None, "KeyDataBlob", "AES", Out[int](), blob, len(blob), 0x2) == (
        C.SCARD_E_UNSUPPORTED_FEATURE
    )
    assert ski.CardImportSessionKey(card, 0, None, "KeyDataBlob", "AES", Out[int](), blob, len(blob), 0x3) == (
        C.SCARD_E_INVALID_PARAMETER
    )
    assert ski.CardImportSessionKey(card, 0, None, "KeyDataBlob", "AES", None, blob, len(blob), 0x2) == (
        C.SCARD_E_INVALID_PARAMETER
    )


def test_conformance_rows_pass_on_the_virtual_card(conn: InProcessConnection) -> None:
    from minidriver.cardmod.checks import run_checks
    from minidriver.cardmod.checks_ski import CHECKS

    def make() -> CardData:
        return CardData(
            pbAtr=conn.atr, cbAtr=len(conn.atr), pwszCardName="vcard", hSCardCtx=1, hScard=1, connection=conn
        )

    results = run_checks(CHECKS, make, destructive=True)
    assert len(results) == len(CHECKS) >= 50
    assert [r for r in results if not r.ok or r.skipped] == []


def test_cardcf_moves_and_the_container_appears(card: CardData) -> None:
    """After an SKI import / PIN change the CSP's caches see it, as after the core functions."""
    from minidriver.cardmod import CardGetContainerInfo, CardReadFile
    from minidriver.cardmod.structs import CardCacheFile, ContainerInfo

    def cardcf() -> CardCacheFile:
        data, size = Out[bytearray](), Out[int]()
        assert CardReadFile(card, None, "cardcf", 0, data, size) == 0
        return CardCacheFile.from_bytes(bytes(data.value or b""))

    assert CardGetContainerInfo(card, INDEX_9D, 0, ContainerInfo()) == C.SCARD_E_NO_KEY_CONTAINER
    before = cardcf()
    key = ec.generate_private_key(ec.SECP256R1())
    with LocalInjector(card, KEYS) as injector:
        injector.import_key(INDEX_9D, key)
        after_import = cardcf()
        injector.change_pin(b"123456", b"13572468")
    after_change = cardcf()
    assert after_import.wContainersFreshness == before.wContainersFreshness + 1
    assert after_change.bPinsFreshness == after_import.bPinsFreshness + 1
    info = ContainerInfo()
    assert CardGetContainerInfo(card, INDEX_9D, 0, info) == 0
    blob = bytes(info.pbKeyExPublicKey or info.pbSigPublicKey or b"")
    numbers = key.public_key().public_numbers()
    assert blob[8:] == numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
