"""Conformance rows for the PIN (§3.3) and file-system (§3.4) entry points; part of checks_core.

Rows that spend a PIN or PUK try first make sure at least two are left and then put the counter
back with the right value; only the rows that block the PIN are destructive.
"""

from __future__ import annotations

import struct
from typing import Any

from .binding import session
from .checks import CheckEnv, CheckSkipped
from .checks_core import INVALID, OK, UNSUPPORTED, admin_response, call, expect, index_where, login, prop, read, row
from .codes import ScardCode as C
from .structs import CardFileInfo, ContainerMapRecord
from .types import Out

WRONG, BLOCKED, VIOLATION = C.SCARD_W_WRONG_CHV, C.SCARD_W_CHV_BLOCKED, C.SCARD_W_SECURITY_VIOLATION
PIN_PIN, PIN_CR = 2, 1  # CARD_AUTHENTICATE_PIN_PIN / _CHALLENGE_RESPONSE


def wrong(secret: bytes) -> bytes:
    """A value of the same length that is surely not ``secret``."""
    return bytes(b ^ 0x01 for b in secret)


def pin_tries(env: CheckEnv) -> int:
    return session(env.card).get_pin_attempts()


def need_tries(env: CheckEnv) -> int:
    left = pin_tries(env)
    if left < 2:
        raise CheckSkipped(f"only {left} PIN tries left: not spending one")
    return left


def auth(env: CheckEnv, user: str | None, pin: bytes | None, attempts: Out[int] | None = None) -> int:
    return call(env, "CardAuthenticatePin", user, pin, len(pin or b""), attempts)


def auth_ex(env: CheckEnv, pin_id: int, flags: int, session_out: bool = False) -> int:
    outs: tuple[Out[Any] | None, Out[Any] | None] = (Out(), Out()) if session_out else (None, None)
    return call(env, "CardAuthenticateEx", pin_id, flags, env.pin, len(env.pin), *outs, Out())


def unblock(env: CheckEnv, user: str | None, puk: bytes | None, flags: int = PIN_PIN, retry: int = 0) -> int:
    return call(env, "CardUnblockPin", user, puk, len(puk or b""), env.pin, len(env.pin), retry, flags)


def change(
    env: CheckEnv, user: str, old: bytes, flags: int = PIN_PIN, retry: int = 0, attempts: Out[int] | None = None
) -> int:
    return call(env, "CardChangeAuthenticator", user, old, len(old), env.pin, len(env.pin), retry, flags, attempts)


def change_ex(env: CheckEnv, flags: int, auth_id: int, target_id: int) -> int:
    pin = env.pin
    return call(env, "CardChangeAuthenticatorEx", flags, auth_id, pin, len(pin), target_id, pin, len(pin), 0, Out())


def authenticated(env: CheckEnv) -> int:
    value: int = struct.unpack("<I", prop(env, "Authenticated State"))[0]
    return value


# -- CardAuthenticatePin / CardAuthenticateEx ---------------------------------------------------------
row("CardAuthenticatePin", "pwszUserId NULL", INVALID)(lambda env: auth(env, None, env.pin))
row("CardAuthenticatePin", "pwszUserId 'root'", INVALID)(lambda env: auth(env, "root", env.pin))
row("CardAuthenticatePin", "pbPin NULL", INVALID)(lambda env: auth(env, "user", None))
row("CardAuthenticatePin", "right PIN", OK)(lambda env: auth(env, "user", env.pin))


@row("CardAuthenticatePin", "wrong PIN: tries left", WRONG)
def _wrong_pin(env: CheckEnv) -> int:
    before = need_tries(env)
    attempts: Out[int] = Out()
    code = auth(env, "user", wrong(env.pin), attempts)
    login(env)  # a right PIN restores the counter
    expect(attempts.value == before - 1, f"pcAttemptsRemaining {attempts.value}, expected {before - 1}")
    return code


@row("CardAuthenticatePin", "blocked PIN (unblocked again with the PUK)", BLOCKED, destructive=True)
def _blocked(env: CheckEnv) -> int:
    for _ in range(pin_tries(env)):
        auth(env, "user", wrong(env.pin))
    attempts: Out[int] = Out()
    code = auth(env, "user", env.pin, attempts)
    expect(unblock(env, "user", env.puk) == OK, "CardUnblockPin with the PUK failed")
    expect(attempts.value == 0, f"pcAttemptsRemaining {attempts.value} on a blocked PIN")
    return code


row("CardAuthenticateEx", "PinId ROLE_EVERYONE", INVALID)(lambda env: auth_ex(env, 0, 0))
row("CardAuthenticateEx", "PinId 9", INVALID)(lambda env: auth_ex(env, 9, 0))
row("CardAuthenticateEx", "both session PIN flags", INVALID)(lambda env: auth_ex(env, 1, 0x30000000, True))
row("CardAuthenticateEx", "unknown dwFlags bit", INVALID)(lambda env: auth_ex(env, 1, 0x1))
row("CardAuthenticateEx", "GENERATE_SESSION_PIN without out pointers", INVALID)(lambda env: auth_ex(env, 1, 0x10000000))
row("CardAuthenticateEx", "GENERATE_SESSION_PIN (no session PINs)", UNSUPPORTED)(
    lambda env: auth_ex(env, 1, 0x10000000, True)
)
row("CardAuthenticateEx", "ROLE_USER", OK)(lambda env: auth_ex(env, 1, 0))
row("CardAuthenticateEx", "ROLE_USER, CARD_PIN_SILENT_CONTEXT", OK)(lambda env: auth_ex(env, 1, 0x40))

# -- challenge / response (ROLE_ADMIN = management key 9B) -------------------------------------------
row("CardGetChallenge", "out pointers NULL", INVALID)(lambda env: call(env, "CardGetChallenge", None, None))
row("CardGetChallengeEx", "PinId ROLE_USER", INVALID)(lambda env: call(env, "CardGetChallengeEx", 1, Out(), Out(), 0))
row("CardGetChallengeEx", "dwFlags 1", INVALID)(lambda env: call(env, "CardGetChallengeEx", 2, Out(), Out(), 1))
row("CardGetChallengeEx", "ROLE_ADMIN", OK)(lambda env: call(env, "CardGetChallengeEx", 2, Out(), Out(), 0))
row("CardAuthenticateChallenge", "no challenge first", WRONG, fresh=True)(
    lambda env: call(env, "CardAuthenticateChallenge", bytes(8), 8, Out())
)
row("CardAuthenticateChallenge", "pbResponseData NULL", INVALID)(
    lambda env: call(env, "CardAuthenticateChallenge", None, 8, Out())
)


@row("CardAuthenticateChallenge", "wrong response", WRONG)
def _wrong_response(env: CheckEnv) -> int:
    response = wrong(admin_response(env))
    return call(env, "CardAuthenticateChallenge", response, len(response), Out())


@row("CardAuthenticateChallenge", "management key response", OK)
def _admin(env: CheckEnv) -> int:
    response = admin_response(env)
    code = call(env, "CardAuthenticateChallenge", response, len(response), Out())
    expect(code != OK or authenticated(env) & 0x04 != 0, "ROLE_ADMIN missing from CP_CARD_AUTHENTICATED_STATE")
    return code


# -- unblock and change -------------------------------------------------------------------------------
row("CardUnblockPin", "pwszUserId 'admin'", INVALID)(lambda env: unblock(env, "admin", env.puk))
row("CardUnblockPin", "dwFlags 0", INVALID)(lambda env: unblock(env, "user", env.puk, flags=0))
row("CardUnblockPin", "pbAuthenticationData NULL", INVALID)(lambda env: unblock(env, "user", None))
row("CardUnblockPin", "challenge/response (PIV: PUK only)", UNSUPPORTED)(
    lambda env: unblock(env, "user", bytes(8), flags=PIN_CR)
)
row("CardUnblockPin", "cRetryCount 5", UNSUPPORTED)(lambda env: unblock(env, "user", env.puk, retry=5))
row("CardUnblockPin", "PUK, PIN set to the same value", OK)(lambda env: unblock(env, "user", env.puk))


@row("CardUnblockPin", "wrong PUK", WRONG)
def _wrong_puk(env: CheckEnv) -> int:
    left = session(env.card).get_puk_attempts()
    if left is not None and left < 2:
        raise CheckSkipped(f"only {left} PUK tries left")
    code = unblock(env, "user", wrong(env.puk))
    expect(unblock(env, "user", env.puk) == OK, "the right PUK failed after a wrong one")
    return code


row("CardChangeAuthenticator", "user with CHALLENGE_RESPONSE", INVALID)(
    lambda env: change(env, "user", env.pin, PIN_CR)
)
row("CardChangeAuthenticator", "admin with PIN flag", INVALID)(lambda env: change(env, "admin", env.pin, PIN_PIN))
row("CardChangeAuthenticator", "cRetryCount 3", UNSUPPORTED)(lambda env: change(env, "user", env.pin, retry=3))
row("CardChangeAuthenticator", "PIN to the same PIN", OK)(lambda env: change(env, "user", env.pin))


@row("CardChangeAuthenticator", "wrong current PIN", WRONG)
def _wrong_current(env: CheckEnv) -> int:
    before = need_tries(env)
    attempts: Out[int] = Out()
    code = change(env, "user", wrong(env.pin), attempts=attempts)
    login(env)
    expect(attempts.value == before - 1, f"pcAttemptsRemaining {attempts.value}, expected {before - 1}")
    return code


row("CardChangeAuthenticatorEx", "dwFlags 0", INVALID)(lambda env: change_ex(env, 0, 1, 1))
row("CardChangeAuthenticatorEx", "change with two PIN ids", INVALID)(lambda env: change_ex(env, 2, 1, 2))
row("CardChangeAuthenticatorEx", "unblock the admin", INVALID)(lambda env: change_ex(env, 1, 4, 2))
row("CardChangeAuthenticatorEx", "PIN id 9", INVALID)(lambda env: change_ex(env, 2, 9, 9))
row("CardChangeAuthenticatorEx", "user PIN to the same PIN", OK)(lambda env: change_ex(env, 2, 1, 1))

# -- deauthenticate ---------------------------------------------------------------------------------
row("CardDeauthenticate", "dwFlags 1", INVALID)(lambda env: call(env, "CardDeauthenticate", "user", 1))
row("CardDeauthenticate", "pwszUserId 'nobody'", INVALID)(lambda env: call(env, "CardDeauthenticate", "nobody", 0))
row("CardDeauthenticateEx", "dwFlags 1", INVALID)(lambda env: call(env, "CardDeauthenticateEx", 0x02, 1))


@row("CardDeauthenticateEx", "user PIN (VERIFY P1=FF)", OK, fresh=True)
def _deauth(env: CheckEnv) -> int:
    login(env)
    code = call(env, "CardDeauthenticateEx", 0xFF, 0)
    expect(code != OK or authenticated(env) & 0x02 == 0, "ROLE_USER still authenticated")
    expect(code != OK or session(env.card).get_pin_attempts() > 0, "the PIN counter moved")
    return code


# -- files ----------------------------------------------------------------------------------------------
def rd(env: CheckEnv, directory: str | None, name: str | None, flags: int = 0, outs: bool = True) -> int:
    boxes: tuple[Out[Any] | None, Out[Any] | None] = (Out(), Out()) if outs else (None, None)
    return call(env, "CardReadFile", directory, name, flags, *boxes)


def wr(env: CheckEnv, directory: str | None, name: str, data: bytes | None, flags: int = 0) -> int:
    return call(env, "CardWriteFile", directory, name, flags, data, len(data or b""))


def empty_cert_name(env: CheckEnv) -> str:
    return f"kxc{index_where(env, False):02d}"


row("CardReadFile", "dwFlags 1", INVALID)(lambda env: rd(env, None, "cardid", 1))
row("CardReadFile", "missing file", C.SCARD_E_FILE_NOT_FOUND)(lambda env: rd(env, "mscp", "nofile"))
row("CardReadFile", "missing directory", C.SCARD_E_DIR_NOT_FOUND)(lambda env: rd(env, "nodir", "cmapfile"))
row("CardReadFile", "name of 9 characters", INVALID)(lambda env: rd(env, None, "cardid123"))
row("CardReadFile", "pszFileName NULL", INVALID)(lambda env: rd(env, None, None))
row("CardReadFile", "out pointers NULL", INVALID)(lambda env: rd(env, None, "cardid", outs=False))


@row("CardReadFile", "cardid, cardapps, cmapfile contents", OK)
def _contents(env: CheckEnv) -> int:
    expect(len(read(env, None, "cardid")) == 16, "cardid is not 16 bytes")
    expect(read(env, None, "cardapps") == b"mscp\0\0\0\0", "cardapps is not the mscp record")
    expect(len(read(env, None, "cardcf")) >= 6, "cardcf is shorter than CARD_CACHE_FILE_FORMAT")
    raw = read(env, "mscp", "cmapfile")
    expect(len(raw) % 86 == 0, f"cmapfile of {len(raw)} bytes")
    records = [ContainerMapRecord.from_bytes(raw[i : i + 86]) for i in range(0, len(raw), 86)]
    defaults = [r for r in records if r.bFlags & 2]
    if any(r.bFlags & 1 for r in records):
        expect(len(defaults) == 1, f"{len(defaults)} default containers, not one")
    return OK


row("CardWriteFile", "dwFlags 1", INVALID)(lambda env: wr(env, None, "cardcf", bytes(6), 1))
row("CardWriteFile", "missing file", C.SCARD_E_FILE_NOT_FOUND)(lambda env: wr(env, "mscp", "nofile", b"x"))
row("CardWriteFile", "pbData NULL", INVALID)(lambda env: wr(env, None, "cardcf", None))
row("CardWriteFile", "cardid unauthenticated", VIOLATION, fresh=True)(
    lambda env: wr(env, None, "cardid", bytes(range(16)))
)
row("CardWriteFile", "cardcf unauthenticated", VIOLATION, fresh=True)(lambda env: wr(env, None, "cardcf", bytes(6)))


@row("CardWriteFile", "cardcf as user: read back", OK, fresh=True)
def _cardcf(env: CheckEnv) -> int:
    login(env)
    new = bytes((1, 7, 3, 0, 5, 0))
    code = wr(env, None, "cardcf", new)
    expect(code != OK or read(env, None, "cardcf") == new, "cardcf reads back differently")
    return code


def create(env: CheckEnv, directory: str | None, name: str | None, ac: int = 1) -> int:
    return call(env, "CardCreateFile", directory, name, 0, ac)


row("CardCreateFile", "existing cardid", C.ERROR_FILE_EXISTS)(lambda env: create(env, None, "cardid", 3))
row("CardCreateFile", "AccessCondition 0", INVALID)(lambda env: create(env, "mscp", "kxc23", 0))
row("CardCreateFile", "missing directory", C.SCARD_E_DIR_NOT_FOUND)(lambda env: create(env, "nodir", "kxc23"))
row("CardCreateFile", "pszFileName NULL", INVALID)(lambda env: create(env, "mscp", None))
row("CardCreateFile", "certificate unauthenticated", VIOLATION, fresh=True)(
    lambda env: create(env, "mscp", empty_cert_name(env))
)
row("CardDeleteFile", "dwFlags 1", INVALID)(lambda env: call(env, "CardDeleteFile", "mscp", "kxc23", 1))
row("CardDeleteFile", "missing file", C.SCARD_E_FILE_NOT_FOUND)(
    lambda env: call(env, "CardDeleteFile", "mscp", "nofile", 0)
)
row("CardEnumFiles", "dwFlags 1", INVALID)(lambda env: call(env, "CardEnumFiles", None, Out(), Out(), 1))
row("CardEnumFiles", "missing directory", C.SCARD_E_DIR_NOT_FOUND)(
    lambda env: call(env, "CardEnumFiles", "x", Out(), Out(), 0)
)
row("CardEnumFiles", "out pointers NULL", INVALID)(lambda env: call(env, "CardEnumFiles", None, None, None, 0))


@row("CardEnumFiles", "root: cardid cardcf cardapps", OK)
def _enum_root(env: CheckEnv) -> int:
    names: Out[bytearray] = Out()
    size: Out[int] = Out()
    code = call(env, "CardEnumFiles", None, names, size, 0)
    raw = bytes(names.value or b"")
    expect(
        code != OK or (raw.endswith(b"\0\0") and len(raw) == size.value), "not a multi-string of *pdwcbFileName bytes"
    )
    expect(code != OK or set(raw.split(b"\0")) - {b""} == {b"cardid", b"cardcf", b"cardapps"}, f"root lists {raw!r}")
    return code


row("CardGetFileInfo", "pCardFileInfo NULL", INVALID)(lambda env: call(env, "CardGetFileInfo", None, "cardid", None))
row("CardGetFileInfo", "dwVersion 2", C.ERROR_REVISION_MISMATCH)(
    lambda env: call(env, "CardGetFileInfo", None, "cardid", CardFileInfo(dwVersion=2))
)
row("CardGetFileInfo", "missing file", C.SCARD_E_FILE_NOT_FOUND)(
    lambda env: call(env, "CardGetFileInfo", "mscp", "nofile", CardFileInfo())
)


@row("CardGetFileInfo", "cardid: 16 bytes, EveryoneReadAdminWriteAc", OK)
def _info(env: CheckEnv) -> int:
    info = CardFileInfo()
    code = call(env, "CardGetFileInfo", None, "cardid", info)
    expect(code != OK or (info.cbFileSize, info.AccessCondition) == (16, 3), f"{info}")
    return code


row("CardCreateDirectory", "mscp exists", C.ERROR_FILE_EXISTS)(lambda env: call(env, "CardCreateDirectory", "mscp", 1))
row("CardCreateDirectory", "AccessCondition 0", INVALID)(lambda env: call(env, "CardCreateDirectory", "newdir", 0))
row("CardCreateDirectory", "unauthenticated", VIOLATION, fresh=True)(
    lambda env: call(env, "CardCreateDirectory", "newdir", 1)
)
row("CardDeleteDirectory", "missing directory", C.SCARD_E_DIR_NOT_FOUND)(
    lambda env: call(env, "CardDeleteDirectory", "nodir")
)
row("CardDeleteDirectory", "mscp unauthenticated", VIOLATION, fresh=True)(
    lambda env: call(env, "CardDeleteDirectory", "mscp")
)
