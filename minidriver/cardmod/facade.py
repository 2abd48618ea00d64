"""A small Pythonic face on the minidriver API, for people writing Python rather than a CSP.

    with Minidriver("Virtual PCD 00 00") as md:
        print(md.card_id().hex(), md.list_files("mscp"))
        md.authenticate_pin(b"123456")

Every method calls the spec entry point through the function table CardAcquireContext filled
and raises :class:`~minidriver.cardmod.codes.MinidriverError` (``.code`` = the DWORD) when it
does not return 0; PIN failures raise :class:`PinError`, which adds ``attempts_remaining``.
"""

from __future__ import annotations

import struct
from types import TracebackType
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .codes import MinidriverError, ScardCode
from .context import CardAcquireContext, CardDeleteContext
from .helper import card_data_for_reader, reconnect, release
from .structs import CardCapabilities, CardFileInfo, CardFreeSpaceInfo, CardKeySizes, ContainerMapRecord
from .types import CARD_DATA_CURRENT_VERSION, CardData, Out

__all__ = ["Minidriver", "PinError"]

_PIN_CODES = (ScardCode.SCARD_W_WRONG_CHV, ScardCode.SCARD_W_CHV_BLOCKED)


class PinError(MinidriverError):
    """SCARD_W_WRONG_CHV / SCARD_W_CHV_BLOCKED, with the tries left when the card said."""

    def __init__(self, code: ScardCode, attempts_remaining: int | None) -> None:
        super().__init__(code, "" if attempts_remaining is None else f"{attempts_remaining} tries left")
        self.attempts_remaining = attempts_remaining


def _split(path: str) -> tuple[str | None, str]:
    directory, _, name = path.rpartition("/")
    return directory or None, name


class Minidriver:
    """One minidriver context on the card in ``reader``, or on a CARD_DATA you built (acquired
    here unless it already holds a context)."""

    def __init__(
        self, reader: str | None = None, *, version: int = CARD_DATA_CURRENT_VERSION, card_data: CardData | None = None
    ) -> None:
        self._own = card_data is None
        self.card_data = card_data if card_data is not None else card_data_for_reader(reader, version=version)
        #: a CARD_DATA that already holds a context is used as it is (and left to its owner)
        self._acquired = self.card_data.pvVendorSpecific is None
        if self._acquired:
            code = CardAcquireContext(self.card_data, 0)
            if code:
                if self._own:
                    release(self.card_data)
                raise MinidriverError(ScardCode(code), "CardAcquireContext")

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._acquired and self.card_data.pvVendorSpecific is not None:
            CardDeleteContext(self.card_data)
        if self._own:
            release(self.card_data)

    def __enter__(self) -> Minidriver:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def reconnect(self) -> None:
        """After a removed or reset card: reconnect the handle; the context binds again by itself."""
        reconnect(self.card_data)

    # -- calling ----------------------------------------------------------------------------
    def call(self, name: str, *args: Any) -> None:
        """Call entry point ``name`` (e.g. "CardSignData") with the spec's parameters after pCardData."""
        fn = getattr(self.card_data, f"pfn{name}", None)
        if fn is None:
            raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"{name} is not in this version's table")
        code = fn(self.card_data, *args)
        if code:
            raise MinidriverError(ScardCode(code), name)

    def _pin_call(self, name: str, *args: Any, attempts: Out[int]) -> None:
        try:
            self.call(name, *args)
        except MinidriverError as exc:
            if exc.code in _PIN_CODES:
                raise PinError(exc.code, attempts.value) from None
            raise

    # -- files ------------------------------------------------------------------------------
    def read_file(self, path: str) -> bytes:
        """``"cardid"``, ``"mscp/cmapfile"``, ..."""
        data: Out[bytearray] = Out()
        size: Out[int] = Out()
        self.call("CardReadFile", *_split(path), 0, data, size)
        return bytes(data.value or b"")

    def write_file(self, path: str, content: bytes) -> None:
        self.call("CardWriteFile", *_split(path), 0, content, len(content))

    def list_files(self, directory: str | None = None) -> list[str]:
        names: Out[bytearray] = Out()
        size: Out[int] = Out()
        self.call("CardEnumFiles", directory, names, size, 0)
        return [n.decode("ascii") for n in bytes(names.value or b"").split(b"\0") if n]

    def file_info(self, path: str) -> CardFileInfo:
        info = CardFileInfo()
        self.call("CardGetFileInfo", *_split(path), info)
        return info

    def card_id(self) -> bytes:
        return self.read_file("cardid")

    def containers(self) -> list[ContainerMapRecord]:
        """``mscp/cmapfile``, record by record (an empty slot is an all-zero record)."""
        raw = self.read_file("mscp/cmapfile")
        return [ContainerMapRecord.from_bytes(raw[i : i + 86]) for i in range(0, len(raw), 86)]

    # -- PINs -------------------------------------------------------------------------------
    def authenticate_pin(self, pin: bytes | str, user: str = "user") -> None:
        value = pin.encode() if isinstance(pin, str) else pin
        attempts: Out[int] = Out()
        self._pin_call("CardAuthenticatePin", user, value, len(value), attempts, attempts=attempts)

    def challenge_response(self, key: bytes) -> bytes:
        """CardGetChallenge and the answer under the management key (3DES for an 8-byte
        challenge, AES for a 16-byte one)."""
        challenge: Out[bytearray] = Out()
        size: Out[int] = Out()
        self.call("CardGetChallenge", challenge, size)
        block = bytes(challenge.value or b"")
        algo = TripleDES(key) if len(block) == 8 else algorithms.AES(key)
        enc = Cipher(algo, modes.ECB()).encryptor()
        return enc.update(block) + enc.finalize()

    def authenticate_admin(self, management_key: bytes) -> None:
        response = self.challenge_response(management_key)
        attempts: Out[int] = Out()
        self._pin_call("CardAuthenticateChallenge", response, len(response), attempts, attempts=attempts)

    def change_pin(self, old: bytes, new: bytes) -> None:
        attempts: Out[int] = Out()
        self._pin_call(
            "CardChangeAuthenticator", "user", old, len(old), new, len(new), 0, 2, attempts, attempts=attempts
        )

    def unblock_pin(self, puk: bytes, new_pin: bytes) -> None:
        try:
            self.call("CardUnblockPin", "user", puk, len(puk), new_pin, len(new_pin), 0, 2)
        except MinidriverError as exc:
            if exc.code in _PIN_CODES:
                raise PinError(exc.code, None) from None
            raise

    def deauthenticate(self, pin_set: int = 0xFF) -> None:
        self.call("CardDeauthenticateEx", pin_set, 0)

    # -- properties -------------------------------------------------------------------------
    def get_property(self, name: str, flags: int = 0) -> bytes:
        size: Out[int] = Out()
        self.call("CardGetProperty", name, None, 0, size, flags)
        buf = bytearray(size.value or 0)
        self.call("CardGetProperty", name, buf, len(buf), size, flags)
        return bytes(buf[: size.value])

    def get_dword_property(self, name: str, flags: int = 0) -> int:
        value: int = struct.unpack("<I", self.get_property(name, flags)[:4])[0]
        return value

    def capabilities(self) -> CardCapabilities:
        caps = CardCapabilities()
        self.call("CardQueryCapabilities", caps)
        return caps

    def free_space(self) -> CardFreeSpaceInfo:
        info = CardFreeSpaceInfo()
        self.call("CardQueryFreeSpace", 0, info)
        return info

    def key_sizes(self, key_spec: int) -> CardKeySizes:
        sizes = CardKeySizes()
        self.call("CardQueryKeySizes", key_spec, 0, sizes)
        return sizes
