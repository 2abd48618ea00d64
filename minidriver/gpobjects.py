"""GlobalPlatform data objects as a host reads them: GET STATUS entries, key information, card data.

Decoders for what the card answers (``E3`` registry templates, the ``E0`` key
information template, card recognition data ``66``) and the lines a CLI prints
about them. Pure functions over :mod:`minidriver.iso7816`'s BER-TLV, no I/O;
used by :mod:`minidriver.gp`. A card answer that does not decode raises
:class:`~minidriver.iso7816.BadResponseError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .iso7816 import BadResponseError, parse_tlvs

__all__ = [
    "FACTORY_KVN",
    "CardResources",
    "GPTag",
    "KeyInfo",
    "RegistryEntry",
    "SCPCapability",
    "StatusScope",
    "format_key_info",
    "format_registry",
    "parse_application_list",
    "parse_card_capabilities",
    "parse_card_resources",
    "parse_key_information",
    "parse_status",
    "scp02_i_from_card_data",
    "scp_i_from_card_data",
]

FACTORY_KVN = 0xFF  #: key version of the factory test key set (gp-scp.md §5)


class StatusScope(IntEnum):
    """P1 of GET STATUS (GPCS §11.4.2.1)."""

    ISD = 0x80
    APPLICATIONS = 0x40
    LOAD_FILES = 0x20
    LOAD_FILES_AND_MODULES = 0x10


class GPTag(IntEnum):
    """Tags of the GP data objects decoded here (GPCS §11.3.3, §11.4.3, Appendix H.2)."""

    AID = 0x4F
    REGISTRY_ENTRY = 0xE3  #: GET STATUS template (table 11-36)
    LIFE_CYCLE = 0x9F70
    PRIVILEGES = 0xC5
    LOAD_FILE_AID = 0xC4
    MODULE_AID = 0x84
    VERSION = 0xCE
    SECURITY_DOMAIN_AID = 0xCC
    KEY_INFORMATION = 0xE0  #: key information template (table 11-29)
    KEY_INFORMATION_DATA = 0xC0
    CARD_DATA = 0x66  #: card recognition data wrapper (Appendix H.2)
    CARD_RECOGNITION_DATA = 0x73
    SECURE_CHANNEL_OID = 0x64
    OID = 0x06


# -- decoded objects --------------------------------------------------------------
_KEY_TYPES = {0x80: "3DES", 0x88: "AES"}
_KEY_IDS = {0x01: "ENC", 0x02: "MAC", 0x03: "DEK"}
_SCP11_KEYS = {0x10: "OCE CA key", 0x11: "SCP11a key", 0x13: "SCP11b key", 0x15: "SCP11c key"}  #: Amendment F KIDs
_CARD_STATES = {0x01: "OP_READY", 0x07: "INITIALIZED", 0x0F: "SECURED", 0x7F: "CARD_LOCKED", 0xFF: "TERMINATED"}
_APP_STATES = {0x03: "INSTALLED", 0x07: "SELECTABLE", 0x0F: "PERSONALIZED"}


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key of the key information template (GET DATA E0, GPCS §11.3.3.1 table 11-29)."""

    kvn: int
    kid: int
    key_type: int
    length: int

    @property
    def algorithm(self) -> str:
        name = _KEY_TYPES.get(self.key_type, f"type {self.key_type:02X}")
        return f"AES-{self.length * 8}" if self.key_type == 0x88 else name


def parse_key_information(data: bytes) -> list[KeyInfo]:
    """``E0 { C0 L KID KVN (type len)+ }``; the first component of each key is reported."""
    body = data
    items = parse_tlvs(data)
    if len(items) == 1 and items[0].tag == GPTag.KEY_INFORMATION:
        body = items[0].value
    out = []
    for item in parse_tlvs(body):
        value = item.value
        if item.tag != GPTag.KEY_INFORMATION_DATA or len(value) < 4:
            continue
        out.append(KeyInfo(kvn=value[1], kid=value[0], key_type=value[2], length=value[3]))
    return out


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One ``E3`` template of a GET STATUS reply (GPCS §11.4.3.2 table 11-36)."""

    scope: StatusScope
    aid: bytes
    life_cycle: int
    privileges: bytes = b""
    elf: bytes = b""
    version: bytes = b""
    modules: tuple[bytes, ...] = ()
    sd: bytes = b""

    @property
    def state(self) -> str:
        """The life cycle by name (GPCS §5.1, §5.3)."""
        if self.scope is StatusScope.ISD:
            return _CARD_STATES.get(self.life_cycle, f"0x{self.life_cycle:02X}")
        if self.scope in (StatusScope.LOAD_FILES, StatusScope.LOAD_FILES_AND_MODULES):
            return "LOADED" if self.life_cycle == 0x01 else f"0x{self.life_cycle:02X}"
        base = _APP_STATES.get(self.life_cycle & 0x7F, f"0x{self.life_cycle & 0x7F:02X}")
        return f"LOCKED ({base})" if self.life_cycle & 0x80 else base

    @property
    def locked(self) -> bool:
        return self.scope is StatusScope.APPLICATIONS and bool(self.life_cycle & 0x80)


def parse_status(scope: StatusScope, data: bytes) -> list[RegistryEntry]:
    """Decode the TLV form (P2 b2 set) of a GET STATUS reply: ``E3`` templates."""
    entries = []
    for item in parse_tlvs(data):
        if item.tag != GPTag.REGISTRY_ENTRY:
            raise BadResponseError(f"GET STATUS: expected E3 templates, got tag {item.tag:X}")
        fields: dict[int, bytes] = {}
        modules: list[bytes] = []
        for inner in parse_tlvs(item.value):
            if inner.tag == GPTag.MODULE_AID:
                modules.append(inner.value)
            else:
                fields[inner.tag] = inner.value
        if GPTag.AID not in fields:
            raise BadResponseError("GET STATUS: an E3 template without an AID (4F)")
        lcs = fields.get(GPTag.LIFE_CYCLE, b"\x00")
        entries.append(
            RegistryEntry(
                scope=scope,
                aid=fields[GPTag.AID],
                life_cycle=lcs[0] if lcs else 0,
                privileges=fields.get(GPTag.PRIVILEGES, b""),
                elf=fields.get(GPTag.LOAD_FILE_AID, b""),
                version=fields.get(GPTag.VERSION, b""),
                modules=tuple(modules),
                sd=fields.get(GPTag.SECURITY_DOMAIN_AID, b""),
            )
        )
    return entries


def scp_i_from_card_data(data: bytes, scp: int) -> int | None:
    """The i-parameter of protocol ``scp`` from card data ``66 { 73 { 64 { 06 OID ...04 scp i } ... } }`` (GPCS §H.2).

    Card recognition data may list several secure channel protocols (one ``64``
    each: SCP03 and SCP11 on a YubiKey 5.7); the bare ``73`` a YubiKey answers
    is read too. None when the card does not name ``scp``.
    """
    try:
        items = parse_tlvs(data)
        if len(items) == 1 and items[0].tag == GPTag.CARD_DATA:
            items = parse_tlvs(items[0].value)
        recognition = next((t.value for t in items if t.tag == GPTag.CARD_RECOGNITION_DATA), b"")
        for entry in parse_tlvs(recognition):
            if entry.tag != GPTag.SECURE_CHANNEL_OID:
                continue
            oid = next((t.value for t in parse_tlvs(entry.value) if t.tag == GPTag.OID), b"")
            if len(oid) >= 2 and oid[-2] == scp:
                return oid[-1]
    except BadResponseError:
        return None
    return None


def scp02_i_from_card_data(data: bytes) -> int | None:
    """The i-parameter of SCP02 from card data (GPCS §H.2); None when the card names no SCP02."""
    return scp_i_from_card_data(data, 0x02)


# -- GET DATA 67, 2F00, FF21 ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SCPCapability:
    """One ``A0`` template of card capability information (GET DATA 67, GPCS §H.4)."""

    scp: int
    i_values: bytes  #: the i-parameters offered
    aes_key_lengths: int | None = None  #: SCP03: bit map b1 AES-128, b2 AES-192, b3 AES-256


def parse_card_capabilities(data: bytes) -> list[SCPCapability]:
    """``67 { A0 { 80 scp, 81 i.., [82 AES lengths] } .. }``; other entries of 67 are skipped."""
    items = parse_tlvs(data)
    if len(items) != 1 or items[0].tag != 0x67:
        raise BadResponseError("GET DATA 67: expected one 67 template")
    out = []
    for item in parse_tlvs(items[0].value):
        if item.tag != 0xA0:
            continue
        fields = {t.tag: t.value for t in parse_tlvs(item.value)}
        if len(fields.get(0x80, b"")) != 1:
            raise BadResponseError("GET DATA 67: an A0 template without its SCP identifier (80)")
        lengths = fields.get(0x82)
        out.append(SCPCapability(fields[0x80][0], fields.get(0x81, b""), lengths[0] if lengths else None))
    return out


def parse_application_list(data: bytes) -> list[bytes]:
    """GET DATA 2F00: the AIDs of its ``61 { 4F AID }`` application templates (ISO/IEC 7816-4 §8.2.1.1)."""
    aids = []
    for item in parse_tlvs(data):
        if item.tag != 0x61:
            raise BadResponseError(f"GET DATA 2F00: expected 61 templates, got tag {item.tag:X}")
        aid = next((t.value for t in parse_tlvs(item.value) if t.tag == GPTag.AID), None)
        if aid is None:
            raise BadResponseError("GET DATA 2F00: an application template without an AID (4F)")
        aids.append(aid)
    return aids


@dataclass(frozen=True, slots=True)
class CardResources:
    """GET DATA FF21, extended card resources information (GP Amendment C; ETSI TS 102 226 §8.2.1.7.2)."""

    applications: int
    free_nvm: int
    free_ram: int


def parse_card_resources(data: bytes) -> CardResources:
    """``FF21 L { 81 apps, 82 free NVM, 83 free RAM }``.

    Read by hand: ISO/IEC 7816-4 parsers (this module's too) skip a leading
    ``FF`` as padding, but GP uses it as the first byte of this tag.
    """
    if len(data) < 3 or data[:2] != b"\xff\x21" or data[2] != len(data) - 3:
        raise BadResponseError("GET DATA FF21: expected one FF21 object")
    fields = {t.tag: int.from_bytes(t.value, "big") for t in parse_tlvs(data[3:])}
    missing = {0x81, 0x82, 0x83} - set(fields)
    if missing:
        raise BadResponseError(f"GET DATA FF21: missing {' '.join(f'{m:02X}' for m in sorted(missing))}")
    return CardResources(fields[0x81], fields[0x82], fields[0x83])


# -- presentation ------------------------------------------------------------------------
def _hex(b: bytes) -> str:
    return b.hex().upper()


def format_key_info(keys: list[KeyInfo], *, factory_hint: str = "replace it with PUT KEY") -> list[str]:
    """One line per key set; never key values (there are none to show: the card keeps them).

    SCP11 keys (KID 10-2F, GPCS Amendment F) are one line each: ``SCP11b key 13/01: P-256 key pair``.
    """
    by_kvn: dict[int, list[KeyInfo]] = {}
    scp11 = []
    for k in keys:
        if k.kid in _SCP11_KEYS or 0x20 <= k.kid <= 0x2F:
            what = _SCP11_KEYS.get(k.kid, "OCE CA key")
            kind = "P-256 key pair" if k.key_type == 0xB1 else "P-256 public key"
            scp11.append(f"{what} 0x{k.kid:02X}/0x{k.kvn:02X}: {kind}")
            continue
        by_kvn.setdefault(k.kvn, []).append(k)
    lines = []
    for kvn, members in by_kvn.items():
        algorithms = sorted({k.algorithm for k in members})
        scp = "SCP02" if all(k.key_type == 0x80 for k in members) else "SCP03"
        ids = ", ".join(f"{k.kid:02X} {_KEY_IDS.get(k.kid, '?')}" for k in sorted(members, key=lambda k: k.kid))
        note = f"  (factory test key set: {factory_hint})" if kvn == FACTORY_KVN else ""
        lines.append(f"key set 0x{kvn:02X}: {scp} {'/'.join(algorithms)}, keys {ids}{note}")
    return lines + scp11


def format_registry(entries: list[RegistryEntry]) -> list[str]:
    lines = []
    for e in entries:
        if e.scope is StatusScope.ISD:
            lines.append(f"ISD {_hex(e.aid)}: card {e.state}, privileges {_hex(e.privileges)}")
        elif e.scope is StatusScope.APPLICATIONS:
            kind = "security domain" if e.privileges[:1] and e.privileges[0] & 0x80 else "application"
            source = f", from {_hex(e.elf)}" if e.elf else ""
            lines.append(f"{kind} {_hex(e.aid)}: {e.state}, privileges {_hex(e.privileges) or '-'}{source}")
        else:
            version = f" version {e.version[0]}.{e.version[1]}" if len(e.version) == 2 else ""
            modules = f", modules {' '.join(_hex(m) for m in e.modules)}" if e.modules else ""
            lines.append(f"load file {_hex(e.aid)}: {e.state}{version}{modules}")
    return lines
