"""Local mode: both SKI roles in one process, for labs and tests (design.md "Local mode").

MDEncryptData works only in NO_CARD_MODE (minidriver-spec.md §5.4), so local mode is a second,
card-less context beside the card's: :class:`LocalInjector` runs the server half there and the
client half on the card context, through the same entry points and the same bytes as the relay.
Nothing is shortcut: what a test proves here holds for two processes.

    with LocalInjector(card_data, StaticKeys.same(DEFAULT_TEST_KEY, kvn=0xFF)) as inj:
        inj.import_key(2, private_key)            # container 2 = slot 9D
        inj.change_pin(b"123456", b"654321")

or in one call: ``inject(card_data, keys, container_index=2, private_key=key, new_pin=...)``.
A step that fails raises :class:`~minidriver.cardmod.codes.MinidriverError` with its code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..scpbase import StaticKeys
from . import blobs
from .codes import MinidriverError, ScardCode
from .context import CardAcquireContext
from .piv_map import PIN_PUK
from .ski import CardDestroyKey, CardGetSharedKeyHandle, CardProcessEncryptedData, MDEncryptData
from .ski_state import configure_server
from .ski_wire import (
    CSF_AUTHENTICATE,
    CSF_CHANGE_AUTHENTICATOR,
    CSF_IMPORT_KEYPAIR,
    CardAuthenticate,
    CardChangeAuthenticator,
    CardEncryptedData,
    CardImportKeyPair,
)
from .types import CARD_SECURE_KEY_INJECTION_NO_CARD_MODE, CardData, KeySpec, Out, PinId

__all__ = ["LocalInjector", "Relay", "import_struct", "inject"]

PIN_CHANGE_FLAG_UNBLOCK, PIN_CHANGE_FLAG_CHANGEPIN = 0x01, 0x02
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
#: moves one message from one side to the other (local: identity; tests: may tamper)
Relay = Callable[[bytes], bytes]


def _check(code: int, what: str) -> None:
    if code != ScardCode.SCARD_S_SUCCESS:
        raise MinidriverError(ScardCode(code), what)


def import_struct(index: int, key: PrivateKey, *, pin_id: int = PinId.ROLE_USER, key_exchange: bool = True) -> bytes:
    """CARD_IMPORT_KEYPAIR for ``key`` (CAPI PRIVATEKEYBLOB / BCrypt ECC private blob)."""
    if isinstance(key, rsa.RSAPrivateKey):
        alg = blobs.CapiAlg.CALG_RSA_KEYX if key_exchange else blobs.CapiAlg.CALG_RSA_SIGN
        spec = KeySpec.AT_KEYEXCHANGE if key_exchange else KeySpec.AT_SIGNATURE
        return bytes(CardImportKeyPair(index, pin_id, spec, key.key_size, blobs.rsa_private_blob(key, alg)))
    bits = key.curve.key_size
    specs = {
        (256, True): KeySpec.AT_ECDHE_P256,
        (384, True): KeySpec.AT_ECDHE_P384,
        (256, False): KeySpec.AT_ECDSA_P256,
        (384, False): KeySpec.AT_ECDSA_P384,
    }
    spec = specs.get((bits, key_exchange), KeySpec.AT_ECDSA_P521)
    return bytes(CardImportKeyPair(index, pin_id, spec, bits, blobs.ecc_private_blob(key, ecdh=key_exchange)))


class LocalInjector:
    """A card context (``card``) plus a NO_CARD_MODE context holding ``keys``, and one handle each."""

    def __init__(
        self,
        card: CardData,
        keys: StaticKeys | Mapping[int, StaticKeys],
        *,
        kvn: int = 0,
        level: int = 0x03,
        relay: Relay | None = None,
    ) -> None:
        self.card = card
        self.server = CardData()
        _check(CardAcquireContext(self.server, CARD_SECURE_KEY_INJECTION_NO_CARD_MODE), "server context")
        configure_server(self.server, keys, kvn=kvn, level=level)
        self.relay: Relay = relay or (lambda message: message)
        self.server_key = 0
        self.client_key = 0

    # -- handshake ---------------------------------------------------------------------------
    def open(self) -> int:
        """Both rounds; returns the client's handle."""
        hello, hkey = Out[bytearray](), Out[int]()
        _check(CardGetSharedKeyHandle(self.server, None, 0, hello, Out[int](), hkey), "server start")
        assert hello.value is not None
        challenge, ckey = Out[bytearray](), Out[int]()
        msg = self.relay(bytes(hello.value))
        _check(CardGetSharedKeyHandle(self.card, msg, len(msg), challenge, Out[int](), ckey), "client round 1")
        assert challenge.value is not None
        auth = Out[bytearray]()
        msg = self.relay(bytes(challenge.value))
        _check(CardGetSharedKeyHandle(self.server, msg, len(msg), auth, Out[int](), hkey), "server round 2")
        assert auth.value is not None and hkey.value
        self.server_key = hkey.value
        msg = self.relay(bytes(auth.value))
        _check(CardGetSharedKeyHandle(self.card, msg, len(msg), Out[bytearray](), Out[int](), ckey), "client round 2")
        assert ckey.value
        self.client_key = ckey.value
        return self.client_key

    # -- secure functions ----------------------------------------------------------------------
    def run(self, function: str, structure: bytes) -> tuple[int, bytes]:
        """MDEncryptData on the server, CardProcessEncryptedData on the client: (code, response)."""
        if not self.client_key:
            self.open()
        items, count = Out[list[CardEncryptedData]](), Out[int]()
        _check(MDEncryptData(self.server, self.server_key, function, structure, len(structure), 0, items, count),
               f"MDEncryptData({function})")  # fmt: skip
        assert items.value is not None
        relayed = [self.relay(bytes(item.pbEncryptedData or b"")) for item in items.value]
        blobs_in = [CardEncryptedData(blob, len(blob)) for blob in relayed]
        out, size = bytearray(16), Out[int]()
        code = CardProcessEncryptedData(self.card, self.client_key, function, blobs_in, len(blobs_in), out, 16, size, 0)
        return code, bytes(out[: size.value or 0])

    def import_key(self, index: int, key: PrivateKey, *, pin_id: int = PinId.ROLE_USER) -> None:
        code, _ = self.run(CSF_IMPORT_KEYPAIR, import_struct(index, key, pin_id=pin_id))
        _check(code, "CSF_IMPORT_KEYPAIR")

    def change_pin(self, old: bytes, new: bytes) -> int:
        """Tries left of the PIN afterwards (0xFFFFFFFF when the card did not say)."""
        req = CardChangeAuthenticator(PIN_CHANGE_FLAG_CHANGEPIN, PinId.ROLE_USER, old, PinId.ROLE_USER, new)
        return self._attempts(CSF_CHANGE_AUTHENTICATOR, bytes(req))

    def unblock_pin(self, puk: bytes, new: bytes) -> int:
        req = CardChangeAuthenticator(PIN_CHANGE_FLAG_UNBLOCK, PIN_PUK, puk, PinId.ROLE_USER, new)
        return self._attempts(CSF_CHANGE_AUTHENTICATOR, bytes(req))

    def verify_pin(self, pin: bytes) -> int:
        return self._attempts(CSF_AUTHENTICATE, bytes(CardAuthenticate(0, PinId.ROLE_USER, pin)))

    def _attempts(self, function: str, structure: bytes) -> int:
        code, response = self.run(function, structure)
        _check(code, function)
        return int.from_bytes(response[-4:], "little")

    # -- life cycle ------------------------------------------------------------------------------
    def close_client(self) -> None:
        """CardDestroyKey on both handles (the card's channel closes); the contexts stay."""
        if self.client_key:
            CardDestroyKey(self.card, self.client_key)
            self.client_key = 0
        if self.server_key:
            CardDestroyKey(self.server, self.server_key)
            self.server_key = 0

    def close(self) -> None:
        from .context import CardDeleteContext

        self.close_client()
        if self.server.pvVendorSpecific is not None:
            CardDeleteContext(self.server)

    def __enter__(self) -> LocalInjector:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def inject(
    card: CardData,
    keys: StaticKeys | Mapping[int, StaticKeys],
    *,
    container_index: int,
    private_key: PrivateKey,
    pin_id: int = PinId.ROLE_USER,
    change_pin: tuple[bytes, bytes] | None = None,
    level: int = 0x03,
) -> None:
    """One call: handshake, import ``private_key`` into container ``container_index``, and
    optionally change the PIN (``(old, new)``); every handle is destroyed afterwards."""
    with LocalInjector(card, keys, level=level) as injector:
        injector.import_key(container_index, private_key, pin_id=pin_id)
        if change_pin is not None:
            injector.change_pin(*change_pin)
