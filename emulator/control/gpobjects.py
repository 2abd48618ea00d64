"""GlobalPlatform data objects as a host reads them: GET STATUS entries, key information.

Decoders for what the card answers (BER-TLV, ``E3`` templates, the ``E0``
key information template, card data ``66``) and the lines the CLI prints
about them. Pure functions, no I/O; used by :mod:`.gpclient`. Written on the
host side: nothing here comes from the card-side ``emulator.gp``/``applets``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .pcsc import PcscError

__all__ = [
    "FACTORY_KVN",
    "GPClientError",
    "KeyInfo",
    "RegistryEntry",
    "StatusScope",
    "format_key_info",
    "format_registry",
    "parse_key_information",
    "parse_status",
    "parse_tlvs",
    "scp02_i_from_card_data",
]

FACTORY_KVN = 0xFF  #: key version of the factory test key set (gp-scp.md §5)


class GPClientError(PcscError):
    """A GlobalPlatform operation failed; ``sw`` is the card's status word when one caused it.

    A :class:`PcscError`, so the CLI reports it as an operational failure (one line, exit 1).
    """

    def __init__(self, message: str, *, sw: int | None = None) -> None:
        super().__init__(message)
        self.sw = sw


class StatusScope(IntEnum):
    """P1 of GET STATUS (GPCS §11.4.2.1)."""

    ISD = 0x80
    APPLICATIONS = 0x40
    LOAD_FILES = 0x20
    LOAD_FILES_AND_MODULES = 0x10


# -- TLV ------------------------------------------------------------------------
def parse_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """BER-TLV (ISO 7816-4 §5.2): multi-byte tags, 1-3 byte lengths; a bad one raises."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):  # padding between objects
            i += 1
            continue
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while i < len(data):
                tag = (tag << 8) | data[i]
                i += 1
                if not tag & 0x80:
                    break
        if i >= len(data):
            raise GPClientError("truncated TLV in the card's answer")
        length = data[i]
        i += 1
        if length & 0x80:
            n = length & 0x7F
            if n not in (1, 2) or i + n > len(data):
                raise GPClientError("bad TLV length in the card's answer")
            length = int.from_bytes(data[i : i + n], "big")
            i += n
        if i + length > len(data):
            raise GPClientError("TLV value runs past the card's answer")
        out.append((tag, data[i : i + length]))
        i += length
    return out


# -- decoded objects --------------------------------------------------------------
_KEY_TYPES = {0x80: "3DES", 0x88: "AES"}
_KEY_IDS = {0x01: "ENC", 0x02: "MAC", 0x03: "DEK"}
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
    if len(items) == 1 and items[0][0] == 0xE0:
        body = items[0][1]
    out = []
    for tag, value in parse_tlvs(body):
        if tag != 0xC0 or len(value) < 4:
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
    for tag, value in parse_tlvs(data):
        if tag != 0xE3:
            raise GPClientError(f"GET STATUS: expected E3 templates, got tag {tag:X}")
        fields: dict[int, bytes] = {}
        modules: list[bytes] = []
        for inner, v in parse_tlvs(value):
            if inner == 0x84:
                modules.append(v)
            else:
                fields[inner] = v
        if 0x4F not in fields:
            raise GPClientError("GET STATUS: an E3 template without an AID (4F)")
        lcs = fields.get(0x9F70, b"\x00")
        entries.append(
            RegistryEntry(
                scope=scope,
                aid=fields[0x4F],
                life_cycle=lcs[0] if lcs else 0,
                privileges=fields.get(0xC5, b""),
                elf=fields.get(0xC4, b""),
                version=fields.get(0xCE, b""),
                modules=tuple(modules),
                sd=fields.get(0xCC, b""),
            )
        )
    return entries


def scp02_i_from_card_data(data: bytes) -> int | None:
    """The i-parameter of SCP02 from card data ``66 { 73 { 64 { 06 OID ...04 02 i } } }`` (GPCS §H.2)."""
    try:
        items = dict(parse_tlvs(data))
        inner = dict(parse_tlvs(items.get(0x66, data)))
        recognition = dict(parse_tlvs(inner.get(0x73, b"")))
        oid = dict(parse_tlvs(recognition.get(0x64, b""))).get(0x06, b"")
    except GPClientError:
        return None
    if len(oid) >= 2 and oid[-2] == 0x02:
        return oid[-1]
    return None


# -- presentation ------------------------------------------------------------------------
def _hex(b: bytes) -> str:
    return b.hex().upper()


def format_key_info(keys: list[KeyInfo]) -> list[str]:
    """One line per key set; never key values (there are none to show: the card keeps them)."""
    by_kvn: dict[int, list[KeyInfo]] = {}
    for k in keys:
        by_kvn.setdefault(k.kvn, []).append(k)
    lines = []
    for kvn, members in by_kvn.items():
        algorithms = sorted({k.algorithm for k in members})
        scp = "SCP02" if all(k.key_type == 0x80 for k in members) else "SCP03"
        ids = ", ".join(f"{k.kid:02X} {_KEY_IDS.get(k.kid, '?')}" for k in sorted(members, key=lambda k: k.kid))
        note = "  (factory test key set: replace it with vcard keys put)" if kvn == FACTORY_KVN else ""
        lines.append(f"key set 0x{kvn:02X}: {scp} {'/'.join(algorithms)}, keys {ids}{note}")
    return lines


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
