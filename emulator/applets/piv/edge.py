"""The PIV card edge of NIST SP 800-73-4 part 2 §3: the standard commands.

:class:`PIVCardEdge` answers SELECT, GET/PUT DATA, VERIFY, CHANGE
REFERENCE DATA, RESET RETRY COUNTER, GENERAL AUTHENTICATE and GENERATE
ASYMMETRIC KEY PAIR, and hands INITIALIZE UPDATE / EXTERNAL AUTHENTICATE
to the ISD's secure channel service (GP API ``SecureChannel``; design.md).
The YubiKey vendor commands live in the subclass :class:`~.applet.PIVApplet`.

Security status is per logical channel and transient: a ``reset()`` or a
``deselect()`` drops it.
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from ...gp.scp11_service import SCP11INS
from ...iso7816 import SW, TLV, CardError, CommandAPDU, ResponseAPDU, encode_tlv, parse_tlvs
from ..base import Applet, CommandContext, Secret, command
from ..isd import ISD_AID
from .consts import (
    ASYMMETRIC_SLOTS,
    CURVE25519_ALGORITHMS,
    EC_ALGORITHMS,
    INS,
    MGMT_ALGORITHMS,
    PIN_LEN,
    PIV_AID,
    PIV_RID,
    RSA_ALGORITHMS,
    VENDOR_INS,
    Algorithm,
    KeyRef,
    Origin,
    PinPolicy,
    PIVTag,
    TouchPolicy,
)
from .credentials import Credential, Credentials, check_pin_format
from .keys import KeyRecord, generate_private_key, public_key_tlvs
from .objects import MAX_OBJECT_LEN, ObjectID, ReadAccess, is_valid_object, read_access
from .scp_rights import has_issuer_rights
from .state import Changes, PendingAuth, PIVState, SecurityStatus, resolve_policies

if TYPE_CHECKING:  # personas.py imports this package: a runtime import would be circular
    from ...personas import Persona

__all__ = ["KEY_ALGORITHMS", "PIVCardEdge", "SecureChannelService", "key_policies"]

log = logging.getLogger(__name__)

_ALL_DATA_P1P2 = (0x3F, 0xFF)  #: P1 P2 of GET DATA / PUT DATA (part 2 §3.1.2)
_RESET_STATUS_P1 = 0xFF  #: VERIFY P1 FF: reset the security status (part 2 §3.2.1)
#: asymmetric algorithms the key slots implement; the persona says which a card offers
KEY_ALGORITHMS = frozenset((*RSA_ALGORITHMS, *EC_ALGORITHMS, *CURVE25519_ALGORITHMS))
_Policy = TypeVar("_Policy", PinPolicy, TouchPolicy)
_ALGORITHM_ORDER = (*RSA_ALGORITHMS, *EC_ALGORITHMS, *CURVE25519_ALGORITHMS)


@runtime_checkable
class SecureChannelService(Protocol):
    """The ISD's secure channel, offered to applications (emulator/gp/service.py)."""

    def initialize_update(self, cmd: CommandAPDU, ctx: CommandContext, *, sd_aid: bytes) -> ResponseAPDU:
        """Start a session on ``ctx``'s channel with the keys of the security domain ``sd_aid``."""
        ...

    def external_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """Finish ``ctx.session`` (6985 without one); a failure ends the session."""
        ...


@runtime_checkable
class SCP11Capable(Protocol):
    """A secure channel service that also opens SCP11 sessions (emulator/gp/service.py)."""

    def scp11_command(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """SCP11 PERFORM SECURITY OPERATION / INTERNAL AUTHENTICATE (Amd F §7); 6D00 without SCP11."""
        ...


def _get_data_secret(cmd: CommandAPDU) -> Secret:
    """GET DATA of a PIN-protected object (part 1 Table 3) answers secret data."""
    try:
        tag = int.from_bytes(single_tlv(cmd.data, PIVTag.TAG_LIST).value, "big")
    except CardError:
        return Secret.NONE
    return Secret.RESPONSE if read_access(tag) is ReadAccess.PIN else Secret.NONE


def single_tlv(data: bytes, tag: int) -> TLV:
    """The command data as exactly one ``tag`` TLV, else 6A80."""
    items = parse_tlvs(data)
    if len(items) != 1 or items[0].tag != tag:
        raise CardError(SW.WRONG_DATA, f"expected one {tag:X} template")
    return items[0]


def children(template: TLV) -> dict[int, bytes]:
    """Children of a template by tag; a tag present twice is 6A80."""
    out: dict[int, bytes] = {}
    for item in template.children():
        if item.tag in out:
            raise CardError(SW.WRONG_DATA, f"tag {item.tag:X} twice")
        out[item.tag] = item.value
    return out


def _policy_byte(raw: bytes | None, kind: type[_Policy]) -> _Policy:
    if raw is None:
        return kind(0)
    if len(raw) != 1:
        raise CardError(SW.WRONG_DATA, f"{kind.__name__} is one byte")
    try:
        return kind(raw[0])
    except ValueError:
        raise CardError(SW.WRONG_DATA, f"{kind.__name__} {raw[0]:02X}") from None


def key_policies(slot: int, pin: bytes | None, touch: bytes | None) -> tuple[PinPolicy, TouchPolicy]:
    """PIN and touch policy of a new key from tags AA / AB (absent or 00: the slot's default)."""
    return resolve_policies(slot, _policy_byte(pin, PinPolicy), _policy_byte(touch, TouchPolicy))


class PIVCardEdge(Applet):
    name = "piv"

    def __init__(
        self, state: PIVState, *, secure_channel: SecureChannelService | None = None, persona: Persona | None = None
    ) -> None:
        super().__init__(PIV_AID)
        if persona is None:
            from ...personas import DEFAULT_PERSONA  # here: personas.py imports this package

            persona = DEFAULT_PERSONA
        self.state = state
        self.secure_channel = secure_channel
        #: the switches of emulator/personas.py: vendor instructions, algorithms, policies
        self.persona = persona
        self._status: dict[int, SecurityStatus] = {}
        #: algorithms announced in the application property template: management, then the slots'
        self._advertised = (*MGMT_ALGORITHMS, *(a for a in _ALGORITHM_ORDER if a in persona.piv_key_algorithms))

    # -- transient state -------------------------------------------------------
    def status(self, ctx: CommandContext) -> SecurityStatus:
        return self._status.setdefault(ctx.channel, SecurityStatus())

    def reset(self) -> None:
        self._status.clear()

    def deselect(self, channel: int) -> None:
        self._status.pop(channel, None)

    def process(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """Dispatch; a "PIN Always" verification lasts exactly one following command.

        SP 800-73-4 part 1 §3.3.3: the PIN must be verified immediately before
        each use of such a key, so any command but VERIFY ends it (yubico-piv-tool
        relies on this to drop it with an arbitrary GET DATA).
        """
        st = self.status(ctx)
        if cmd.ins in VENDOR_INS and not self.persona.piv_answers(cmd.ins):
            st.pin_always = False
            raise CardError(SW.INS_NOT_SUPPORTED, f"INS {cmd.ins:02X} is not offered by persona {self.persona.name}")
        try:
            return super().process(cmd, ctx)
        finally:
            if cmd.ins != INS.VERIFY:
                st.pin_always = False

    def require_mgmt(self, ctx: CommandContext) -> None:
        """Management-key rights: 9B authenticated, or an issuer secure channel (scp_rights.py)."""
        if not self.status(ctx).mgmt_authenticated and not has_issuer_rights(ctx):
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "card management key not authenticated")

    # -- SELECT (part 2 §3.1.1) --------------------------------------------------
    def select(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        algorithms = b"".join(encode_tlv(PIVTag.ALGORITHM, bytes((a,))) for a in self._advertised)
        body = [
            encode_tlv(PIVTag.AID, PIV_AID[len(PIV_RID) :]),
            encode_tlv(PIVTag.COEXISTENT_TAG_ALLOCATION_AUTHORITY, encode_tlv(PIVTag.AID, PIV_RID)),
        ]
        if self.state.config.label:
            body.append(encode_tlv(PIVTag.APPLICATION_LABEL, self.state.config.label.encode()))
        body.append(encode_tlv(PIVTag.CRYPTOGRAPHIC_ALGORITHMS, algorithms + encode_tlv(PIVTag.OID, b"")))
        return ResponseAPDU(encode_tlv(PIVTag.APPLICATION_PROPERTY_TEMPLATE, body))

    # -- data objects (part 2 §3.1.2, §3.3.2) -------------------------------------
    @command(INS.GET_DATA, secret=_get_data_secret)  # PIN-protected objects answer secrets
    def get_data(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        if (cmd.p1, cmd.p2) != _ALL_DATA_P1P2:
            raise CardError(SW.INCORRECT_P1P2, "GET DATA takes P1P2 3FFF")
        tag_list = single_tlv(cmd.data, PIVTag.TAG_LIST).value
        if not 1 <= len(tag_list) <= 3:
            raise CardError(SW.WRONG_DATA, "object tag must be 1-3 bytes")
        tag = int.from_bytes(tag_list, "big")
        if not is_valid_object(tag):
            raise CardError(SW.FILE_NOT_FOUND, f"no object {tag:X}")
        if read_access(tag) is ReadAccess.PIN and not self.status(ctx).pin_verified:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, f"object {tag:X} needs the PIN")
        value = self.state.get_object(tag)
        if value is None:
            raise CardError(SW.FILE_NOT_FOUND, f"object {tag:X} is empty")
        wrapper = PIVTag.DISCOVERY if tag == ObjectID.DISCOVERY else PIVTag.DATA
        return ResponseAPDU(encode_tlv(wrapper, value))

    @command(INS.PUT_DATA, secret=Secret.COMMAND)  # e.g. the PIN-protected object holding a key
    def put_data(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """PUT DATA: ``5C tag 53 content`` (``7E content`` for discovery); empty content deletes."""
        if (cmd.p1, cmd.p2) != _ALL_DATA_P1P2:
            raise CardError(SW.INCORRECT_P1P2, "PUT DATA takes P1P2 3FFF")
        self.require_mgmt(ctx)
        items = parse_tlvs(cmd.data)
        if len(items) == 1 and items[0].tag == PIVTag.DISCOVERY:
            tag, value = int(ObjectID.DISCOVERY), items[0].value
        elif len(items) == 2 and (items[0].tag, items[1].tag) == (PIVTag.TAG_LIST, PIVTag.DATA):
            if not 1 <= len(items[0].value) <= 3:
                raise CardError(SW.WRONG_DATA, "object tag must be 1-3 bytes")
            tag, value = int.from_bytes(items[0].value, "big"), items[1].value
        else:
            raise CardError(SW.WRONG_DATA, "PUT DATA expects 5C + 53 or 7E")
        if not is_valid_object(tag):
            raise CardError(SW.WRONG_DATA, f"object {tag:X} cannot be written")
        if len(value) > MAX_OBJECT_LEN:
            raise CardError(SW.NOT_ENOUGH_MEMORY, f"object of {len(value)} bytes")
        self.state.write(self.state.object_change(tag, value or None))
        log.debug("object %X %s", tag, "written" if value else "deleted")
        return ResponseAPDU()

    # -- PIN and PUK (part 2 §3.2.1-3.2.3) ---------------------------------------
    @command(INS.VERIFY, secret=Secret.COMMAND)  # the PIN
    def verify(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        st = self.status(ctx)
        if cmd.p2 != KeyRef.PIN:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"VERIFY key reference {cmd.p2:02X}")
        if cmd.p1 == _RESET_STATUS_P1:
            if cmd.data:
                raise CardError(SW.WRONG_LENGTH, "VERIFY P1 FF takes no data")
            st.pin_verified = st.pin_always = False
            return ResponseAPDU()
        if cmd.p1 != 0x00:
            raise CardError(SW.INCORRECT_P1P2, f"VERIFY P1 {cmd.p1:02X}")
        if not cmd.data:  # status query: spends no try
            if st.pin_verified:
                return ResponseAPDU()
            raise CardError(self.state.credentials.status(KeyRef.PIN), "PIN status")
        if len(cmd.data) != PIN_LEN:
            raise CardError(SW.WRONG_DATA, "the PIN is sent padded to 8 bytes")
        st.pin_verified = st.pin_always = False  # a failed VERIFY leaves the PIN unverified
        self.state.credentials.check(KeyRef.PIN, cmd.data)
        st.pin_verified = st.pin_always = True
        log.debug("PIN verified on channel %d", ctx.channel)
        return ResponseAPDU()

    @command(INS.CHANGE_REFERENCE_DATA, secret=Secret.COMMAND)  # old and new PIN/PUK
    def change_reference_data(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        ref, old, new = self._old_and_new(cmd, "CHANGE REFERENCE DATA", (KeyRef.PIN, KeyRef.PUK))
        st = self.status(ctx)
        if ref is KeyRef.PIN:
            st.pin_verified = st.pin_always = False
        self._replace_value(ref, old, ref, new)
        if ref is KeyRef.PIN:
            st.pin_verified = True
        log.info("%s changed", ref.name)
        return ResponseAPDU()

    @command(INS.RESET_RETRY_COUNTER, secret=Secret.COMMAND)  # PUK and new PIN
    def reset_retry_counter(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """Unblock the PIN with the PUK and set a new PIN (part 2 §3.2.3)."""
        _, puk, new_pin = self._old_and_new(cmd, "RESET RETRY COUNTER", (KeyRef.PIN,))
        st = self.status(ctx)
        st.pin_verified = st.pin_always = False
        self._replace_value(KeyRef.PUK, puk, KeyRef.PIN, new_pin)
        log.info("PIN reset with the PUK")
        return ResponseAPDU()

    def _replace_value(self, check: KeyRef, presented: bytes, target: KeyRef, new: bytes) -> None:
        """Check ``presented`` against ``check``; on a match ``target`` gets ``new``, all tries restored.

        The new value's format is checked only after a match (a wrong old value
        spends a try whatever the new one is), in the transaction of the match.
        """
        retries = self.state.credentials.get(target).retries

        def new_value(_: Credential) -> Changes:
            check_pin_format(new, digits_only=target is KeyRef.PIN)
            return Credentials.record(target, Credential(new, retries, retries))

        self.state.credentials.check(check, presented, on_match=new_value)

    @staticmethod
    def _old_and_new(cmd: CommandAPDU, name: str, refs: tuple[KeyRef, ...]) -> tuple[KeyRef, bytes, bytes]:
        """P1 00, P2 one of ``refs``, data two padded values (part 2 §3.2.2, §3.2.3)."""
        if cmd.p1 != 0x00:
            raise CardError(SW.INCORRECT_P1P2, f"{name} P1 {cmd.p1:02X}")
        if cmd.p2 not in refs:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"key reference {cmd.p2:02X}")
        if len(cmd.data) != 2 * PIN_LEN:
            raise CardError(SW.WRONG_DATA, "expected two values of 8 bytes")
        return KeyRef(cmd.p2), cmd.data[:PIN_LEN], cmd.data[PIN_LEN:]

    # -- GENERAL AUTHENTICATE (part 2 §3.2.4, Appendix A) -----------------------------
    @command(INS.GENERAL_AUTHENTICATE, secret=Secret.BOTH)  # witness/challenge/response, signatures
    def general_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        items = children(single_tlv(cmd.data, PIVTag.DYNAMIC_AUTH_TEMPLATE))
        st = self.status(ctx)
        if cmd.p2 == KeyRef.CARD_MANAGEMENT:
            return self._authenticate_mgmt(cmd.p1, items, st)
        if cmd.p2 not in ASYMMETRIC_SLOTS:
            raise CardError(SW.INCORRECT_P1P2, f"GENERAL AUTHENTICATE key reference {cmd.p2:02X}")
        return self._use_private_key(cmd.p1, cmd.p2, items, st)

    def _authenticate_mgmt(self, alg: int, items: dict[int, bytes], st: SecurityStatus) -> ResponseAPDU:
        """Witness (mutual) or challenge (external) authentication with the 9B key."""
        key = self.state.credentials.management_key()
        if alg != key.algorithm:
            raise CardError(SW.INCORRECT_P1P2, f"management key is {key.algorithm.name}, not {alg:02X}")
        size = key.block_size
        witness = items.get(PIVTag.WITNESS)
        challenge = items.get(PIVTag.CHALLENGE)
        response = items.get(PIVTag.RESPONSE)

        def answer(tag: int, value: bytes) -> ResponseAPDU:
            return ResponseAPDU(encode_tlv(PIVTag.DYNAMIC_AUTH_TEMPLATE, encode_tlv(tag, value)))

        if witness == b"" and challenge is None and response is None:  # mutual, step 1
            st.pending, st.expected = PendingAuth.WITNESS, os.urandom(size)
            return answer(PIVTag.WITNESS, key.encrypt(st.expected))
        if witness:  # mutual, step 2: host decrypted our witness and challenges us
            ok = st.pending is PendingAuth.WITNESS and hmac.compare_digest(witness, st.expected)
            st.end_exchange()
            if not ok or challenge is None or len(challenge) != size:
                st.mgmt_authenticated = False
                raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "management key witness mismatch")
            st.mgmt_authenticated = True
            log.debug("management key authenticated (mutual)")
            return answer(PIVTag.RESPONSE, key.encrypt(challenge))
        if challenge == b"" and response is None and witness is None:  # external, step 1
            nonce = os.urandom(size)
            st.pending, st.expected = PendingAuth.CHALLENGE, key.encrypt(nonce)
            return answer(PIVTag.CHALLENGE, nonce)
        if response and witness is None and challenge is None:  # external, step 2
            ok = st.pending is PendingAuth.CHALLENGE and hmac.compare_digest(response, st.expected)
            st.end_exchange()
            st.mgmt_authenticated = ok
            if not ok:
                raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "management key response mismatch")
            log.debug("management key authenticated (challenge)")
            return ResponseAPDU()
        if challenge and response == b"" and len(challenge) == size:  # internal: the card proves the key
            return answer(PIVTag.RESPONSE, key.encrypt(challenge))
        st.end_exchange()
        raise CardError(SW.WRONG_DATA, "unexpected dynamic authentication template")

    def _use_private_key(self, alg: int, slot: int, items: dict[int, bytes], st: SecurityStatus) -> ResponseAPDU:
        record = self.state.key(slot)
        if record is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {slot:02X}")
        if alg != record.algorithm:
            raise CardError(SW.INCORRECT_P1P2, f"slot {slot:02X} holds {record.algorithm.name}, not {alg:02X}")
        self._check_pin_policy(record, st)
        if items.get(PIVTag.RESPONSE) != b"":
            raise CardError(SW.WRONG_DATA, "expected an empty response tag 82")
        key = self.state.private_key(slot)
        point = items.get(PIVTag.EXPONENTIATION)
        challenge = items.get(PIVTag.CHALLENGE)
        if point is not None and not key.is_rsa:
            result = key.ecdh(point)
        elif challenge and key.is_rsa:
            result = key.rsa_private_operation(challenge)
        elif challenge:
            result = key.sign(challenge)  # ECDSA over the host's digest; Ed25519 over the message
        else:
            raise CardError(SW.WRONG_DATA, "expected 81 challenge, or 85 peer point for an EC/X25519 key")
        log.debug("private key operation with slot %02X", slot)
        body = encode_tlv(PIVTag.RESPONSE, result)
        return ResponseAPDU(encode_tlv(PIVTag.DYNAMIC_AUTH_TEMPLATE, body))

    @staticmethod
    def _check_pin_policy(record: KeyRecord, st: SecurityStatus) -> None:
        if record.pin_policy is PinPolicy.ALWAYS:
            allowed = st.pin_always  # VERIFY was the command just before (see process)
        else:
            allowed = record.pin_policy is PinPolicy.NEVER or st.pin_verified
        if not allowed:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, f"key needs the PIN ({record.pin_policy.name})")

    # -- GENERATE ASYMMETRIC KEY PAIR (part 2 §3.3.2) ---------------------------------
    @command(INS.GENERATE_ASYMMETRIC_KEY_PAIR)
    def generate_key_pair(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        if cmd.p1 != 0x00 or cmd.p2 not in ASYMMETRIC_SLOTS:
            raise CardError(SW.INCORRECT_P1P2, f"GENERATE P1P2 {cmd.p1:02X}{cmd.p2:02X}")
        self.require_mgmt(ctx)
        items = children(single_tlv(cmd.data, PIVTag.CRYPTOGRAPHIC_ALGORITHMS))
        raw_alg = items.get(PIVTag.ALGORITHM, b"")
        if len(raw_alg) != 1 or raw_alg[0] not in self.persona.piv_key_algorithms:
            raise CardError(SW.WRONG_DATA, "unsupported algorithm")
        if not self.persona.piv_key_policies and {PIVTag.PIN_POLICY, PIVTag.TOUCH_POLICY} & items.keys():
            raise CardError(SW.WRONG_DATA, "PIN/touch policy tags AA/AB are a vendor extension")
        pin, touch = key_policies(cmd.p2, items.get(PIVTag.PIN_POLICY), items.get(PIVTag.TOUCH_POLICY))
        alg = Algorithm(raw_alg[0])
        key = generate_private_key(alg)
        record = KeyRecord.create(key, pin_policy=pin, touch_policy=touch, origin=Origin.GENERATED, algorithm=alg)
        self.state.put_key(cmd.p2, record, key)  # key + metadata: one transaction
        log.debug("generated a %s key in slot %02X", alg.name, cmd.p2)
        return ResponseAPDU(encode_tlv(PIVTag.PUBLIC_KEY_TEMPLATE, public_key_tlvs(key.public_key())))

    # -- secure channel, delegated to the ISD (design.md) ------------------------------
    @command(INS.INITIALIZE_UPDATE, secret=Secret.BOTH)  # host challenge; card cryptogram
    def initialize_update(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        if not cmd.proprietary:
            raise CardError(SW.INS_NOT_SUPPORTED, "INITIALIZE UPDATE needs CLA 80")
        if self.secure_channel is None:
            raise CardError(SW.INS_NOT_SUPPORTED, "no secure channel service on this card")
        return self.secure_channel.initialize_update(cmd, ctx, sd_aid=ISD_AID)

    @command(INS.EXTERNAL_AUTHENTICATE, secret=Secret.COMMAND)  # host cryptogram
    def external_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        if not cmd.proprietary:
            raise CardError(SW.INS_NOT_SUPPORTED, "EXTERNAL AUTHENTICATE needs CLA 84")
        if ctx.session is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "EXTERNAL AUTHENTICATE without INITIALIZE UPDATE")
        if self.secure_channel is None:  # pragma: no cover - a session needs the service
            return ctx.session.external_authenticate(cmd)
        return self.secure_channel.external_authenticate(cmd, ctx)

    # SCP11 (Amd F): PIV over SCP11b/a/c as over SCP03, the ISD's SCP11 service does the work
    @command(SCP11INS.PERFORM_SECURITY_OPERATION)
    def perform_security_operation(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return self._scp11(cmd, ctx)

    @command(SCP11INS.INTERNAL_AUTHENTICATE, secret=Secret.RESPONSE)  # receipt
    def internal_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return self._scp11(cmd, ctx)

    def _scp11(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        if not isinstance(self.secure_channel, SCP11Capable):
            raise CardError(SW.INS_NOT_SUPPORTED, "no SCP11 on this card")
        return self.secure_channel.scp11_command(cmd, ctx)
