"""The container model of a PIV card: key slots <-> container indexes, usage, names, PINs.

minidriver-spec.md §6. A PIV card has 24 asymmetric key slots (9A, 9C, 9D, 9E, 82..95); each
slot that holds a key is one Base CSP container.

**Index choice (ours, not OpenSC's).** OpenSC packs the present keys in slot order, so a
container's index shifts when a slot before it is emptied or filled. We give every slot a FIXED
index: 0=9A, 1=9C, 2=9D, 3=9E, 4..23=82..95 (= OpenSC's key id - 1). The index is then stable
while slots come and go, ``mscp/cmapfile`` always has 24 records (an empty slot is an all-zero
record, as the spec wants for a deleted container) and CardCreateContainer(index) knows which
slot to generate in. On a card with every slot in use both orders agree.

Everything here is a pure function of what was read from the card, except :func:`read_card`
(through a :class:`~minidriver.piv.PivSession`) and the per-context :class:`CardModel` cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..iso7816 import SW, ApduError, BadResponseError, find_tlv
from ..piv import RSA_BITS, Algorithm, ObjectId, PinPolicy, PivSession, SlotMetadata, certificate_object
from .binding import session
from .context import context_of
from .structs import ContainerMapRecord
from .types import CardData, KeySpec, PinId

__all__ = [
    "CONTAINER_MAP_DEFAULT_CONTAINER",
    "CONTAINER_MAP_VALID_CONTAINER",
    "MAX_CONTAINERS",
    "PIN_PUK",
    "PIN_SIGN",
    "SLOTS",
    "CardIdentity",
    "CardModel",
    "Container",
    "CoreState",
    "KeyInfo",
    "card_id",
    "cert_file_name",
    "cert_object_for_index",
    "certificate_of",
    "cmap_records",
    "container",
    "container_guid",
    "containers",
    "core_state",
    "default_index",
    "index_for_slot",
    "key_changed",
    "key_id",
    "key_info",
    "parse_chuid",
    "read_card",
    "read_identity",
    "read_slot",
    "slot_for_index",
]

#: container index -> PIV key reference (fixed, see the module docstring)
SLOTS: tuple[int, ...] = (0x9A, 0x9C, 0x9D, 0x9E, *range(0x82, 0x96))
MAX_CONTAINERS = len(SLOTS)  # 24

CONTAINER_MAP_VALID_CONTAINER = 0x01
CONTAINER_MAP_DEFAULT_CONTAINER = 0x02

#: PIN ids beyond ROLE_USER/ROLE_ADMIN (§3.3, 3..7 are free): the PIV PIN again for "PIN always"
#: keys (OpenSC's "sign PIN", PinCacheAlwaysPrompt) and the PUK (UnblockOnlyPin). ROLE_ADMIN is
#: the card management key 9B (challenge/response).
PIN_SIGN = 3
PIN_PUK = 4

#: SP 800-73-4 defaults when the card has no metadata (YubiKey EXTENSIONS.md: 9C always, 9E never)
_DEFAULT_PIN_POLICY = {0x9C: PinPolicy.ALWAYS, 0x9E: PinPolicy.NEVER}
_EC_ALGORITHMS = {"secp256r1": Algorithm.ECCP256, "secp384r1": Algorithm.ECCP384}
_EC_BITS = {Algorithm.ECCP256: 256, Algorithm.ECCP384: 384}
_ECDSA = {Algorithm.ECCP256: KeySpec.AT_ECDSA_P256, Algorithm.ECCP384: KeySpec.AT_ECDSA_P384}
_ECDHE = {Algorithm.ECCP256: KeySpec.AT_ECDHE_P256, Algorithm.ECCP384: KeySpec.AT_ECDHE_P384}
_ABSENT = (SW.FILE_NOT_FOUND, SW.REFERENCED_DATA_NOT_FOUND)


def slot_for_index(index: int) -> int | None:
    """The PIV key reference of container ``index``, None outside 0..23."""
    return SLOTS[index] if 0 <= index < MAX_CONTAINERS else None


def index_for_slot(slot: int) -> int:
    """The container index of a PIV key reference (ValueError for a non-key reference)."""
    try:
        return SLOTS.index(slot)
    except ValueError:
        raise ValueError(f"{slot:#04x} is not a PIV key slot") from None


def key_id(slot: int) -> int:
    """OpenSC's PKCS#15 key id of a slot: 1..4 for 9A/9C/9D/9E, 5..24 for 82..95."""
    return index_for_slot(slot) + 1


# -- card identity (CHUID) ---------------------------------------------------------------------
@dataclass(frozen=True)
class CardIdentity:
    """What the CHUID (5FC102) says about the card: GUID (tag 34) and FASC-N (tag 30)."""

    guid: bytes = b""
    fascn: bytes = b""

    @property
    def serial(self) -> bytes:
        """OpenSC's rule (§6): the FASC-N, unless it is absent/zero or a non-federal (agency 9999)
        one beside a non-zero GUID; then the GUID; neither -> empty."""
        guid_ok = len(self.guid) == 16 and any(self.guid)
        fascn_ok = bool(self.fascn) and any(self.fascn)
        if fascn_ok and not (guid_ok and fascn_agency(self.fascn) == "9999"):
            return self.fascn
        return self.guid if guid_ok else b""


def parse_chuid(content: bytes) -> CardIdentity:
    """The GUID and FASC-N of a CHUID's content (inside 53); missing tags give empty values."""
    try:
        guid, fascn = find_tlv(content, 0x34), find_tlv(content, 0x30)
    except (ValueError, BadResponseError):
        return CardIdentity()
    return CardIdentity(guid.value if guid else b"", fascn.value if fascn else b"")


def fascn_agency(fascn: bytes) -> str:
    """The 4-digit agency code of a FASC-N (SP 800-73-4 part 1 §3.1.2: 5-bit BCD, LSB first)."""
    bits = "".join(f"{b:08b}" for b in fascn)
    digits = []
    for i in range(5, 25, 5):  # characters 1..4 follow the start sentinel
        group = bits[i : i + 5]
        if len(group) < 5:
            return ""
        digits.append(str(int(group[3::-1], 2)))
    return "".join(digits)


def card_id(identity: CardIdentity) -> bytes:
    """``cardid``/CP_CARD_GUID: the serial repeated/truncated to 16 bytes (OpenSC; zero if none)."""
    serial = identity.serial
    if not serial:
        return bytes(16)
    return (serial * (16 // len(serial) + 1))[:16]


def container_guid(identity: CardIdentity, slot: int) -> str:
    """``wszGuid`` of a slot's container: 32 lowercase hex digits of the GUID with its first byte
    replaced by the key id (OpenSC ``piv_get_guid``). Without a GUID we use the first 16 bytes of
    the FASC-N the same way (OpenSC packs its BCD digits instead), and with neither the key id
    alone; a card without a CHUID gets names that are not unique across cards (§6)."""
    base = identity.guid if len(identity.guid) == 16 and any(identity.guid) else identity.fascn[:16].ljust(16, b"\0")
    return (bytes((key_id(slot),)) + base[1:]).hex()


# -- keys --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyInfo:
    """A slot's key as the minidriver presents it."""

    algorithm: int  #: PIV algorithm id (07 RSA-2048, 11 P-256, ...)
    bits: int
    key_exchange: bool  #: True -> wKeyExchangeKeySizeBits + kxcNN, False -> wSigKeySizeBits + kscNN
    pin_policy: int  #: PinPolicy NEVER/ONCE/ALWAYS (never DEFAULT)
    public_key: PublicKeyTypes | None = None

    @property
    def is_rsa(self) -> bool:
        return self.algorithm in RSA_BITS

    @property
    def key_spec(self) -> KeySpec:
        """The AT_* of the key: AT_KEYEXCHANGE/AT_SIGNATURE (RSA), AT_ECDHE_*/AT_ECDSA_* (EC)."""
        if self.is_rsa:
            return KeySpec.AT_KEYEXCHANGE if self.key_exchange else KeySpec.AT_SIGNATURE
        table = _ECDHE if self.key_exchange else _ECDSA
        return table[Algorithm(self.algorithm)]

    @property
    def pin_id(self) -> int:
        """CCP_PIN_IDENTIFIER: ROLE_EVERYONE for PIN-less keys, PIN_SIGN for "PIN always" keys."""
        if self.pin_policy == PinPolicy.NEVER:
            return PinId.ROLE_EVERYONE
        return PIN_SIGN if self.pin_policy == PinPolicy.ALWAYS else PinId.ROLE_USER


def algorithm_of_public_key(key: PublicKeyTypes) -> tuple[int, int] | None:
    """(PIV algorithm, bits) of a public key, None for a key a PIV card cannot hold."""
    if isinstance(key, rsa.RSAPublicKey):
        for alg, bits in RSA_BITS.items():
            if bits == key.key_size:
                return int(alg), bits
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        alg = _EC_ALGORITHMS[key.curve.name]
        return int(alg), _EC_BITS[alg]
    return None


def slot_default_key_exchange(slot: int, rsa_key: bool) -> bool:
    """Usage when the certificate says nothing (§6): RSA 9A/9C/9D/82..95 decrypt, 9E signs only;
    EC 9D/82..95 derive, 9A/9C/9E sign."""
    if rsa_key:
        return slot != 0x9E
    return slot == 0x9D or 0x82 <= slot <= 0x95


def usage_from_certificate(cert: x509.Certificate, rsa_key: bool) -> bool | None:
    """Key exchange (True) / signature (False) from keyUsage, None when it has no keyUsage."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if rsa_key:
        return bool(ku.key_encipherment or ku.data_encipherment)
    return bool(ku.key_agreement)


def key_info(
    slot: int,
    *,
    metadata: SlotMetadata | None = None,
    certificate: bytes | None = None,
    public_key: PublicKeyTypes | None = None,
) -> KeyInfo | None:
    """What a slot holds, from the YubiKey metadata, the certificate or a cached GENERATE result
    (in that order of trust for the key; keyUsage of the certificate decides the usage)."""
    cert = None
    if certificate:
        try:
            cert = x509.load_der_x509_certificate(certificate)
        except ValueError:
            cert = None
    key = public_key
    if metadata is not None and metadata.public_key is not None:
        key = metadata.public_key
    if key is None and cert is not None:
        key = cert.public_key()
    alg_bits = algorithm_of_public_key(key) if key is not None else None
    if alg_bits is None:
        return None
    alg, bits = alg_bits
    rsa_key = alg in RSA_BITS
    usage = usage_from_certificate(cert, rsa_key) if cert is not None else None
    exchange = slot_default_key_exchange(slot, rsa_key) if usage is None else usage
    policy = metadata.pin_policy if metadata is not None and metadata.pin_policy else None
    if policy is None or policy == PinPolicy.DEFAULT:
        policy = _DEFAULT_PIN_POLICY.get(slot, PinPolicy.ONCE)
    return KeyInfo(alg, bits, exchange, int(policy), key)


# -- the card as a whole -----------------------------------------------------------------------
@dataclass(frozen=True)
class Container:
    index: int
    slot: int
    guid: str
    key: KeyInfo
    has_certificate: bool


class PivReader(Protocol):
    """The part of :class:`~minidriver.piv.PivSession` this module reads through."""

    def get_data(self, object_id: int) -> bytes: ...
    def get_certificate(self, slot: int) -> bytes: ...
    def get_slot_metadata(self, slot: int) -> SlotMetadata | None: ...


@dataclass
class CardModel:
    """What one context knows about the card; dropped when the card changes or is lost.

    ``generated`` keeps public keys from GENERATE in this context (for cards without metadata
    whose new key has no certificate yet); the crypto helper calls :meth:`remember_key`.
    """

    identity: CardIdentity = field(default_factory=CardIdentity)
    metadata_supported: bool | None = None
    #: slot -> (metadata, certificate DER or None); a slot absent here is not read yet
    slots: dict[int, tuple[SlotMetadata | None, bytes | None]] = field(default_factory=dict)
    generated: dict[int, PublicKeyTypes] = field(default_factory=dict)
    identity_read: bool = False

    def remember_key(self, slot: int, public_key: PublicKeyTypes) -> None:
        self.generated[slot] = public_key
        self.slots.pop(slot, None)

    def forget_slot(self, slot: int) -> None:
        self.generated.pop(slot, None)
        self.slots.pop(slot, None)


def read_identity(piv: PivReader, model: CardModel) -> CardIdentity:
    if not model.identity_read:
        try:
            model.identity = parse_chuid(piv.get_data(ObjectId.CHUID))
        except ApduError as exc:
            if exc.sw not in _ABSENT:
                raise
            model.identity = CardIdentity()
        model.identity_read = True
    return model.identity


def read_slot(piv: PivReader, model: CardModel, slot: int) -> Container | None:
    """The container of ``slot`` (read from the card on first use), None if the slot is empty."""
    if slot not in model.slots:
        metadata: SlotMetadata | None = None
        if model.metadata_supported is not False:
            try:
                metadata = piv.get_slot_metadata(slot)
            except ApduError as exc:
                # 6A88: the card knows the command and the slot is empty; other errors: a card
                # whose F7 is something else, so no metadata from it (read certificates instead)
                model.metadata_supported = exc.sw == SW.REFERENCED_DATA_NOT_FOUND
            else:
                model.metadata_supported = metadata is not None
        cert: bytes | None = None
        try:
            cert = piv.get_certificate(slot)
        except ApduError as exc:
            if exc.sw not in _ABSENT:
                raise
        except BadResponseError:
            cert = None
        model.slots[slot] = (metadata, cert)
    metadata, cert = model.slots[slot]
    if model.metadata_supported and metadata is None:
        return None  # the card says the slot is empty, whatever certificate it holds
    info = key_info(slot, metadata=metadata, certificate=cert, public_key=model.generated.get(slot))
    if info is None:
        return None
    identity = read_identity(piv, model)
    return Container(index_for_slot(slot), slot, container_guid(identity, slot), info, cert is not None)


def read_card(piv: PivReader, model: CardModel | None = None) -> list[Container | None]:
    """Every container slot of the card, index by index (None for an empty slot)."""
    model = model if model is not None else CardModel()
    read_identity(piv, model)
    return [read_slot(piv, model, slot) for slot in SLOTS]


def certificate_of(model: CardModel, slot: int) -> bytes | None:
    entry = model.slots.get(slot)
    return None if entry is None else entry[1]


def default_index(containers: list[Container | None]) -> int | None:
    """The default container (§6): the first one under the user PIN, else the first one."""
    present = [c for c in containers if c is not None]
    for c in present:
        if c.key.pin_id == PinId.ROLE_USER:
            return c.index
    return present[0].index if present else None


def cmap_records(containers: list[Container | None]) -> list[ContainerMapRecord]:
    """``mscp/cmapfile`` records, one per index (all-zero record for an empty slot)."""
    default = default_index(containers)
    records = []
    for c in containers:
        if c is None:
            records.append(ContainerMapRecord())
            continue
        flags = CONTAINER_MAP_VALID_CONTAINER | (CONTAINER_MAP_DEFAULT_CONTAINER if c.index == default else 0)
        sig, kx = (0, c.key.bits) if c.key.key_exchange else (c.key.bits, 0)
        records.append(ContainerMapRecord(c.guid, flags, sig, kx))
    return records


def cert_file_name(c: Container) -> str:
    """``kxcNN`` for a key-exchange key, ``kscNN`` for a signature key (NN = 2 decimal digits)."""
    return f"{'kxc' if c.key.key_exchange else 'ksc'}{c.index:02d}"


def cert_object_for_index(index: int) -> int:
    slot = slot_for_index(index)
    if slot is None:
        raise ValueError(f"container index {index} out of range")
    return certificate_object(slot)


# -- per-context state -------------------------------------------------------------------------
@dataclass
class CoreState:
    """``MinidriverContext.vfs``: the card model and the file-system state of one context.

    It is created on first use after a bind and dropped with the card (``forget_card``), so a
    removed, reset or rebound card is always read again.
    """

    model: CardModel = field(default_factory=CardModel)
    #: files written in this context that the card cannot store (user-level writes, §3.4)
    overlay: dict[str, bytes] = field(default_factory=dict)
    #: names created with CardCreateFile whose content is not written yet
    created: set[str] = field(default_factory=set)
    #: algorithm of the 9B challenge CardGetChallenge(Ex) obtained, until it is answered
    pending_challenge: int | None = None
    #: ``cardcf`` as this context last read it: a different one means another process changed
    #: the card, and the model is read again
    seen_cardcf: bytes | None = None
    #: CP_PARENT_WINDOW / CP_PIN_CONTEXT_STRING as the caller set them
    ui: dict[str, bytes] = field(default_factory=dict)


def core_state(card_data: CardData) -> tuple[PivSession, CoreState]:
    """The context's PIV session (bound again if needed) and its :class:`CoreState`."""
    piv = session(card_data)
    ctx = context_of(card_data)
    if not isinstance(ctx.vfs, CoreState):
        ctx.vfs = CoreState()
    return piv, ctx.vfs


def containers(card_data: CardData) -> list[Container | None]:
    """Every container of the card in ``card_data``, index by index (None = empty slot)."""
    piv, state = core_state(card_data)
    return read_card(piv, state.model)


def container(card_data: CardData, index: int) -> Container | None:
    """Container ``index`` of the card, None if the index is out of range or the slot empty."""
    slot = slot_for_index(index)
    if slot is None:
        return None
    piv, state = core_state(card_data)
    return read_slot(piv, state.model, slot)


def key_changed(card_data: CardData, slot: int, public_key: PublicKeyTypes | None = None) -> None:
    """Tell the model a slot's key was generated/imported (``public_key``) or deleted (None);
    ``cardcf``'s container counter moves (other contexts then read the card again)."""
    from .vfs_store import card_changed

    _, state = core_state(card_data)
    card_changed(card_data, containers=True)
    if public_key is None:
        state.model.forget_slot(slot)
    else:
        state.model.remember_key(slot, public_key)
