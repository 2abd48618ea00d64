"""Conformance rows for secure key injection (minidriver-spec.md §5), see :mod:`.checks`.

The server half runs in a NO_CARD_MODE context of the checker's own process with the GP test
key set (ENC = MAC = DEK = 40..4F, the default profile's; gp-scp.md §5). A card that does not
share those keys answers the handshake with SCARD_W_WRONG_CHV and the rows that need a session
are reported skipped. Destructive rows import a key into container 22 (PIV 94) or spend a PIN
try (and restore the counter with the right PIN).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cryptography.hazmat.primitives.asymmetric import ec

from ..gp import DEFAULT_TEST_KEY
from ..scpbase import StaticKeys
from . import ski
from .binding import session
from .checks import Check, CheckEnv, CheckFailed, CheckSkipped
from .codes import MinidriverError
from .codes import ScardCode as C
from .context import CardAcquireContext, CardDeleteContext
from .ski_local import LocalInjector, import_struct
from .ski_state import configure_server
from .ski_wire import (
    CSF_AUTHENTICATE,
    CSF_CHANGE_AUTHENTICATOR,
    CSF_IMPORT_KEYPAIR,
    CardAuthenticate,
    CardChangeAuthenticator,
    CardEncryptedData,
)
from .types import CARD_SECURE_KEY_INJECTION_NO_CARD_MODE, CardData, Out, PinId

__all__ = ["CHECKS"]

KEYS = StaticKeys.same(DEFAULT_TEST_KEY, kvn=0xFF)
SCRATCH = 22  #: container destructive rows may overwrite (PIV 94)
HELLO = bytes.fromhex("53010100") + bytes(8)
KEY_DATA_BLOB = struct.pack("<III", 0x4D42444B, 1, 16) + bytes(16)


@contextmanager
def server(keys: StaticKeys = KEYS) -> Iterator[CardData]:
    cd = CardData()
    if CardAcquireContext(cd, CARD_SECURE_KEY_INJECTION_NO_CARD_MODE) != 0:
        raise CheckFailed("CardAcquireContext(NO_CARD_MODE) failed")
    configure_server(cd, keys)
    try:
        yield cd
    finally:
        CardDeleteContext(cd)


@contextmanager
def relay(env: CheckEnv) -> Iterator[LocalInjector]:
    injector = LocalInjector(env.card, KEYS)
    try:
        try:
            injector.open()
        except MinidriverError as exc:
            if exc.code == C.SCARD_W_WRONG_CHV:
                raise CheckSkipped("the card does not share the GP test key set") from None
            raise
        yield injector
    finally:
        injector.close()


def shared(cd: CardData, message: bytes | None) -> tuple[int, bytes, int]:
    out, key = Out[bytearray](), Out[int]()
    code = ski.CardGetSharedKeyHandle(cd, message, len(message or b""), out, Out[int](), key)
    return int(code), bytes(out.value or b""), key.value or 0


def blobs_of(inj: LocalInjector, function: str, data: bytes) -> list[CardEncryptedData]:
    items, count = Out[list[CardEncryptedData]](), Out[int]()
    code = ski.MDEncryptData(inj.server, inj.server_key, function, data, len(data), 0, items, count)
    if code != 0:
        raise CheckFailed(f"MDEncryptData answered {code:#x}")
    return list(items.value or [])


def process(env: CheckEnv, inj: LocalInjector, function: str, blobs: list[CardEncryptedData], size: int = 16) -> int:
    return int(
        ski.CardProcessEncryptedData(
            env.card, inj.client_key, function, blobs, len(blobs), bytearray(size), size, Out[int](), 0
        )
    )


def verify(env: CheckEnv) -> bytes:
    return bytes(CardAuthenticate(0, PinId.ROLE_USER, env.pin))


# -- CardGetSharedKeyHandle ---------------------------------------------------------------------------
def _handshake(env: CheckEnv) -> int:
    with server() as srv:
        code, hello, zero = shared(srv, None)
        if code or zero or not hello:
            raise CheckFailed(f"server start: {code:#x}, handle {zero}")
        code, challenge, zero = shared(env.card, hello)
        if code or zero:
            return code
        code, auth, hkey = shared(srv, challenge)
        if code == C.SCARD_W_WRONG_CHV:
            raise CheckSkipped("the card does not share the GP test key set")
        code, _, ckey = shared(env.card, auth)
        if code == 0 and (not hkey or not ckey):
            raise CheckFailed("a completed handshake returned a NULL handle")
        if code == 0:
            ski.CardDestroyKey(env.card, ckey)
        return code


def _wrong_keys(env: CheckEnv) -> int:
    with server(StaticKeys.same(bytes(16), kvn=0xFF)) as srv:
        _, hello, _ = shared(srv, None)
        code, challenge, _ = shared(env.card, hello)
        if code:
            return code
        code, _, key = shared(srv, challenge)
        if key:
            raise CheckFailed("a handle came back with a wrong cryptogram")
        return code


def _replayed_challenge(env: CheckEnv) -> int:
    with server() as srv:
        _, hello, _ = shared(srv, None)
        _, challenge, _ = shared(env.card, hello)
        shared(srv, challenge)
        return shared(srv, challenge)[0]


def _replayed_auth(env: CheckEnv) -> int:
    with server() as srv:
        _, hello, _ = shared(srv, None)
        _, challenge, _ = shared(env.card, hello)
        _, old_auth, _ = shared(srv, challenge)
        _, hello2, _ = shared(srv, None)
        shared(env.card, hello2)
        return shared(env.card, old_auth)[0]


def _shared_rows() -> list[Check]:
    f = "CardGetSharedKeyHandle"

    def null_handle(env: CheckEnv) -> int:
        return int(ski.CardGetSharedKeyHandle(env.card, HELLO, len(HELLO), Out(), Out(), None))

    def message(data: bytes) -> Callable[[CheckEnv], int]:
        return lambda env: shared(env.card, data)[0]

    def unconfigured(env: CheckEnv) -> int:
        cd = CardData()
        CardAcquireContext(cd, CARD_SECURE_KEY_INJECTION_NO_CARD_MODE)
        try:
            return shared(cd, None)[0]
        finally:
            CardDeleteContext(cd)

    return [
        Check(f, "phKey NULL", C.SCARD_E_INVALID_PARAMETER, null_handle),
        Check(f, "client: HELLO one byte short", C.SCARD_E_INVALID_PARAMETER, message(HELLO[:-1])),
        Check(f, "client: HELLO one byte long", C.SCARD_E_INVALID_PARAMETER, message(HELLO + b"\0")),
        Check(f, "client: unknown message version", C.SCARD_E_INVALID_PARAMETER, message(b"\x53\x02" + HELLO[2:])),
        Check(f, "client: unknown message type", C.SCARD_E_INVALID_PARAMETER, message(b"\x53\x01\x7f" + HELLO[3:])),
        Check(f, "client: no input", C.SCARD_E_INVALID_PARAMETER, message(b"")),
        Check(f, "client: AUTH without round 1", C.SCARD_E_INVALID_PARAMETER, message(b"\x53\x01\x03" + bytes(21))),
        Check(f, "server without key sets", C.SCARD_E_UNSUPPORTED_FEATURE, unconfigured),
        Check(f, "two rounds -> handle", C.SCARD_S_SUCCESS, _handshake),
        Check(f, "wrong static keys (card cryptogram)", C.SCARD_W_WRONG_CHV, _wrong_keys),
        Check(f, "server: replayed card answer", C.SCARD_E_INVALID_PARAMETER, _replayed_challenge),
        Check(f, "client: replayed EXTERNAL AUTHENTICATE", C.SCARD_W_WRONG_CHV, _replayed_auth),
    ]


# -- MDEncryptData / CardProcessEncryptedData ----------------------------------------------------------
def _encrypt(function: str, data: bytes, flags: int = 0, handle: int | None = None) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        with relay(env) as inj:
            items, count = Out[list[CardEncryptedData]](), Out[int]()
            hkey = inj.server_key if handle is None else handle
            return int(ski.MDEncryptData(inj.server, hkey, function, data, len(data), flags, items, count))

    return run


def _encrypt_rows() -> list[Check]:
    f = "MDEncryptData"
    pin = bytes(CardAuthenticate(0, PinId.ROLE_USER, b"123456"))
    key = import_struct(SCRATCH, ec.generate_private_key(ec.SECP256R1()))

    def in_card_context(env: CheckEnv) -> int:
        return int(ski.MDEncryptData(env.card, 1, CSF_AUTHENTICATE, pin, len(pin), 0, Out(), Out()))

    return [
        Check(f, "in a card context", C.SCARD_E_INVALID_PARAMETER, in_card_context),
        Check(f, "CSF_AUTHENTICATE", C.SCARD_S_SUCCESS, _encrypt(CSF_AUTHENTICATE, pin)),
        Check(f, "unknown secure function", C.SCARD_E_INVALID_PARAMETER, _encrypt("Format Card", pin)),
        Check(f, "CARD_BLOCK_PADDING", C.SCARD_E_INVALID_PARAMETER, _encrypt(CSF_AUTHENTICATE, pin, flags=1)),
        Check(f, "unknown handle", C.SCARD_E_INVALID_HANDLE, _encrypt(CSF_AUTHENTICATE, pin, handle=0x7FFFFFFF)),
        Check(
            f,
            "structure dwVersion 6",
            C.ERROR_REVISION_MISMATCH,
            _encrypt(CSF_AUTHENTICATE, struct.pack("<I", 6) + pin[4:]),
        ),
        Check(f, "cbPinData past the buffer", C.SCARD_E_INVALID_PARAMETER, _encrypt(CSF_AUTHENTICATE, pin[:-1])),
        Check(
            f,
            "container index 24",
            C.SCARD_E_NO_KEY_CONTAINER,
            _encrypt(CSF_IMPORT_KEYPAIR, import_struct(24, ec.generate_private_key(ec.SECP256R1()))),
        ),
        Check(
            f,
            "P-521 key",
            C.SCARD_E_UNSUPPORTED_FEATURE,
            _encrypt(CSF_IMPORT_KEYPAIR, import_struct(SCRATCH, ec.generate_private_key(ec.SECP521R1()))),
        ),
        Check(f, "CSF_IMPORT_KEYPAIR P-256", C.SCARD_S_SUCCESS, _encrypt(CSF_IMPORT_KEYPAIR, key)),
    ]


def _process(
    function: str,
    data: Callable[[CheckEnv], bytes],
    *,
    tamper: int | None = None,
    size: int = 16,
    handle: int | None = None,
) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        with relay(env) as inj:
            blobs = blobs_of(inj, function, data(env))
            if tamper is not None:
                raw = bytearray(blobs[0].pbEncryptedData or b"")
                raw[tamper] ^= 0x01
                blobs[0] = CardEncryptedData(raw, len(raw))
            if handle is not None:
                inj.client_key, real = handle, inj.client_key
                try:
                    return process(env, inj, function, blobs, size)
                finally:
                    inj.client_key = real
            return process(env, inj, function, blobs, size)

    return run


def _wrong_pin(env: CheckEnv) -> int:
    with relay(env) as inj:
        wrong = bytes(CardAuthenticate(0, PinId.ROLE_USER, b"00000000" if env.pin != b"00000000" else b"11111111"))
        code = process(env, inj, CSF_AUTHENTICATE, blobs_of(inj, CSF_AUTHENTICATE, wrong))
        inj.verify_pin(env.pin)  # put the counter back
        return code


def _import(env: CheckEnv) -> int:
    key = ec.generate_private_key(ec.SECP256R1())
    with relay(env) as inj:
        code = process(env, inj, CSF_IMPORT_KEYPAIR, blobs_of(inj, CSF_IMPORT_KEYPAIR, import_struct(SCRATCH, key)))
    meta = session(env.card).get_slot_metadata(0x94) if code == 0 else None
    if code == 0 and (
        meta is None or meta.public_key is None or meta.public_key.public_numbers() != key.public_key().public_numbers()
    ):
        raise CheckFailed("slot 94 does not hold the imported key")
    return code


def _process_rows() -> list[Check]:
    f = "CardProcessEncryptedData"

    def same_pin(env: CheckEnv) -> bytes:
        return bytes(CardChangeAuthenticator(0x02, PinId.ROLE_USER, env.pin, PinId.ROLE_USER, env.pin))

    return [
        Check(f, "CSF_AUTHENTICATE right PIN", C.SCARD_S_SUCCESS, _process(CSF_AUTHENTICATE, verify)),
        Check(
            f,
            "CSF_CHANGE_AUTHENTICATOR to the same PIN",
            C.SCARD_S_SUCCESS,
            _process(CSF_CHANGE_AUTHENTICATOR, same_pin),
        ),
        Check(f, "unknown handle", C.SCARD_E_INVALID_HANDLE, _process(CSF_AUTHENTICATE, verify, handle=0x7FFFFFFF)),
        Check(f, "output buffer too small", C.ERROR_INSUFFICIENT_BUFFER, _process(CSF_AUTHENTICATE, verify, size=4)),
        Check(f, "blob header altered", C.SCARD_E_INVALID_PARAMETER, _process(CSF_AUTHENTICATE, verify, tamper=1)),
        Check(
            f,
            "one bit of the protected data flipped",
            C.SCARD_W_SECURITY_VIOLATION,
            _process(CSF_AUTHENTICATE, verify, tamper=-10),
        ),
        Check(f, "CSF_AUTHENTICATE wrong PIN", C.SCARD_W_WRONG_CHV, _wrong_pin, destructive=True),
        Check(f, "CSF_IMPORT_KEYPAIR P-256 into container 22", C.SCARD_S_SUCCESS, _import, destructive=True),
    ]


# -- handles, properties, session-key import -----------------------------------------------------------
def _destroy_twice(env: CheckEnv) -> int:
    with relay(env) as inj:
        first = ski.CardDestroyKey(env.card, inj.client_key)
        second = ski.CardDestroyKey(env.card, inj.client_key)
        inj.client_key = 0
        if first != 0:
            raise CheckFailed(f"first CardDestroyKey answered {first:#x}")
        return int(second)


def _key_prop(prop: str, flags: int = 0, size: int = 4, handle: int | None = None) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        with relay(env) as inj:
            buf, length = bytearray(size), Out[int]()
            hkey = inj.client_key if handle is None else handle
            code = int(ski.CardGetKeyProperty(env.card, hkey, prop, buf, size, length, flags))
            if code == 0 and prop == "BlockLength" and bytes(buf) != struct.pack("<I", 16):
                raise CheckFailed(f"BlockLength {bytes(buf).hex()}")
            return code

    return run


def _set_prop(prop: str, value: bytes) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        with relay(env) as inj:
            return int(ski.CardSetKeyProperty(env.card, inj.client_key, prop, value, len(value), 0))

    return run


def _alg(alg: str, prop: str = "Key Sizes", flags: int = 0, size: int = 20) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        buf, length = bytearray(size), Out[int]()
        code = int(ski.CardGetAlgorithmProperty(env.card, alg, prop, buf, size, length, flags))
        if code == 0 and struct.unpack("<5I", buf) != (1, 128, 128, 256, 64):
            raise CheckFailed(f"AES key sizes {bytes(buf).hex()}")
        return code

    return run


def _md_import(blob: bytes, *, card_context: bool = False) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        if card_context:
            return int(ski.MDImportSessionKey(env.card, "KeyDataBlob", "AES", Out[int](), blob, len(blob)))
        with server() as srv:
            return int(ski.MDImportSessionKey(srv, "KeyDataBlob", "AES", Out[int](), blob, len(blob)))

    return run


def _card_import(flags: int, *, no_card: bool = False) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        blob = KEY_DATA_BLOB
        if no_card:
            with server() as srv:
                return int(
                    ski.CardImportSessionKey(srv, 0, None, "KeyDataBlob", "AES", Out[int](), blob, len(blob), flags)
                )
        return int(
            ski.CardImportSessionKey(env.card, 0, None, "KeyDataBlob", "AES", Out[int](), blob, len(blob), flags)
        )

    return run


def _other_rows() -> list[Check]:
    cbc, ecb = "ChainingModeCBC".encode("utf-16-le"), "ChainingModeECB".encode("utf-16-le")
    return [
        Check("CardDestroyKey", "handle 0", C.SCARD_E_INVALID_HANDLE, lambda env: int(ski.CardDestroyKey(env.card, 0))),
        Check("CardDestroyKey", "twice", C.SCARD_E_INVALID_HANDLE, _destroy_twice),
        Check("CardGetKeyProperty", "BlockLength", C.SCARD_S_SUCCESS, _key_prop("BlockLength")),
        Check("CardGetKeyProperty", "buffer too small", C.ERROR_INSUFFICIENT_BUFFER, _key_prop("ChainingMode")),
        Check("CardGetKeyProperty", "unknown property", C.SCARD_E_INVALID_PARAMETER, _key_prop("Color")),
        Check("CardGetKeyProperty", "dwFlags 1", C.SCARD_E_INVALID_PARAMETER, _key_prop("BlockLength", flags=1)),
        Check("CardGetKeyProperty", "unknown handle", C.SCARD_E_INVALID_HANDLE, _key_prop("BlockLength", handle=0)),
        Check("CardSetKeyProperty", "ChainingModeCBC", C.SCARD_S_SUCCESS, _set_prop("ChainingMode", cbc)),
        Check("CardSetKeyProperty", "ChainingModeECB", C.SCARD_E_INVALID_PARAMETER, _set_prop("ChainingMode", ecb)),
        Check("CardSetKeyProperty", "IV of 16 bytes", C.SCARD_S_SUCCESS, _set_prop("IV", bytes(16))),
        Check("CardSetKeyProperty", "IV of 8 bytes", C.SCARD_E_INVALID_PARAMETER, _set_prop("IV", bytes(8))),
        Check("CardGetAlgorithmProperty", "AES key sizes", C.SCARD_S_SUCCESS, _alg("AES")),
        Check("CardGetAlgorithmProperty", "3DES", C.SCARD_E_UNSUPPORTED_FEATURE, _alg("3DES")),
        Check("CardGetAlgorithmProperty", "unknown algorithm", C.SCARD_E_INVALID_PARAMETER, _alg("RC2")),
        Check("CardGetAlgorithmProperty", "unknown property", C.SCARD_E_INVALID_PARAMETER, _alg("AES", "Block")),
        Check("CardGetAlgorithmProperty", "dwFlags 1", C.SCARD_E_INVALID_PARAMETER, _alg("AES", flags=1)),
        Check("CardGetAlgorithmProperty", "buffer too small", C.ERROR_INSUFFICIENT_BUFFER, _alg("AES", size=8)),
        Check("MDImportSessionKey", "AES KeyDataBlob", C.SCARD_E_UNSUPPORTED_FEATURE, _md_import(KEY_DATA_BLOB)),
        Check("MDImportSessionKey", "bad magic", C.SCARD_E_INVALID_PARAMETER, _md_import(b"X" + KEY_DATA_BLOB[1:])),
        Check(
            "MDImportSessionKey",
            "in a card context",
            C.SCARD_E_INVALID_PARAMETER,
            _md_import(KEY_DATA_BLOB, card_context=True),
        ),
        Check("CardImportSessionKey", "PKCS1 padding", C.SCARD_E_UNSUPPORTED_FEATURE, _card_import(0x2)),
        Check("CardImportSessionKey", "two paddings", C.SCARD_E_INVALID_PARAMETER, _card_import(0x3)),
        Check("CardImportSessionKey", "in NO_CARD_MODE", C.SCARD_E_INVALID_PARAMETER, _card_import(0x2, no_card=True)),
    ]


CHECKS: list[Check] = [*_shared_rows(), *_encrypt_rows(), *_process_rows(), *_other_rows()]
