"""PINs over the PIV PIN, PUK and management key, in process (minidriver-spec.md §3.3, §6)."""

from __future__ import annotations

import pytest
from cardmod_support import acquired
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from incard import InProcessConnection

from minidriver.cardmod import (
    CardAuthenticateChallenge,
    CardAuthenticateEx,
    CardAuthenticatePin,
    CardChangeAuthenticator,
    CardChangeAuthenticatorEx,
    CardData,
    CardDeauthenticate,
    CardDeauthenticateEx,
    CardGetChallenge,
    CardUnblockPin,
    Minidriver,
    Out,
    PinError,
    ScardCode,
)
from minidriver.cardmod.binding import session
from minidriver.cardmod.types import CARD_DATA_VALUE_UNKNOWN
from minidriver.iso7816 import ApduError
from minidriver.piv import PivSession

PIN, PUK = b"123456", b"12345678"
MGMT = bytes.fromhex("010203040506070801020304050607080102030405060708")
WRONG, BLOCKED = ScardCode.SCARD_W_WRONG_CHV, ScardCode.SCARD_W_CHV_BLOCKED


@pytest.fixture
def card() -> InProcessConnection:
    return InProcessConnection()


def pin(cd: CardData, value: bytes) -> tuple[int, int | None]:
    attempts: Out[int] = Out()
    code = CardAuthenticatePin(cd, "user", value, len(value), attempts)
    return code, attempts.value


def state(cd: CardData) -> int:
    return Minidriver(card_data=cd).get_dword_property("Authenticated State")


def can_sign(cd: CardData) -> bool:
    try:
        session(cd).sign_raw(0x9A, 0x11, bytes(32))
    except ApduError as exc:
        assert exc.sw == 0x6982
        return False
    return True


def test_wrong_pin_counts_down_to_blocked_and_the_puk_unblocks(card: InProcessConnection) -> None:
    cd = acquired(card)
    assert [pin(cd, b"654321") for _ in range(3)] == [(WRONG, 2), (WRONG, 1), (WRONG, 0)]
    assert pin(cd, b"654321") == (BLOCKED, 0)
    assert pin(cd, PIN) == (BLOCKED, 0)
    assert CardUnblockPin(cd, "user", b"87654321", 8, PIN, 6, 0, 2) == WRONG
    assert CardUnblockPin(cd, "user", PUK, 8, b"24681357", 8, 0, 2) == 0
    assert state(cd) == 0  # unblocking leaves the PIN unverified
    assert pin(cd, b"24681357") == (0, None)
    assert state(cd) == 0x02 and can_sign(cd)


def test_a_pin_longer_than_8_bytes_spends_no_try(card: InProcessConnection) -> None:
    cd = acquired(card)
    assert pin(cd, b"123456789") == (WRONG, 3)
    assert pin(cd, PIN) == (0, None)


def test_change_pin_and_its_rules(card: InProcessConnection) -> None:
    cd = acquired(card)
    attempts: Out[int] = Out()
    assert CardChangeAuthenticator(cd, "user", b"000000", 6, b"11223344", 8, 0, 2, attempts) == WRONG
    assert attempts.value == 2
    # a new PIN the card refuses (5 digits) -> SCARD_E_INVALID_CHV, no try spent
    assert CardChangeAuthenticator(cd, "user", PIN, 6, b"12345", 5, 0, 2, attempts) == ScardCode.SCARD_E_INVALID_CHV
    assert CardChangeAuthenticator(cd, "user", PIN, 6, b"123456789", 9, 0, 2, None) == ScardCode.SCARD_E_INVALID_CHV
    assert CardChangeAuthenticator(cd, "user", PIN, 6, b"11223344", 8, 0, 2, attempts) == 0
    assert state(cd) & 0x02 and can_sign(cd)  # CHANGE REFERENCE DATA leaves the PIN verified
    assert pin(cd, PIN) == (WRONG, 2)
    assert pin(cd, b"11223344") == (0, None)


def test_change_puk_and_unblock_by_pin_ids(card: InProcessConnection) -> None:
    cd = acquired(card)
    assert CardChangeAuthenticatorEx(cd, 2, 4, PUK, 8, 4, b"87654321", 8, 0, None) == 0
    for _ in range(3):
        pin(cd, b"000000")
    attempts: Out[int] = Out()
    assert CardChangeAuthenticatorEx(cd, 1, 4, PUK, 8, 1, PIN, 6, 0, attempts) == WRONG
    assert attempts.value == 2
    assert CardChangeAuthenticatorEx(cd, 1 | 0x40, 4, b"87654321", 8, 1, PIN, 6, 0, attempts) == 0
    assert pin(cd, PIN) == (0, None)
    # the management key cannot unblock a PIV PIN
    assert CardChangeAuthenticatorEx(cd, 1, 2, bytes(8), 8, 1, PIN, 6, 0, None) == ScardCode.SCARD_E_UNSUPPORTED_FEATURE


def response(cd: CardData, key: bytes = MGMT, aes: bool = False) -> bytes:
    challenge: Out[bytearray] = Out()
    size: Out[int] = Out()
    assert CardGetChallenge(cd, challenge, size) == 0
    assert size.value == (16 if aes else 8) == len(challenge.value or b"")
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES

    enc = Cipher(algorithms.AES(key) if aes else TripleDES(key), modes.ECB()).encryptor()
    return enc.update(bytes(challenge.value or b"")) + enc.finalize()


def test_admin_by_challenge_response(card: InProcessConnection) -> None:
    cd = acquired(card)
    attempts: Out[int] = Out()
    assert CardAuthenticateChallenge(cd, bytes(8), 8, attempts) == WRONG  # no challenge asked
    assert attempts.value == CARD_DATA_VALUE_UNKNOWN
    bad = bytes(b ^ 1 for b in response(cd))
    assert CardAuthenticateChallenge(cd, bad, 8, attempts) == WRONG
    good = response(cd)
    assert CardAuthenticateChallenge(cd, good, 8, attempts) == 0
    assert state(cd) == 0x04
    assert CardAuthenticateChallenge(cd, good, 8, attempts) == WRONG  # a response is good once
    # "admin" through CardAuthenticatePin / CardAuthenticateEx takes the response too
    assert CardAuthenticatePin(cd, "admin", response(cd), 8, None) == 0
    assert CardAuthenticateEx(cd, 2, 0, response(cd), 8, None, None, None) == 0
    # only a reset ends a 9B authentication on PIV
    assert CardDeauthenticate(cd, "admin", 0) == ScardCode.SCARD_E_UNSUPPORTED_FEATURE


def test_change_the_management_key(card: InProcessConnection) -> None:
    cd = acquired(card)
    new = bytes(range(24))
    assert (
        CardChangeAuthenticator(cd, "admin", response(cd), 8, new[:16], 16, 0, 1, None) == ScardCode.SCARD_E_INVALID_CHV
    )
    assert CardChangeAuthenticator(cd, "admin", response(cd), 8, new, 24, 0, 1, None) == 0
    assert CardAuthenticateChallenge(cd, response(cd, MGMT), 8, None) == WRONG
    assert CardAuthenticateChallenge(cd, response(cd, new), 8, None) == 0


def test_aes_management_key(card: InProcessConnection) -> None:
    piv = PivSession(card)
    piv.authenticate(MGMT)
    aes = bytes(range(16))
    piv.set_management_key(0x08, aes)
    cd = acquired(card)
    assert CardAuthenticateChallenge(cd, response(cd, aes, aes=True), 16, None) == 0


def test_sign_pin_and_session_pins(card: InProcessConnection) -> None:
    cd = acquired(card)
    outs: tuple[Out[bytearray], Out[int]] = (Out(), Out())
    assert CardAuthenticateEx(cd, 1, 0x10000000, PIN, 6, *outs, None) == ScardCode.SCARD_E_UNSUPPORTED_FEATURE
    assert CardAuthenticateEx(cd, 1, 0x20000000, PIN, 6, None, None, None) == ScardCode.SCARD_E_UNSUPPORTED_FEATURE
    assert CardAuthenticateEx(cd, 4, 0, PUK, 8, None, None, None) == ScardCode.SCARD_E_UNSUPPORTED_FEATURE
    assert state(cd) == 0
    assert CardAuthenticateEx(cd, 3, 0, PIN, 6, None, None, None) == 0
    assert state(cd) == 0x0A  # the sign PIN is the PIV PIN: user is verified as well


def test_deauthenticate_drops_the_pin_on_the_card(card: InProcessConnection) -> None:
    cd = acquired(card)
    assert pin(cd, PIN) == (0, None)
    assert can_sign(cd)
    assert CardDeauthenticateEx(cd, 0x01, 0) == 0  # ROLE_EVERYONE bit alone: nothing to do
    assert can_sign(cd)
    assert CardDeauthenticateEx(cd, 0xFF, 0) == 0
    assert state(cd) == 0 and not can_sign(cd)
    assert pin(cd, PIN) == (0, None)
    assert CardDeauthenticate(cd, "user", 0) == 0
    assert not can_sign(cd)


def test_facade_raises_pin_error_with_attempts(card: InProcessConnection) -> None:
    with Minidriver(card_data=acquired(card)) as m:
        with pytest.raises(PinError) as info:
            m.authenticate_pin("000000")
        assert info.value.code == WRONG and info.value.attempts_remaining == 2
        m.authenticate_pin("123456")
        m.authenticate_admin(MGMT)
        assert m.get_dword_property("Authenticated State") == 0x06
