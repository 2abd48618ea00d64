"""The PIV applet's state: persistent (store namespace) and transient (per channel).

Persistent, one store key each, so every command changes them in one
transaction (``put_many``):

========================  ==================================================
``pin``, ``puk``          :class:`~.credentials.Credential` (value, counters)
``mgmt``                  :class:`~.credentials.ManagementKey`
``serial``                4 bytes, random at card creation
``key/<slot>``            :class:`~.keys.KeyRecord` (key and its metadata)
``obj/<tag>``             a data object's content (inside its 53 / 7E)
========================  ==================================================

Parsed keys are cached per slot together with the stored bytes they came
from; a slot whose stored bytes changed (any write, a rolled-back batch, a
wipe) is parsed again, so the cache can never answer with a stale key.

Transient (:class:`SecurityStatus`): PIN verified, management key
authenticated, a challenge waiting for its answer. Lost on reset and
deselection (design.md "Card state").
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from enum import Enum, auto

from cryptography.hazmat.primitives.asymmetric import ec, x25519

from ...iso7816 import SW, CardError
from ...store import Namespace
from .certs import self_signed_certificate
from .config import PIVConfig
from .consts import KeyRef, Origin, PinPolicy, TouchPolicy
from .credentials import Credential, Credentials
from .keys import KeyRecord, PrivateKey, SlotKey, generate_private_key
from .objects import ObjectID, cert_object_for_slot, certificate_object, default_ccc, default_chuid, default_discovery

__all__ = ["Changes", "PIVState", "PendingAuth", "SecurityStatus", "default_pin_policy", "new_serial"]

log = logging.getLogger(__name__)

Changes = dict[str, bytes | None]
SERIAL_LEN = 4
MAX_SERIAL = 2**31 - 1  #: highest serial handed out (see new_serial)


def default_pin_policy(slot: int) -> PinPolicy:
    """SP 800-73-4 part 1 Table 4b: 9C is "PIN Always", 9E and F9 need no PIN, the rest once."""
    if slot == KeyRef.SIGNATURE:
        return PinPolicy.ALWAYS
    if slot in (KeyRef.CARD_AUTHENTICATION, KeyRef.ATTESTATION):
        return PinPolicy.NEVER
    return PinPolicy.ONCE


def resolve_policies(slot: int, pin: PinPolicy, touch: TouchPolicy) -> tuple[PinPolicy, TouchPolicy]:
    return (
        default_pin_policy(slot) if pin is PinPolicy.DEFAULT else pin,
        TouchPolicy.NEVER if touch is TouchPolicy.DEFAULT else touch,
    )


def new_serial() -> int:
    """A random serial in 1..2**31-1, as YubiKey serials are.

    The top bit stays clear because yubico-piv-tool prints the serial with
    ``%d`` (a serial of 2**31 or more shows as a negative number) while ykman
    prints it unsigned; below 2**31 every tool shows the same value.
    """
    return 1 + secrets.randbelow(MAX_SERIAL)


class PendingAuth(Enum):
    NONE = auto()  #: no GENERAL AUTHENTICATE with 9B in progress
    WITNESS = auto()  #: mutual: encrypted witness sent, awaiting the decrypted one
    CHALLENGE = auto()  #: external: challenge sent, awaiting its encryption


@dataclass
class SecurityStatus:
    """Security status of the PIV application on one logical channel (transient)."""

    pin_verified: bool = False
    #: a VERIFY allows one use of a key whose PIN policy is ALWAYS (9C)
    pin_always: bool = False
    mgmt_authenticated: bool = False
    pending: PendingAuth = PendingAuth.NONE
    #: witness or challenge answer the card waits for
    expected: bytes = field(default=b"", repr=False)

    def end_exchange(self) -> None:
        self.pending = PendingAuth.NONE
        self.expected = b""


class _CachedKey:
    """A slot's record parsed from ``raw`` (the stored bytes), and its key once loaded."""

    __slots__ = ("key", "raw", "record")

    def __init__(self, raw: bytes, record: KeyRecord, key: SlotKey | None = None) -> None:
        self.raw = raw
        self.record = record
        self.key = key


class PIVState:
    """Typed access to the applet's namespace; creates a new card's state."""

    def __init__(self, store: Namespace, config: PIVConfig, *, attestation: bool = True) -> None:
        self.store = store
        self.config = config
        #: a new card gets an attestation key in F9 and its certificate (the persona decides)
        self.attestation = attestation
        self.credentials = Credentials(store)
        self._slots: dict[int, _CachedKey] = {}

    # -- creation ---------------------------------------------------------------
    @property
    def provisioned(self) -> bool:
        return self.store.get("pin") is not None

    def provision(self) -> None:
        """First start: write everything a new card holds in one transaction."""
        changes: Changes = {"serial": new_serial().to_bytes(SERIAL_LEN, "big")}
        changes |= self.factory_credentials()
        changes |= self.fresh_identity()
        if self.attestation:
            attest_key = ec.generate_private_key(ec.SECP256R1())
            changes |= self.key_change(
                KeyRef.ATTESTATION,
                KeyRecord.create(
                    attest_key, pin_policy=PinPolicy.NEVER, touch_policy=TouchPolicy.NEVER, origin=Origin.GENERATED
                ),
            )
            attest_cert = self_signed_certificate(attest_key, self.config.attestation_subject, ca=True)
            changes |= self.object_change(ObjectID.ATTESTATION_CERT, certificate_object(attest_cert))
        for spec in self.config.keys:
            key = generate_private_key(spec.algorithm)
            pin, touch = resolve_policies(spec.slot, spec.pin_policy, spec.touch_policy)
            record = KeyRecord.create(key, pin_policy=pin, touch_policy=touch, origin=Origin.GENERATED)
            changes |= self.key_change(spec.slot, record)
            if spec.self_signed_subject and not isinstance(key, x25519.X25519PrivateKey):
                cert = self_signed_certificate(key, spec.self_signed_subject)
                changes |= self.object_change(cert_object_for_slot(spec.slot), certificate_object(cert))
        self.store.put_many(changes)
        log.info("provisioned a new PIV applet with %d key(s) from the profile", len(self.config.keys))

    def factory_credentials(self) -> Changes:
        """PIN, PUK and management key as the profile sets them."""
        cfg = self.config
        return {
            **Credentials.record(KeyRef.PIN, Credential(cfg.pin, cfg.pin_retries, cfg.pin_retries)),
            **Credentials.record(KeyRef.PUK, Credential(cfg.puk, cfg.puk_retries, cfg.puk_retries)),
            "mgmt": bytes(cfg.management_key),
        }

    def fresh_identity(self) -> Changes:
        """A CHUID with a new random GUID, a CCC and the discovery object."""
        return {
            **self.object_change(ObjectID.CHUID, default_chuid()),
            **self.object_change(ObjectID.CCC, default_ccc()),
            **self.object_change(ObjectID.DISCOVERY, default_discovery()),
        }

    def wipe(self) -> Changes:
        """Changes that delete every key and object except the attestation key and its certificate."""
        keep = {_key_name(KeyRef.ATTESTATION), _object_name(ObjectID.ATTESTATION_CERT), "serial"}
        stored = self.store.keys()
        changes: Changes = {name: None for name in stored if name not in keep}
        return changes | self.factory_credentials() | self.fresh_identity()

    # -- reading ----------------------------------------------------------------
    @property
    def serial(self) -> int:
        raw = self.store.get("serial") or bytes(SERIAL_LEN)
        return int.from_bytes(raw, "big")

    def key(self, slot: int) -> KeyRecord | None:
        cached = self._cached(slot)
        return None if cached is None else cached.record

    def private_key(self, slot: int) -> SlotKey:
        """The slot's private key, parsed on first use (6A88 for an empty slot)."""
        cached = self._cached(slot)
        if cached is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {slot:02X}")
        if cached.key is None:
            cached.key = SlotKey(cached.record.private_key())
        return cached.key

    def _cached(self, slot: int) -> _CachedKey | None:
        raw = self.store.get(_key_name(slot))
        if raw is None:
            self._slots.pop(slot, None)
            return None
        cached = self._slots.get(slot)
        if cached is None or cached.raw != raw:  # the same bytes object while unchanged: an identity check
            cached = self._slots[slot] = _CachedKey(raw, KeyRecord.from_bytes(raw))
        return cached

    def get_object(self, tag: int) -> bytes | None:
        return self.store.get(_object_name(tag))

    # -- writing ----------------------------------------------------------------
    @staticmethod
    def key_change(slot: int, record: KeyRecord | None) -> Changes:
        return {_key_name(slot): None if record is None else bytes(record)}

    def put_key(self, slot: int, record: KeyRecord, key: PrivateKey) -> None:
        """Store ``record`` (key + metadata: one transaction) and keep ``key`` loaded for the slot."""
        raw = bytes(record)
        self.write({_key_name(slot): raw})
        self._slots[slot] = _CachedKey(raw, record, SlotKey(key))

    def move_key(self, source: int, target: int | None) -> None:
        """Move ``source``'s record (key and metadata) to ``target``, or delete it (None): one transaction.

        Certificates and other objects are not touched (YubiKey 5.7 MOVE KEY).
        6A88 when ``source`` is empty.
        """
        raw = self.store.get(_key_name(source))
        if raw is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {source:02X}")
        changes: Changes = {_key_name(source): None}
        if target is not None:
            changes[_key_name(target)] = raw
        self.write(changes)
        cached = self._slots.pop(source, None)
        if target is not None and cached is not None:
            self._slots[target] = cached  # the same stored bytes: the parsed key is still right

    @staticmethod
    def object_change(tag: int, value: bytes | None) -> Changes:
        return {_object_name(tag): value}

    def write(self, changes: Changes) -> None:
        """Commit ``changes`` in one transaction."""
        self.store.put_many(changes)


def _key_name(slot: int) -> str:
    return f"key/{slot:02x}"


def _object_name(tag: int) -> str:
    return f"obj/{tag:x}"
