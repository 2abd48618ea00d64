"""The GlobalPlatform Issuer Security Domain (GPCS 2.3.1 §9, §11).

The ISD answers SELECT with its FCI, GET DATA for the card data objects,
opens secure channels (it owns the :class:`SecureChannelService`) and manages
the card: keys (PUT KEY, DELETE key), content (INSTALL, DELETE, GET STATUS),
life cycles (SET STATUS) and personalization (STORE DATA). Card management
handlers live in :mod:`.isd_manage`; key sets in :mod:`.isd_keys`; the
content registry in :mod:`.isd_content`.

Persistent state (namespace ``isd``): ``cplc``, ``iin``, ``cin``,
``card_data``, ``card_life_cycle``, ``keysets``, ``seq/<KVN>``, ``apps``,
``scp11`` (SCP11 keys, certificates, CA identifiers, allow-lists: :mod:`.isd_scp11`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Any

from ..gp.keys import SCPVersion, StaticKeys
from ..gp.levels import SecurityLevel
from ..gp.scp02 import SUPPORTED_I as SCP02_SUPPORTED_I
from ..gp.scp11_service import SCP11Service
from ..gp.service import SecureChannelService
from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU, encode_tlv
from ..registry import Registry
from ..store import Namespace
from . import isd_lockout, isd_manage, isd_objects, isd_scp11
from .base import Applet, CommandContext, Secret, command
from .isd_content import ISD_ELF_AID, AppRecord, CardLifeCycle, GPRegistry, LoadFile, load_records
from .isd_keys import KeyStore, keyset_from_json, keyset_to_json

if TYPE_CHECKING:  # personas.py imports the applets: a runtime import would be circular
    from ..personas import Persona

__all__ = [
    "INS",
    "ISD_AID",
    "ISD_ELF_AID",
    "LEGACY_ISD_AIDS",
    "CardDataShape",
    "GPTag",
    "ISDApplet",
    "ISDConfig",
    "KeyInfoShape",
]

ISD_AID = bytes.fromhex("A000000151000000")
#: OP/Visa "card manager" AIDs that real cards also answer to (gp-scp.md §1.1)
LEGACY_ISD_AIDS = (bytes.fromhex("A0000000030000"), bytes.fromhex("A000000003000000"))
GP_RID_OID = bytes.fromhex("2A864886FC6B")  # 1.2.840.114283
log = logging.getLogger(__name__)

_SCP03_S8_I = (0x00, 0x10, 0x20, 0x30, 0x60, 0x70)
#: S8 values and the same with b1 (01) for S16 mode (AmdD v1.2 §5.1); the profile schema imports this
SCP03_SUPPORTED_I = frozenset({*_SCP03_S8_I, *(i | 0x01 for i in _SCP03_S8_I)})


class INS(IntEnum):
    """ISD instructions (GPCS §11 table 11-2)."""

    DELETE = 0xE4
    EXTERNAL_AUTHENTICATE = 0x82
    GET_DATA = 0xCA
    GET_STATUS = 0xF2
    INITIALIZE_UPDATE = 0x50
    INSTALL = 0xE6
    PERFORM_SECURITY_OPERATION = 0x2A  #: SCP11a/c OCE certificate (Amd F §7.5)
    INTERNAL_AUTHENTICATE = 0x88  #: SCP11b (Amd F §7.6)
    GENERATE_KEY = 0xF1  #: SCP11 key pair generated on card (YubiKey's command, yubikit generate_ec_key)
    PUT_KEY = 0xD8
    SET_STATUS = 0xF0
    STORE_DATA = 0xE2


class GPTag(IntEnum):
    """GET DATA objects of the ISD (GPCS §11.3.3.1, gp-scp.md §1.4)."""

    IIN = 0x42
    CIN = 0x45
    CARD_DATA = 0x66
    CARD_RECOGNITION_DATA = 0x73
    KEY_INFORMATION_TEMPLATE = 0xE0
    KEY_INFORMATION_DATA = 0xC0
    SEQUENCE_COUNTER = 0xC1
    KEY_DERIVATION_DATA = 0xCF
    CPLC = 0x9F7F
    FCI = 0x6F
    AID = 0x84
    FCI_PROPRIETARY = 0xA5
    MAX_COMMAND_DATA_LEN = 0x9F65
    OID = 0x06


class KeyInfoShape(Enum):
    """How GET DATA ``E0`` (key information) is answered; the persona picks (emulator/personas.py)."""

    #: ``E0 { C0 .. C0 .. }``: the key information template (GPCS 2.3.1 §11.3.3.1 table 11-28)
    TEMPLATE = "template"
    #: ``C0 .. C0 ..``: the bare list a YubiKey answers (yubikit ``get_key_information``)
    BARE_LIST = "bare list"


class CardDataShape(Enum):
    """How GET DATA ``66`` (card data) is answered; the persona picks (emulator/personas.py)."""

    #: ``66 { 73 { .. } }``: card data wrapping the card recognition data (GPCS 2.3.1 §H.2)
    CARD_DATA = "66 template"
    #: ``73 { .. }``: the recognition data alone, as a YubiKey answers (yubikit ``get_card_recognition_data``)
    RECOGNITION_DATA = "bare 73"


_LIFE_CYCLE_NAMES = {state.name: state for state in CardLifeCycle}
#: what needs a secure channel with C-MAC (GPCS §11.1.2 table 11-5)
_MANAGE = SecurityLevel.AUTHENTICATED | SecurityLevel.C_MAC


@dataclass(frozen=True)
class ISDConfig:
    """The profile's ``[isd]`` section.

    Key sets, IIN/CIN and the life cycle are copied into the store when a new
    card is provisioned; from then on the store wins. AID, KDD and the
    i-parameters are read at every start.
    """

    aid: bytes = ISD_AID
    scp: int = 3
    i: int = 0x70
    scp02_i: int = 0x15
    scp03_i: int = 0x70
    kdd: bytes = bytes(10)
    iin: bytes = b""
    cin: bytes = b""
    life_cycle: CardLifeCycle = CardLifeCycle.SECURED
    keysets: tuple[StaticKeys, ...] = ()
    #: KVN of an SCP11b key pair (KID 13) generated when the card is made; 0: none. TEST KEY.
    scp11b_kvn: int = 0

    def __post_init__(self) -> None:
        if self.scp02_i not in SCP02_SUPPORTED_I:
            raise ValueError(f"scp02_i must be one of 05, 15, 45, 55, got {self.scp02_i:02X}")
        if self.scp03_i not in SCP03_SUPPORTED_I:
            raise ValueError(f"scp03_i must be one of 00, 10, 20, 30, 60, 70 (+01: S16), got {self.scp03_i:02X}")
        if len(self.kdd) != 10:
            raise ValueError(f"kdd must be 10 bytes, got {len(self.kdd)}")
        if not 5 <= len(self.aid) <= 16:
            raise ValueError("aid must be 5-16 bytes")
        if not 0x00 <= self.scp11b_kvn <= 0x7F:
            raise ValueError(f"scp11b_kvn must be 0x00-0x7F, got {self.scp11b_kvn:02X}")

    @classmethod
    def from_profile(cls, section: dict[str, Any]) -> ISDConfig:
        try:
            scp = int(str(section.get("scp", "03")), 16)
            i = int(section.get("i", 0x70 if scp == 3 else 0x15))
            return cls(
                aid=bytes.fromhex(str(section.get("aid", ISD_AID.hex()))),
                scp=scp,
                i=i,
                scp02_i=i if scp == 2 else int(section.get("scp02_i", 0x15)),
                scp03_i=i if scp == 3 else int(section.get("scp03_i", 0x70)),
                kdd=bytes.fromhex(str(section.get("kdd", "00" * 10))),
                iin=bytes.fromhex(str(section.get("iin", ""))),
                cin=bytes.fromhex(str(section.get("cin", ""))),
                life_cycle=_LIFE_CYCLE_NAMES[str(section.get("life_cycle", "SECURED")).upper()],
                keysets=tuple(keyset_from_json(k) for k in section.get("keysets", [])),
                scp11b_kvn=int(section.get("scp11b_kvn", 0)),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"[isd] section: {exc}") from None


class ISDApplet(Applet):
    """Issuer Security Domain. Persistent state lives in its store namespace."""

    name = "isd"

    def __init__(
        self,
        store: Namespace,
        config: ISDConfig,
        *,
        registry: Registry | None = None,
        initial_instances: tuple[AppRecord, ...] = (),
        random: Callable[[int], bytes] = os.urandom,
        persona: Persona | None = None,
    ) -> None:
        super().__init__(config.aid, aliases=LEGACY_ISD_AIDS if config.aid == ISD_AID else ())
        if persona is None:
            from ..personas import DEFAULT_PERSONA  # here: personas.py imports the applets

            persona = DEFAULT_PERSONA
        #: how GET DATA E0 and 66 are shaped (emulator/personas.py)
        self.persona = persona
        self.store = store
        self.config = config
        self.keys = KeyStore(store)
        self.registry = registry if registry is not None else Registry()
        self.load_files: dict[bytes, LoadFile] = {}
        self.service = SecureChannelService(
            self.keys, sd_aid=config.aid, kdd=config.kdd, scp03_i=config.scp03_i, scp02_i=config.scp02_i, random=random
        )
        self.scp11 = isd_scp11.SCP11Keys(store)
        self.service.scp11 = SCP11Service(self.scp11, sd_aid=config.aid)
        #: failed-authentication counters and the reset when all keys are blocked, if the persona has them
        policy = persona.gp_key_lockout
        self.lockout = None if policy is None else isd_lockout.Lockout(self, policy)
        #: True when this start created the card (first use of the store)
        self.fresh = store.get("cplc") is None
        if self.fresh:
            self._provision(initial_instances)
        records = load_records(store)
        self.records: list[AppRecord] = list(initial_instances) if records is None else records
        self.status_pages: dict[int, isd_manage.StatusPages] = {}
        self._apply_card_life_cycle()

    @classmethod
    def from_profile(cls, store: Namespace, section: dict[str, Any], **kwargs: Any) -> ISDApplet:
        return cls(store, ISDConfig.from_profile(section), **kwargs)

    def _provision(self, instances: tuple[AppRecord, ...]) -> None:
        """First start of a new card: write the profile's values in one transaction."""
        self.store.put_many(
            {
                "cplc": isd_objects.make_cplc(),
                "iin": self.config.iin,
                "cin": self.config.cin,
                "keysets": json.dumps([keyset_to_json(k) for k in self.config.keysets], sort_keys=True).encode(),
                "card_life_cycle": bytes((self.config.life_cycle,)),
                "apps": json.dumps([r.to_json() for r in instances], sort_keys=True).encode(),
                **({"scp11": isd_scp11.factory_scp11b(self.config.scp11b_kvn)} if self.config.scp11b_kvn else {}),
            }
        )

    # -- card content --------------------------------------------------------
    def register_load_file(self, load_file: LoadFile) -> None:
        """Make a built-in executable load file known to INSTALL and GET STATUS."""
        self.load_files[load_file.aid] = load_file

    def restore_instances(self) -> None:
        """Add every persisted instance whose module is built in to the registry."""
        for record in self.records:
            load_file = self.load_files.get(record.elf)
            module = load_file.module(record.module) if load_file else None
            if module is None:
                log.warning(
                    "instance %s: module %s is not built in; skipped",
                    record.aid.hex().upper(),
                    record.module.hex().upper(),
                )
                continue
            if self.registry.get(record.aid) is not None:
                continue
            applet = module.create(record.aid)
            self.registry.add(applet, life_cycle=record.life_cycle, privileges=record.privileges)

    @property
    def card_life_cycle(self) -> CardLifeCycle:
        raw = self.store.get("card_life_cycle")
        return CardLifeCycle(raw[0]) if raw else CardLifeCycle.SECURED

    def _apply_card_life_cycle(self) -> None:
        if isinstance(self.registry, GPRegistry):
            self.registry.only_default = self.card_life_cycle in (CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED)

    def set_card_life_cycle(self, state: CardLifeCycle) -> None:
        self.store.put("card_life_cycle", bytes((state,)))
        self._apply_card_life_cycle()

    # -- data objects ---------------------------------------------------------
    def keysets(self) -> list[StaticKeys]:
        return self.keys.keysets()

    def card_data(self, *, scp11: bool = True) -> bytes:
        """Tag 66 content (GPCS §H.2): GP version, card id scheme, SCP + i (and SCP11 unless ``scp11`` is false)."""
        stored = self.store.get("card_data")
        if stored:
            return stored

        def oid(*tail: int) -> bytes:
            return encode_tlv(GPTag.OID, GP_RID_OID + bytes(tail))

        # one 64 per secure channel protocol (GPCS §H.2 table H-1): the profile's SCP03/SCP02,
        # then SCP11 (Amd F) for each SD key pair variant present, 11b / 11a / 11c, as a YubiKey 5.7 lists it
        variants = ((0x13, 0x00), (0x11, 0x01), (0x15, 0x03)) if scp11 else ()
        scp11_i = [i for kid, i in variants if self.scp11.sd_key(kid, 0) is not None]
        recognition = b"".join(
            (
                encode_tlv(GPTag.OID, GP_RID_OID + b"\x01"),
                encode_tlv(0x60, oid(2, 2, 3, 1)),  # GP 2.3.1
                encode_tlv(0x63, oid(3)),
                encode_tlv(0x64, oid(4, self.config.scp, self.config.i)),
                *(encode_tlv(0x64, oid(4, 0x11, i)) for i in scp11_i),
            )
        )
        return encode_tlv(GPTag.CARD_RECOGNITION_DATA, recognition)

    def key_information(self) -> bytes:
        return self.keys.key_information() + self.scp11.key_information()

    def _data_object(self, tag: int) -> bytes | None:
        match tag:
            case GPTag.CARD_DATA:  # the persona picks GPCS §H.2's 66 { 73 } or a YubiKey's bare 73
                if self.persona.gp_card_data_shape is CardDataShape.RECOGNITION_DATA:
                    return self.card_data()
                return encode_tlv(GPTag.CARD_DATA, self.card_data())
            case GPTag.KEY_INFORMATION_TEMPLATE:  # GPCS §11.3.3.1's E0 { C0.. } or a YubiKey's bare C0 list
                if self.persona.gp_key_info_shape is KeyInfoShape.BARE_LIST:
                    return self.key_information()
                return encode_tlv(GPTag.KEY_INFORMATION_TEMPLATE, self.key_information())
            case GPTag.CPLC:
                value = self.store.get("cplc")
                return None if value is None else encode_tlv(GPTag.CPLC, value)
            case GPTag.IIN | GPTag.CIN:
                value = self.store.get("iin" if tag == GPTag.IIN else "cin")
                return encode_tlv(tag, value) if value else None
            case GPTag.KEY_DERIVATION_DATA:
                return encode_tlv(GPTag.KEY_DERIVATION_DATA, self.config.kdd)
            case GPTag.SEQUENCE_COUNTER:
                default = self.keys.find_keyset(0)
                if default is None:
                    return None
                width = 2 if default.scp == SCPVersion.SCP02 else 3
                return encode_tlv(tag, self.keys.sequence_counter(default.kvn).to_bytes(width, "big"))
        return None

    # -- runtime hooks --------------------------------------------------------
    def select(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """FCI (GPCS §11.9.3); 6283 while the card is locked or terminated (gp-scp.md §1.1).

        Its security domain management data names the profile's protocol only (SCP11 is in GET DATA 66).
        """
        proprietary = encode_tlv(GPTag.CARD_RECOGNITION_DATA, self.card_data(scp11=False)[2:]) + encode_tlv(
            GPTag.MAX_COMMAND_DATA_LEN, b"\xff"
        )
        fci = encode_tlv(GPTag.FCI, encode_tlv(GPTag.AID, self.aid) + encode_tlv(GPTag.FCI_PROPRIETARY, proprietary))
        locked = self.card_life_cycle in (CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED)
        return ResponseAPDU(fci, SW.SELECTED_FILE_INVALIDATED if locked else SW.OK)

    def deselect(self, channel: int) -> None:
        self.status_pages.pop(channel, None)

    def reset(self) -> None:
        self.status_pages.clear()

    def process(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """In TERMINATED the ISD answers GET DATA only (GPCS §5.1.1.5)."""
        if self.card_life_cycle is CardLifeCycle.TERMINATED and cmd.ins != INS.GET_DATA:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "card is terminated")
        return super().process(cmd, ctx)

    # -- commands -------------------------------------------------------------
    @command(INS.GET_DATA)
    def get_data(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """GET DATA (GPCS §11.3): P1P2 is the tag; the answer is the whole TLV."""
        tag = (cmd.p1 << 8) | cmd.p2
        value = self._data_object(tag)
        if value is None:
            value = isd_objects.get_data(self, tag, ctx)
        if value is None:
            value = isd_scp11.get_data(self, tag, bytes(cmd.data))
        if value is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"GET DATA {tag:04X}")
        return ResponseAPDU(value)

    @command(INS.INITIALIZE_UPDATE, secret=Secret.BOTH)  # host challenge; card cryptogram
    def initialize_update(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """INITIALIZE UPDATE (GPCS §11.12): handed to the secure channel service."""
        if not cmd.proprietary:
            raise CardError(SW.CLA_NOT_SUPPORTED, "INITIALIZE UPDATE needs CLA 80")

        def run(c: CommandAPDU) -> ResponseAPDU:
            return self.service.initialize_update(c, ctx, sd_aid=self.aid)

        return run(cmd) if self.lockout is None else self.lockout.initialize_update(cmd, ctx, run)

    @command(INS.EXTERNAL_AUTHENTICATE, secret=Secret.COMMAND)  # host cryptogram
    def external_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """EXTERNAL AUTHENTICATE (GPCS §11.10); 6985 without a preceding INITIALIZE UPDATE."""

        def run(c: CommandAPDU) -> ResponseAPDU:
            return self.service.external_authenticate(c, ctx)

        return run(cmd) if self.lockout is None else self.lockout.external_authenticate(cmd, ctx, run)

    @command(INS.PERFORM_SECURITY_OPERATION)
    def perform_security_operation(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """PERFORM SECURITY OPERATION (Amd F §7.5): an SCP11a/c OCE certificate, to the SCP11 service."""
        return self._scp11(cmd, ctx)

    @command(INS.INTERNAL_AUTHENTICATE, secret=Secret.RESPONSE)  # receipt
    def internal_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """INTERNAL AUTHENTICATE (Amd F §7.6): SCP11b, to the SCP11 service."""
        return self._scp11(cmd, ctx)

    def _scp11(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        def run(c: CommandAPDU) -> ResponseAPDU:
            return self.service.scp11_command(c, ctx)

        return run(cmd) if self.lockout is None else self.lockout.scp11_command(cmd, ctx, run)

    @command(INS.GENERATE_KEY, needs=_MANAGE)
    def generate_key(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return isd_scp11.generate_key_command(self, cmd)

    @command(INS.GET_STATUS, needs=SecurityLevel.AUTHENTICATED)
    def get_status(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return isd_manage.get_status(self, cmd, ctx)

    @command(INS.PUT_KEY, needs=_MANAGE, secret=Secret.COMMAND)  # key material
    def put_key(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return isd_manage.put_key(self, cmd, ctx)

    @command(INS.DELETE, needs=_MANAGE)
    def delete(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return isd_manage.delete(self, cmd, ctx)

    @command(INS.SET_STATUS, needs=_MANAGE)
    def set_status(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return isd_manage.set_status(self, cmd, ctx)

    @command(INS.STORE_DATA, needs=_MANAGE, secret=Secret.COMMAND)  # personalization data
    def store_data(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return isd_manage.store_data(self, cmd, ctx)

    @command(INS.INSTALL, needs=_MANAGE)
    def install(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        return isd_manage.install(self, cmd, ctx)
