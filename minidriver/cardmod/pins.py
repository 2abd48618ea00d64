"""PINs and authentication (minidriver-spec.md §3.3) over the PIV PIN, PUK and management key.

The PIN ids (user = PIV PIN, admin = management key 9B by challenge/response, 3 = the PIV PIN
for "PIN always" keys, 4 = PUK) and their PIN_INFO: :mod:`.pin_roles`.

Session PINs (CARD_AUTHENTICATE_GENERATE_SESSION_PIN / _SESSION_PIN) are not supported: a PIV
card has nothing a session PIN could be checked against without being "a mere encoding of the
PIN" (§3.3), so they answer SCARD_E_UNSUPPORTED_FEATURE and CP_CARD_PIN_STRENGTH_VERIFY reports
CARD_PIN_STRENGTH_PLAINTEXT only. Management-key changes use the YubiKey SET MANAGEMENT KEY (FF).
"""

from __future__ import annotations

from ..iso7816 import SW, ApduError
from ..piv import MGMT_KEY_LEN, MGMT_REF, Algorithm, InvalidPinError, PinBlockedError, PivSession
from ._core import alloc_copy, apdu_error, buffer, out_required
from .binding import session
from .codes import MinidriverError, ScardCode
from .context import context_of, entry
from .pin_roles import (
    CARD_AUTHENTICATE_GENERATE_SESSION_PIN,
    CARD_AUTHENTICATE_PIN_CHALLENGE_RESPONSE,
    CARD_AUTHENTICATE_PIN_PIN,
    CARD_AUTHENTICATE_SESSION_PIN,
    CARD_PIN_SILENT_CONTEXT,
    LIST_PINS,
    PIN_BIT_SIGN,
    PIN_CHANGE_FLAG_CHANGEPIN,
    PIN_CHANGE_FLAG_UNBLOCK,
    PIN_INFO,
    USER_PINS,
    WSZ_ADMIN,
    WSZ_USER,
    pin_info,
)
from .piv_map import PIN_PUK, PIN_SIGN, core_state
from .types import CARD_DATA_VALUE_UNKNOWN, CardData, CardDataVersion, Out, PinId, PinSet

__all__ = [
    "LIST_PINS",
    "CardAuthenticateChallenge",
    "CardAuthenticateEx",
    "CardAuthenticatePin",
    "CardChangeAuthenticator",
    "CardChangeAuthenticatorEx",
    "CardDeauthenticate",
    "CardDeauthenticateEx",
    "CardGetChallenge",
    "CardGetChallengeEx",
    "CardUnblockPin",
    "pin_info",
]


def _set_attempts(box: Out[int] | None, value: int) -> None:
    if isinstance(box, Out):
        box.value = value


def _verify_failed(exc: ApduError, box: Out[int] | None, what: str) -> MinidriverError:
    """63Cx -> SCARD_W_WRONG_CHV with x tries left; 6983 -> SCARD_W_CHV_BLOCKED (§6)."""
    if isinstance(exc, PinBlockedError) or exc.sw == SW.AUTH_METHOD_BLOCKED:
        _set_attempts(box, 0)
        return MinidriverError(ScardCode.SCARD_W_CHV_BLOCKED, f"{what} is blocked")
    if isinstance(exc, InvalidPinError):
        _set_attempts(box, exc.attempts_remaining)
        return MinidriverError(ScardCode.SCARD_W_WRONG_CHV, f"wrong {what}, {exc.attempts_remaining} tries left")
    return apdu_error(exc, what, SW_6A80=ScardCode.SCARD_E_INVALID_CHV)


def _secret(data: bytes | None, size: int, what: str) -> bytes:
    value = buffer(data, size, what)
    if not value:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"{what} is empty")
    return value


def _wrong_length(piv: PivSession, box: Out[int] | None, what: str) -> MinidriverError:
    """A PIN longer than PIV's 8 bytes cannot be right: SCARD_W_WRONG_CHV without spending a try."""
    try:
        _set_attempts(box, piv.get_pin_attempts() if what == "PIN" else CARD_DATA_VALUE_UNKNOWN)
    except ApduError:
        _set_attempts(box, CARD_DATA_VALUE_UNKNOWN)
    return MinidriverError(ScardCode.SCARD_W_WRONG_CHV, f"a PIV {what} has at most 8 bytes")


def _verify_pin(card_data: CardData, pin: bytes, box: Out[int] | None, pin_id: int) -> None:
    piv = session(card_data)
    ctx = context_of(card_data)
    if len(pin) > 8:
        raise _wrong_length(piv, box, "PIN")
    ctx.authenticated &= ~(PinSet.USER | PIN_BIT_SIGN)
    try:
        piv.verify_pin(pin)
    except ApduError as exc:
        raise _verify_failed(exc, box, "PIN") from None
    ctx.authenticated |= PinSet.USER | (PIN_BIT_SIGN if pin_id == PIN_SIGN else 0)


# -- management key (ROLE_ADMIN) --------------------------------------------------------------
def _mgmt_algorithm(piv: PivSession) -> int:
    """The 9B key's algorithm: YubiKey metadata, else PIV's default 3DES."""
    try:
        meta = piv.get_slot_metadata(MGMT_REF)
    except ApduError:
        meta = None
    return meta.algorithm if meta is not None and meta.algorithm in MGMT_KEY_LEN else int(Algorithm.TDES)


def _challenge(card_data: CardData, ppb: Out[bytearray] | None, pcb: Out[int] | None) -> None:
    out_required(ppb, pcb)
    assert ppb is not None and pcb is not None
    piv = session(card_data)
    alg = _mgmt_algorithm(piv)
    try:
        nonce = piv.get_witness(alg)
    except ApduError as exc:
        raise apdu_error(exc, "GENERAL AUTHENTICATE (challenge)") from None
    core_state(card_data)[1].pending_challenge = alg
    ppb.value = alloc_copy(card_data, nonce)
    pcb.value = len(nonce)


def _respond(card_data: CardData, response: bytes, box: Out[int] | None) -> int:
    """Complete the 9B challenge/response; returns the algorithm. No pending challenge, or a
    wrong response -> SCARD_W_WRONG_CHV (the management key has no retry counter: attempts are
    CARD_DATA_VALUE_UNKNOWN)."""
    piv = session(card_data)
    ctx = context_of(card_data)
    state = core_state(card_data)[1]
    alg, state.pending_challenge = state.pending_challenge, None
    ctx.authenticated &= ~PinSet.ADMIN
    if alg is None:
        _set_attempts(box, CARD_DATA_VALUE_UNKNOWN)
        raise MinidriverError(ScardCode.SCARD_W_WRONG_CHV, "no challenge pending (CardGetChallenge first)")
    try:
        piv.respond_witness(alg, response)
    except ApduError as exc:
        if exc.sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            _set_attempts(box, CARD_DATA_VALUE_UNKNOWN)
            raise MinidriverError(ScardCode.SCARD_W_WRONG_CHV, "wrong management key response") from None
        raise apdu_error(exc, "GENERAL AUTHENTICATE (response)") from None
    ctx.authenticated |= PinSet.ADMIN
    return alg


def _change_mgmt_key(card_data: CardData, response: bytes, new_key: bytes, box: Out[int] | None) -> None:
    alg = _respond(card_data, response, box)
    if len(new_key) != MGMT_KEY_LEN[Algorithm(alg)]:
        raise MinidriverError(
            ScardCode.SCARD_E_INVALID_CHV, f"a {Algorithm(alg).name} key has {MGMT_KEY_LEN[Algorithm(alg)]} bytes"
        )
    try:
        session(card_data).set_management_key(alg, new_key)
    except ApduError as exc:
        raise apdu_error(exc, "SET MANAGEMENT KEY") from None
    _pins_changed(card_data)


def _pins_changed(card_data: CardData) -> None:
    from .vfs import card_changed

    card_changed(card_data, pins=True)


# -- entry points -----------------------------------------------------------------------------
def _user_role(pwszUserId: str | None, allowed: tuple[str, ...]) -> str:
    if pwszUserId not in allowed:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"user id must be one of {allowed}")
    assert pwszUserId is not None
    return pwszUserId


@entry(since=CardDataVersion.FOUR)
def CardAuthenticatePin(
    pCardData: CardData, pwszUserId: str | None, pbPin: bytes | None, cbPin: int, pcAttemptsRemaining: Out[int] | None
) -> None:
    """VERIFY the PIV PIN ("user"); "admin" takes the response to CardGetChallenge."""
    role = _user_role(pwszUserId, (WSZ_USER, WSZ_ADMIN))
    secret = _secret(pbPin, cbPin, "pbPin")
    if role == WSZ_ADMIN:
        _respond(pCardData, secret, pcAttemptsRemaining)
    else:
        _verify_pin(pCardData, secret, pcAttemptsRemaining, PinId.ROLE_USER)


@entry(since=CardDataVersion.SIX)
def CardAuthenticateEx(
    pCardData: CardData,
    PinId_: int,
    dwFlags: int,
    pbPinData: bytes | None,
    cbPinData: int,
    ppbSessionPin: Out[bytearray] | None,
    pcbSessionPin: Out[int] | None,
    pcAttemptsRemaining: Out[int] | None,
) -> None:
    """Authenticate a PIN id: user/sign PIN by VERIFY, admin by challenge response (§3.3)."""
    if PinId_ not in PIN_INFO or PinId_ == PinId.ROLE_EVERYONE:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"PIN id {PinId_!r}")
    known = CARD_AUTHENTICATE_GENERATE_SESSION_PIN | CARD_AUTHENTICATE_SESSION_PIN | CARD_PIN_SILENT_CONTEXT
    if not isinstance(dwFlags, int) or dwFlags & ~known:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"dwFlags {dwFlags!r}")
    generate, use_session = dwFlags & CARD_AUTHENTICATE_GENERATE_SESSION_PIN, dwFlags & CARD_AUTHENTICATE_SESSION_PIN
    if generate and use_session:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "both session PIN flags")
    if generate:
        out_required(ppbSessionPin, pcbSessionPin)
    secret = _secret(pbPinData, cbPinData, "pbPinData")
    if generate or use_session:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "no session PINs on a PIV card")
    if PinId_ == PIN_PUK:
        raise MinidriverError(
            ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "the PUK only unblocks (PIV cannot verify it alone)"
        )
    if PinId_ == PinId.ROLE_ADMIN:
        _respond(pCardData, secret, pcAttemptsRemaining)
    else:
        _verify_pin(pCardData, secret, pcAttemptsRemaining, PinId_)


@entry(since=CardDataVersion.FOUR)
def CardGetChallenge(
    pCardData: CardData, ppbChallengeData: Out[bytearray] | None, pcbChallengeData: Out[int] | None
) -> None:
    """The 9B key's challenge (8 bytes for 3DES, 16 for AES), allocated with pfnCspAlloc."""
    _challenge(pCardData, ppbChallengeData, pcbChallengeData)


@entry(since=CardDataVersion.SIX)
def CardGetChallengeEx(
    pCardData: CardData,
    PinId_: int,
    ppbChallengeData: Out[bytearray] | None,
    pcbChallengeData: Out[int] | None,
    dwFlags: int,
) -> None:
    if PinId_ != PinId.ROLE_ADMIN:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "only ROLE_ADMIN is a challenge/response PIN")
    if dwFlags != 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwFlags must be 0")
    _challenge(pCardData, ppbChallengeData, pcbChallengeData)


@entry(since=CardDataVersion.FOUR)
def CardAuthenticateChallenge(
    pCardData: CardData, pbResponseData: bytes | None, cbResponseData: int, pcAttemptsRemaining: Out[int] | None
) -> None:
    _respond(pCardData, _secret(pbResponseData, cbResponseData, "pbResponseData"), pcAttemptsRemaining)


def _unblock(card_data: CardData, puk: bytes, new_pin: bytes, box: Out[int] | None) -> None:
    piv = session(card_data)
    ctx = context_of(card_data)
    if len(new_pin) > 8:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_CHV, "a PIV PIN has at most 8 bytes")
    if len(puk) > 8:
        raise _wrong_length(piv, box, "PUK")
    ctx.authenticated &= ~(PinSet.USER | PIN_BIT_SIGN)
    try:
        piv.unblock_pin(puk, new_pin)
    except ApduError as exc:
        raise _verify_failed(exc, box, "PUK") from None
    _pins_changed(card_data)


def _change_pin(card_data: CardData, old: bytes, new: bytes, box: Out[int] | None, *, puk: bool = False) -> None:
    piv = session(card_data)
    ctx = context_of(card_data)
    what = "PUK" if puk else "PIN"
    if len(new) > 8:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_CHV, f"a PIV {what} has at most 8 bytes")
    if len(old) > 8:
        raise _wrong_length(piv, box, what)
    if not puk:
        ctx.authenticated &= ~(PinSet.USER | PIN_BIT_SIGN)
    try:
        (piv.change_puk if puk else piv.change_pin)(old, new)
    except ApduError as exc:
        raise _verify_failed(exc, box, what) from None
    if not puk:
        ctx.authenticated |= PinSet.USER  # CHANGE REFERENCE DATA leaves the PIN verified
    _pins_changed(card_data)


def _no_retry_change(cRetryCount: int) -> None:
    if cRetryCount != 0:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "a PIV card cannot change retry limits alone")


@entry(since=CardDataVersion.FOUR)
def CardUnblockPin(
    pCardData: CardData,
    pwszUserId: str | None,
    pbAuthenticationData: bytes | None,
    cbAuthenticationData: int,
    pbNewPinData: bytes | None,
    cbNewPinData: int,
    cRetryCount: int,
    dwFlags: int,
) -> None:
    """RESET RETRY COUNTER with the PUK (CARD_AUTHENTICATE_PIN_PIN); PIV cannot unblock with the
    management key (CARD_AUTHENTICATE_PIN_CHALLENGE_RESPONSE -> SCARD_E_UNSUPPORTED_FEATURE)."""
    _user_role(pwszUserId, (WSZ_USER,))
    auth = _secret(pbAuthenticationData, cbAuthenticationData, "pbAuthenticationData")
    new = _secret(pbNewPinData, cbNewPinData, "pbNewPinData")
    if dwFlags not in (CARD_AUTHENTICATE_PIN_PIN, CARD_AUTHENTICATE_PIN_CHALLENGE_RESPONSE):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"dwFlags {dwFlags!r}")
    _no_retry_change(cRetryCount)
    if dwFlags == CARD_AUTHENTICATE_PIN_CHALLENGE_RESPONSE:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "PIV unblocks the PIN with the PUK only")
    _unblock(pCardData, auth, new, None)


@entry(since=CardDataVersion.FOUR)
def CardChangeAuthenticator(
    pCardData: CardData,
    pwszUserId: str | None,
    pbCurrentAuthenticator: bytes | None,
    cbCurrentAuthenticator: int,
    pbNewAuthenticator: bytes | None,
    cbNewAuthenticator: int,
    cRetryCount: int,
    dwFlags: int,
    pcAttemptsRemaining: Out[int] | None,
) -> None:
    """ "user" + CARD_AUTHENTICATE_PIN_PIN: CHANGE REFERENCE DATA; "admin" +
    CARD_AUTHENTICATE_PIN_CHALLENGE_RESPONSE: current = response, new = the new 9B key."""
    role = _user_role(pwszUserId, (WSZ_USER, WSZ_ADMIN))
    current = _secret(pbCurrentAuthenticator, cbCurrentAuthenticator, "pbCurrentAuthenticator")
    new = _secret(pbNewAuthenticator, cbNewAuthenticator, "pbNewAuthenticator")
    expected = CARD_AUTHENTICATE_PIN_PIN if role == WSZ_USER else CARD_AUTHENTICATE_PIN_CHALLENGE_RESPONSE
    if dwFlags != expected:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"dwFlags {dwFlags!r} for {role!r}")
    _no_retry_change(cRetryCount)
    if role == WSZ_USER:
        _change_pin(pCardData, current, new, pcAttemptsRemaining)
    else:
        _change_mgmt_key(pCardData, current, new, pcAttemptsRemaining)


@entry(since=CardDataVersion.SIX)
def CardChangeAuthenticatorEx(
    pCardData: CardData,
    dwFlags: int,
    dwAuthenticatingPinId: int,
    pbAuthenticatingPinData: bytes | None,
    cbAuthenticatingPinData: int,
    dwTargetPinId: int,
    pbTargetData: bytes | None,
    cbTargetData: int,
    cRetryCount: int,
    pcAttemptsRemaining: Out[int] | None,
) -> None:
    """PIN_CHANGE_FLAG_CHANGEPIN (same PIN id: PIN, PUK or 9B key) or PIN_CHANGE_FLAG_UNBLOCK
    (PUK -> user PIN); either may carry CARD_PIN_SILENT_CONTEXT."""
    op = dwFlags & ~CARD_PIN_SILENT_CONTEXT if isinstance(dwFlags, int) else None
    if op not in (PIN_CHANGE_FLAG_UNBLOCK, PIN_CHANGE_FLAG_CHANGEPIN):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"dwFlags {dwFlags!r}")
    for pin_id in (dwAuthenticatingPinId, dwTargetPinId):
        if pin_id not in PIN_INFO or pin_id == PinId.ROLE_EVERYONE:
            raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"PIN id {pin_id!r}")
    auth = _secret(pbAuthenticatingPinData, cbAuthenticatingPinData, "pbAuthenticatingPinData")
    target = _secret(pbTargetData, cbTargetData, "pbTargetData")
    if op == PIN_CHANGE_FLAG_CHANGEPIN:
        if dwAuthenticatingPinId != dwTargetPinId:
            raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "a change needs the same PIN id twice")
        _no_retry_change(cRetryCount)
        if dwTargetPinId == PinId.ROLE_ADMIN:
            _change_mgmt_key(pCardData, auth, target, pcAttemptsRemaining)
        else:
            _change_pin(pCardData, auth, target, pcAttemptsRemaining, puk=dwTargetPinId == PIN_PUK)
        return
    if dwTargetPinId not in USER_PINS or dwAuthenticatingPinId not in (PIN_PUK, PinId.ROLE_ADMIN):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "unblock: the PUK unblocks the user PIN")
    _no_retry_change(cRetryCount)
    if dwAuthenticatingPinId == PinId.ROLE_ADMIN:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "PIV unblocks the PIN with the PUK only")
    _unblock(pCardData, auth, target, pcAttemptsRemaining)


def _deauthenticate(card_data: CardData, pins: int) -> None:
    piv = session(card_data)
    ctx = context_of(card_data)
    if pins & (PinSet.USER | PIN_BIT_SIGN):
        try:
            piv.unverify_pin()  # SP 800-73-4 §3.2.1: VERIFY P1=FF resets the PIN's status
        except ApduError as exc:
            raise MinidriverError(
                ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"card keeps the PIN verified ({exc})"
            ) from None
        ctx.authenticated &= ~(PinSet.USER | PIN_BIT_SIGN)
    if pins & PinSet.ADMIN and ctx.authenticated & PinSet.ADMIN:
        # PIV has no command that ends a management-key authentication: the caller resets the card
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "only a card reset ends the 9B authentication")


@entry(since=CardDataVersion.FOUR)
def CardDeauthenticate(pCardData: CardData, pwszUserId: str | None, dwFlags: int) -> None:
    role = _user_role(pwszUserId, (WSZ_USER, WSZ_ADMIN))
    if dwFlags != 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwFlags must be 0")
    _deauthenticate(pCardData, PinSet.USER if role == WSZ_USER else PinSet.ADMIN)


@entry(since=CardDataVersion.SIX)
def CardDeauthenticateEx(pCardData: CardData, PinId_: int, dwFlags: int) -> None:
    """``PinId`` is a PIN_SET (0xFF = all; the ROLE_EVERYONE bit is ignored)."""
    if dwFlags != 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwFlags must be 0")
    if not isinstance(PinId_, int) or not 0 <= PinId_ <= 0xFF:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"PIN set {PinId_!r}")
    _deauthenticate(pCardData, PinId_ & ~PinSet.EVERYONE)
