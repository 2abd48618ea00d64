"""PIN, PUK and card management key: persistent values and the retry counter rule.

Anti-tearing (design.md "Card state"): a presented PIN or PUK costs a try
*before* it is compared. :meth:`Credentials.check` first commits the
decremented counter (one store write), then compares in constant time,
and only a match restores the counter (a second write). Pulling the card
between the two writes therefore costs the host a try, never gains one.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, algorithms, modes

from ...iso7816 import SW, CardError, sw_retries_left
from ...store import Namespace
from .consts import MGMT_ALGORITHMS, PIN_LEN, PIN_PAD, Algorithm, KeyRef, TouchPolicy

Changes = dict[str, bytes | None]

__all__ = ["Credential", "Credentials", "ManagementKey", "check_pin_format", "pad_pin"]

log = logging.getLogger(__name__)

MGMT_KEY_LEN = {Algorithm.TDES: 24, Algorithm.AES128: 16, Algorithm.AES192: 24, Algorithm.AES256: 32}
MAX_RETRIES = 15  #: 63Cx can report at most 15
MIN_PIN_LEN = 6


def pad_pin(value: str) -> bytes:
    raw = value.encode()
    if not MIN_PIN_LEN <= len(raw) <= PIN_LEN:
        raise ValueError(f"PIN/PUK must be {MIN_PIN_LEN}-{PIN_LEN} characters long")
    return raw.ljust(PIN_LEN, bytes((PIN_PAD,)))


def check_pin_format(padded: bytes, *, digits_only: bool) -> None:
    """A new PIN/PUK value: 6-8 bytes then FF padding to 8 (SP 800-73-4 part 2 §2.4.3).

    The PIV PIN is decimal digits only; the PUK may hold any byte but FF.
    """
    if len(padded) != PIN_LEN:
        raise CardError(SW.WRONG_DATA, "reference data must be 8 bytes")
    value = padded.rstrip(bytes((PIN_PAD,)))
    if len(value) < MIN_PIN_LEN or PIN_PAD in value:
        raise CardError(SW.WRONG_DATA, "reference data must be 6-8 bytes padded with FF")
    if digits_only and not value.isdigit():
        raise CardError(SW.WRONG_DATA, "the PIN must be decimal digits")


@dataclass(frozen=True, slots=True)
class Credential:
    """A PIN or PUK: its padded value and retry counter."""

    value: bytes = field(repr=False)
    retries: int
    remaining: int

    def __post_init__(self) -> None:
        if len(self.value) != PIN_LEN:
            raise ValueError(f"value must be {PIN_LEN} bytes (padded)")
        if not 1 <= self.retries <= MAX_RETRIES:
            raise ValueError(f"retries must be 1-{MAX_RETRIES}, got {self.retries}")
        if not 0 <= self.remaining <= self.retries:
            raise ValueError(f"remaining must be 0-{self.retries}, got {self.remaining}")

    @property
    def blocked(self) -> bool:
        return self.remaining == 0

    def __bytes__(self) -> bytes:
        return json.dumps({"value": self.value.hex(), "max": self.retries, "left": self.remaining}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Credential:
        value: dict[str, Any] = json.loads(raw)
        return cls(bytes.fromhex(value["value"]), int(value["max"]), int(value["left"]))


@dataclass(frozen=True, slots=True)
class ManagementKey:
    """The card management key (9B): symmetric, 3DES or AES."""

    algorithm: Algorithm
    key: bytes = field(repr=False)
    touch_policy: TouchPolicy = TouchPolicy.NEVER

    def __post_init__(self) -> None:
        if self.algorithm not in MGMT_ALGORITHMS:
            raise ValueError(f"algorithm must be one of 03/08/0A/0C, got {self.algorithm:02X}")
        if len(self.key) != MGMT_KEY_LEN[self.algorithm]:
            raise ValueError(f"a {self.algorithm.name} management key is {MGMT_KEY_LEN[self.algorithm]} bytes")

    @property
    def block_size(self) -> int:
        """Witness and challenge length: one cipher block (8 for 3DES, 16 for AES)."""
        return 8 if self.algorithm is Algorithm.TDES else 16

    def _cipher(self) -> Cipher[modes.ECB]:
        alg: CipherAlgorithm = TripleDES(self.key) if self.algorithm is Algorithm.TDES else algorithms.AES(self.key)
        return Cipher(alg, modes.ECB())

    def encrypt(self, block: bytes) -> bytes:
        enc = self._cipher().encryptor()
        return enc.update(block) + enc.finalize()

    def decrypt(self, block: bytes) -> bytes:
        dec = self._cipher().decryptor()
        return dec.update(block) + dec.finalize()

    def __bytes__(self) -> bytes:
        return json.dumps({"alg": int(self.algorithm), "key": self.key.hex(), "touch": int(self.touch_policy)}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ManagementKey:
        value: dict[str, Any] = json.loads(raw)
        return cls(Algorithm(value["alg"]), bytes.fromhex(value["key"]), TouchPolicy(value["touch"]))


def _store_key(ref: int) -> str:
    return "pin" if ref == KeyRef.PIN else "puk"


class Credentials:
    """PIN, PUK and management key as kept in the applet's store namespace."""

    def __init__(self, store: Namespace) -> None:
        self.store = store

    def get(self, ref: KeyRef) -> Credential:
        raw = self.store.get(_store_key(ref))
        if raw is None:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE, f"no {ref.name} on this card")
        return Credential.from_bytes(raw)

    def put(self, ref: KeyRef, value: Credential) -> None:
        self.store.put(_store_key(ref), bytes(value))

    @staticmethod
    def record(ref: KeyRef, value: Credential) -> dict[str, bytes | None]:
        """The store change writing ``value``, for callers that batch several changes."""
        return {_store_key(ref): bytes(value)}

    def management_key(self) -> ManagementKey:
        raw = self.store.get("mgmt")
        if raw is None:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE, "no management key on this card")
        return ManagementKey.from_bytes(raw)

    def check(
        self, ref: KeyRef, presented: bytes, *, on_match: Callable[[Credential], Changes] | None = None
    ) -> Credential:
        """Spend a try, then compare; a match restores the counter.

        Raises 6983 when blocked, 63Cx (x = tries left) on a mismatch. On a
        match, the restored counter and the changes ``on_match`` returns
        (e.g. a new PIN) are written in one transaction; if ``on_match``
        raises, only the counter is restored and the error propagates.
        """
        cred = self.get(ref)
        if cred.blocked:
            raise CardError(SW.AUTH_METHOD_BLOCKED, f"{ref.name} is blocked")
        spent = replace(cred, remaining=cred.remaining - 1)
        self.put(ref, spent)  # committed before the comparison (tearing)
        if not hmac.compare_digest(spent.value, presented):
            log.info("%s verification failed; %d tries left", ref.name, spent.remaining)
            raise CardError(sw_retries_left(spent.remaining), f"wrong {ref.name}")
        restored = replace(spent, remaining=spent.retries)
        changes = self.record(ref, restored)
        try:
            if on_match is not None:
                changes |= on_match(restored)
        finally:
            self.store.put_many(changes)
        return restored

    def status(self, ref: KeyRef) -> int:
        """The SW answering a VERIFY without data for an unverified reference."""
        cred = self.get(ref)
        return SW.AUTH_METHOD_BLOCKED if cred.blocked else sw_retries_left(cred.remaining)
