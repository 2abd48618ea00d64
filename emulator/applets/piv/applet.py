"""The PIV applet: the SP 800-73-4 card edge plus the YubiKey vendor extensions.

yubico-piv-tool, yubikit/ykman and the YubiKey minidriver send these
commands to any PIV card that answers GET VERSION with a 5.x version; with
them the tools work unchanged against this card. EXTENSIONS.md describes
each one with its wire format.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import x25519

from ...iso7816 import SW, CardError, CommandAPDU, ResponseAPDU, encode_tlv, parse_tlvs
from ...store import Namespace
from ..base import CommandContext, Secret, command
from .certs import attestation_certificate, certificate_der
from .config import DEFAULT_MGMT_KEY, DEFAULT_PIN, DEFAULT_PUK, PIVConfig
from .consts import (
    ASYMMETRIC_SLOTS,
    INS,
    MGMT_ALGORITHMS,
    Algorithm,
    KeyRef,
    MetadataTag,
    Origin,
    PinPolicy,
    PIVTag,
    TouchPolicy,
)
from .credentials import MAX_RETRIES, Credential, Credentials, ManagementKey, pad_pin
from .edge import PIVCardEdge, SecureChannelService, key_policies
from .keys import KeyRecord, SigningKey, import_private_key, public_key_tlvs
from .objects import ObjectID
from .state import PIVState

if TYPE_CHECKING:  # personas.py imports this package: a runtime import would be circular
    from ...personas import Persona

__all__ = ["PIVApplet"]

log = logging.getLogger(__name__)

SERIAL_LEN = 4
_MGMT_NO_TOUCH = 0xFF
_MGMT_TOUCH = 0xFE
_IMPORT_SLOTS = (*ASYMMETRIC_SLOTS, KeyRef.ATTESTATION)
#: MOVE KEY P1 that deletes the key in P2 instead (YubiKey 5.7; yubikit ``PivSession.delete_key``)
_DELETE_KEY_P1 = 0xFF


class PIVApplet(PIVCardEdge):
    """PIV Card Application, instance AID A000000308000010000100."""

    def __init__(
        self,
        store: Namespace,
        config: PIVConfig,
        *,
        secure_channel: SecureChannelService | None = None,
        persona: Persona | None = None,
    ) -> None:
        super().__init__(PIVState(store, config), secure_channel=secure_channel, persona=persona)
        state = self.state
        state.attestation = self.persona.piv_attestation
        if not state.provisioned:
            state.provision()

    @classmethod
    def from_profile(
        cls,
        store: Namespace,
        section: dict[str, Any],
        *,
        secure_channel: object | None = None,
        persona: Persona | None = None,
    ) -> PIVApplet:
        """Build from a profile's [piv] section; the store's state wins over the profile."""
        service = secure_channel if isinstance(secure_channel, SecureChannelService) else None
        config = PIVConfig.from_profile(section, persona=persona)
        return cls(store, config, secure_channel=service, persona=persona)

    # -- identification ------------------------------------------------------------
    @command(INS.GET_VERSION)
    def get_version(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return ResponseAPDU(bytes(self.state.config.version))

    @command(INS.GET_SERIAL)
    def get_serial(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return ResponseAPDU(self.state.serial.to_bytes(SERIAL_LEN, "big"))

    # -- metadata ------------------------------------------------------------------
    @command(INS.GET_METADATA)
    def get_metadata(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """GET METADATA (P2 = key reference): algorithm, policy, origin, public key, default, retries."""
        if cmd.p1 != 0x00:
            raise CardError(SW.INCORRECT_P1P2, f"GET METADATA P1 {cmd.p1:02X}")
        ref = cmd.p2
        fields: list[tuple[int, bytes]]
        if ref in (KeyRef.PIN, KeyRef.PUK):
            cred = self.state.credentials.get(KeyRef(ref))
            default = pad_pin(DEFAULT_PIN if ref == KeyRef.PIN else DEFAULT_PUK)
            fields = [
                (MetadataTag.ALGORITHM, bytes((Algorithm.PIN,))),
                (MetadataTag.IS_DEFAULT, bytes((cred.value == default,))),
                (MetadataTag.RETRIES, bytes((cred.retries, cred.remaining))),
            ]
        elif ref == KeyRef.CARD_MANAGEMENT:
            mgmt = self.state.credentials.management_key()
            default_key = mgmt.algorithm is self.persona.piv_default_mgmt_algorithm and mgmt.key == bytes.fromhex(
                DEFAULT_MGMT_KEY
            )
            fields = [
                (MetadataTag.ALGORITHM, bytes((mgmt.algorithm,))),
                (MetadataTag.POLICY, bytes((PinPolicy.NEVER, mgmt.touch_policy))),
                (MetadataTag.IS_DEFAULT, bytes((default_key,))),
            ]
        elif ref in _IMPORT_SLOTS:
            record = self.state.key(ref)
            if record is None:
                raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {ref:02X}")
            public = self.state.private_key(ref).public_key()
            fields = [
                (MetadataTag.ALGORITHM, bytes((record.algorithm,))),
                (MetadataTag.POLICY, bytes((record.pin_policy, record.touch_policy))),
                (MetadataTag.ORIGIN, bytes((record.origin,))),
                (MetadataTag.PUBLIC_KEY, public_key_tlvs(public)),
            ]
        else:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"GET METADATA key reference {ref:02X}")
        return ResponseAPDU(b"".join(encode_tlv(tag, value) for tag, value in fields))

    # -- keys ----------------------------------------------------------------------
    @command(INS.IMPORT_ASYMMETRIC_KEY, secret=Secret.COMMAND)  # private key
    def import_key(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """IMPORT ASYMMETRIC KEY: P1 algorithm, P2 slot, data: key components + AA/AB policies."""
        if cmd.p2 not in _IMPORT_SLOTS:
            raise CardError(SW.INCORRECT_P1P2, f"IMPORT slot {cmd.p2:02X}")
        if cmd.p1 not in self.persona.piv_key_algorithms:
            raise CardError(SW.INCORRECT_P1P2, f"IMPORT algorithm {cmd.p1:02X}")
        if cmd.p2 == KeyRef.ATTESTATION and cmd.p1 == Algorithm.X25519:
            raise CardError(SW.INCORRECT_P1P2, "the attestation key must sign; X25519 only agrees")
        self.require_mgmt(ctx)
        policies = {t.tag: t.value for t in parse_tlvs(cmd.data)}
        pin, touch = key_policies(cmd.p2, policies.get(PIVTag.PIN_POLICY), policies.get(PIVTag.TOUCH_POLICY))
        key = import_private_key(Algorithm(cmd.p1), cmd.data)
        record = KeyRecord.create(key, pin_policy=pin, touch_policy=touch, origin=Origin.IMPORTED)
        self.state.put_key(cmd.p2, record, key)  # key + metadata: one transaction
        log.info("imported a %s key into slot %02X", record.algorithm.name, cmd.p2)
        return ResponseAPDU()

    @command(INS.MOVE_KEY)
    def move_key(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """MOVE KEY (YubiKey 5.7): P1 target slot, P2 source slot; P1 FF deletes the key in P2.

        Needs the management key. The key travels with its metadata (algorithm,
        PIN/touch policy, origin) in one transaction; certificates stay where
        they are. As Yubico documents it (yubico-piv-tool ``ykpiv_move_key``,
        .NET SDK ``MoveKeyCommand``): the attestation key F9 cannot be moved (it
        can be deleted) and the target slot must be empty (else 6985).
        """
        deleting = cmd.p1 == _DELETE_KEY_P1
        target_ok = deleting or (cmd.p1 in ASYMMETRIC_SLOTS and cmd.p1 != cmd.p2)
        if cmd.p2 not in _IMPORT_SLOTS or not target_ok or (cmd.p2 == KeyRef.ATTESTATION and not deleting):
            raise CardError(SW.INCORRECT_P1P2, f"MOVE KEY P1P2 {cmd.p1:02X}{cmd.p2:02X}")
        if cmd.data:
            raise CardError(SW.WRONG_LENGTH, "MOVE KEY takes no data")
        self.require_mgmt(ctx)
        if self.state.key(cmd.p2) is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {cmd.p2:02X}")
        if deleting:
            self.state.move_key(cmd.p2, None)
            log.info("deleted the key in slot %02X", cmd.p2)
            return ResponseAPDU()
        if self.state.key(cmd.p1) is not None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, f"slot {cmd.p1:02X} already holds a key")
        self.state.move_key(cmd.p2, cmd.p1)
        log.info("moved the key in slot %02X to slot %02X", cmd.p2, cmd.p1)
        return ResponseAPDU()

    @command(INS.ATTEST)
    def attest(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """ATTEST (P1 = slot): an X.509 certificate for a generated key, signed by slot F9."""
        if cmd.p2 != 0x00 or cmd.p1 not in ASYMMETRIC_SLOTS:
            raise CardError(SW.INCORRECT_P1P2, f"ATTEST P1P2 {cmd.p1:02X}{cmd.p2:02X}")
        record = self.state.key(cmd.p1)
        if record is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {cmd.p1:02X}")
        if record.origin is not Origin.GENERATED:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "only generated keys can be attested")
        signer = self.state.key(KeyRef.ATTESTATION)
        # the F9 certificate may have been replaced by any object, compressed or not (certs.py)
        signer_cert = certificate_der(self.state.get_object(ObjectID.ATTESTATION_CERT))
        if signer is None or signer_cert is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "no attestation key or readable certificate")
        signer_key = self.state.private_key(KeyRef.ATTESTATION).key
        if isinstance(signer_key, x25519.X25519PrivateKey):  # pragma: no cover - IMPORT refuses it
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the attestation key cannot sign")
        try:
            der = self._attestation(cmd.p1, record, signer_key, signer_cert)
        except ValueError:  # the F9 object holds bytes that are no certificate
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "the attestation certificate is unreadable") from None
        return ResponseAPDU(der)

    def _attestation(self, slot: int, record: KeyRecord, signer_key: SigningKey, signer_cert: bytes) -> bytes:
        return attestation_certificate(
            signer=signer_key,
            signer_cert=signer_cert,
            subject_key=self.state.private_key(slot).public_key(),
            slot=slot,
            pin_policy=record.pin_policy,
            touch_policy=record.touch_policy,
            serial=self.state.serial,
            version=self.state.config.version,
        )

    # -- credentials -----------------------------------------------------------------
    @command(INS.SET_MANAGEMENT_KEY, secret=Secret.COMMAND)  # the new key
    def set_management_key(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """SET MANAGEMENT KEY: P2 FF (no touch) / FE (touch); data: alg, 9B, length, key."""
        touch_bytes = (_MGMT_NO_TOUCH, _MGMT_TOUCH)
        if cmd.p1 not in touch_bytes or cmd.p2 not in touch_bytes:
            raise CardError(SW.INCORRECT_P1P2, f"SET MANAGEMENT KEY P1P2 {cmd.p1:02X}{cmd.p2:02X}")
        self.require_mgmt(ctx)
        if len(cmd.data) < 3 or cmd.data[0] not in MGMT_ALGORITHMS:
            raise CardError(SW.WRONG_DATA, "expected algorithm, 9B, length, key")
        items = parse_tlvs(cmd.data[1:])
        if len(items) != 1 or items[0].tag != KeyRef.CARD_MANAGEMENT:
            raise CardError(SW.WRONG_DATA, "expected one 9B key")
        touch = TouchPolicy.ALWAYS if _MGMT_TOUCH in (cmd.p1, cmd.p2) else TouchPolicy.NEVER
        try:
            key = ManagementKey(Algorithm(cmd.data[0]), items[0].value, touch)
        except ValueError:
            raise CardError(SW.WRONG_DATA, "management key length does not fit the algorithm") from None
        self.state.write({"mgmt": bytes(key)})
        log.info("management key changed (%s)", key.algorithm.name)
        return ResponseAPDU()

    @command(INS.SET_PIN_RETRIES)
    def set_pin_retries(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """SET PIN RETRIES (P1 PIN tries, P2 PUK tries): also resets PIN and PUK to the profile's."""
        st = self.status(ctx)
        self.require_mgmt(ctx)
        if not st.pin_verified:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "SET PIN RETRIES needs the PIN verified")
        if not (1 <= cmd.p1 <= MAX_RETRIES and 1 <= cmd.p2 <= MAX_RETRIES):
            raise CardError(SW.INCORRECT_P1P2, f"retries must be 1-{MAX_RETRIES}")
        cfg = self.state.config
        changes = Credentials.record(KeyRef.PIN, Credential(cfg.pin, cmd.p1, cmd.p1))
        changes |= Credentials.record(KeyRef.PUK, Credential(cfg.puk, cmd.p2, cmd.p2))
        self.state.write(changes)
        st.pin_verified = st.pin_always = False
        log.info("PIN/PUK retries set to %d/%d; PIN and PUK reset", cmd.p1, cmd.p2)
        return ResponseAPDU()

    @command(INS.RESET)
    def reset_applet(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """RESET: only with PIN and PUK both blocked; wipes keys and objects, restores credentials."""
        creds = self.state.credentials
        if not (creds.get(KeyRef.PIN).blocked and creds.get(KeyRef.PUK).blocked):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "RESET needs PIN and PUK blocked")
        self.state.write(self.state.wipe())
        self._status.clear()
        log.info("PIV applet reset to factory state")
        return ResponseAPDU()


