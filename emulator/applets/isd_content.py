"""Card content of the ISD: built-in load files, installed instances, GET STATUS.

The card has no LOAD: its executable load files are built into the emulator
(the PIV module). INSTALL [for install] creates an instance from a module's
factory; the instances, their life cycle and privileges are persisted in the
ISD's namespace (``apps``, a JSON list written in one transaction) and the
card's registry is rebuilt from it at start (GPCS §5.3, §9.3, §11.1.7).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from ..iso7816 import SW, CardError, encode_tlv, parse_tlvs
from ..registry import Registry
from ..store import Namespace
from .base import Applet

__all__ = [
    "ISD_ELF_AID",
    "AppLifeCycle",
    "AppRecord",
    "CardLifeCycle",
    "ExecutableModule",
    "GPRegistry",
    "LoadFile",
    "Privilege",
    "StatusEntry",
    "StatusScope",
    "StatusTag",
    "encode_status",
    "load_records",
    "parse_status_query",
    "save_records",
]

APPS = "apps"
#: the load file the ISD comes from, as JCOP cards report it (gp-scp.md §1.5)
ISD_ELF_AID = bytes.fromhex("A0000001515350")
ELF_LOADED = 0x01  #: life cycle of an executable load file (GPCS §5.3.1)


class CardLifeCycle(IntEnum):
    """Card life cycle states (GPCS §5.1.1)."""

    OP_READY = 0x01
    INITIALIZED = 0x07
    SECURED = 0x0F
    CARD_LOCKED = 0x7F
    TERMINATED = 0xFF


class AppLifeCycle(IntEnum):
    """Application life cycle states (GPCS §5.3.1)."""

    INSTALLED = 0x03
    SELECTABLE = 0x07
    LOCKED = 0x80  #: a bit ORed onto the state


class Privilege(IntFlag):
    """First byte of the privileges (GPCS §6.6.1 table 6-1)."""

    SECURITY_DOMAIN = 0x80
    DAP_VERIFICATION = 0x40
    DELEGATED_MANAGEMENT = 0x20
    CARD_LOCK = 0x10
    CARD_TERMINATE = 0x08
    CARD_RESET = 0x04
    CVM_MANAGEMENT = 0x02
    MANDATED_DAP = 0x01


class StatusScope(IntEnum):
    """P1 of GET STATUS (GPCS §11.4.2.1)."""

    ISD = 0x80
    APPLICATIONS = 0x40
    LOAD_FILES = 0x20
    LOAD_FILES_AND_MODULES = 0x10


class StatusTag(IntEnum):
    """Tags of the GET STATUS TLV reply and query (GPCS §11.4.3.2 table 11-36)."""

    ENTRY = 0xE3
    AID = 0x4F
    LIFE_CYCLE = 0x9F70
    PRIVILEGES = 0xC5
    ELF_AID = 0xC4
    VERSION = 0xCE
    MODULE_AID = 0x84
    ASSOCIATED_SD = 0xCC
    TAG_LIST = 0x5C


@dataclass(frozen=True)
class ExecutableModule:
    """A built-in module: ``create`` makes an applet instance with the given AID."""

    aid: bytes
    create: Callable[[bytes], Applet]
    #: wipes the persistent state of an instance on DELETE (optional)
    destroy: Callable[[bytes], None] | None = None


@dataclass(frozen=True)
class LoadFile:
    """A built-in executable load file and its modules."""

    aid: bytes
    modules: tuple[ExecutableModule, ...]
    version: bytes = b"\x01\x00"

    def module(self, aid: bytes) -> ExecutableModule | None:
        return next((m for m in self.modules if m.aid == aid), None)


@dataclass
class AppRecord:
    """One installed instance as persisted."""

    aid: bytes
    elf: bytes
    module: bytes
    life_cycle: int = AppLifeCycle.SELECTABLE
    privileges: bytes = b"\x00\x00\x00"

    def to_json(self) -> dict[str, Any]:
        return {
            "aid": self.aid.hex(),
            "elf": self.elf.hex(),
            "module": self.module.hex(),
            "life_cycle": self.life_cycle,
            "privileges": self.privileges.hex(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AppRecord:
        return cls(
            bytes.fromhex(raw["aid"]),
            bytes.fromhex(raw["elf"]),
            bytes.fromhex(raw["module"]),
            int(raw["life_cycle"]),
            bytes.fromhex(raw["privileges"]),
        )


def load_records(store: Namespace) -> list[AppRecord] | None:
    """The persisted instances; None when this card's state predates the list."""
    raw = store.get_json(APPS)
    return None if raw is None else [AppRecord.from_json(r) for r in raw]


def save_records(store: Namespace, records: list[AppRecord]) -> None:
    store.put_many({APPS: json.dumps([r.to_json() for r in records], sort_keys=True).encode()})


class GPRegistry(Registry):
    """The runtime's registry, restricted to the ISD while the card is locked or terminated (GPCS §5.1.1.4)."""

    def __init__(self) -> None:
        super().__init__()
        #: set by the ISD from the card life cycle
        self.only_default = False

    def find(self, aid_prefix: bytes, *, after: Applet | None = None) -> Applet | None:
        found = super().find(aid_prefix, after=after)
        default = self.default
        if self.only_default and found is not None and (default is None or found is not default.applet):
            return None
        return found


# -- GET STATUS ---------------------------------------------------------------
@dataclass(frozen=True)
class StatusEntry:
    """One registry entry as GET STATUS reports it."""

    aid: bytes
    life_cycle: int
    privileges: bytes = b""
    elf: bytes = b""
    version: bytes = b""
    modules: tuple[bytes, ...] = ()
    sd: bytes = b""

    def tlv(self, tags: frozenset[int] | None) -> bytes:
        """The ``E3`` template (GPCS §11.4.3.2), limited to ``tags`` when a 5C list was sent."""
        fields: list[tuple[int, bytes]] = [
            (StatusTag.AID, self.aid),
            (StatusTag.LIFE_CYCLE, bytes((self.life_cycle,))),
        ]
        if self.privileges:
            fields.append((StatusTag.PRIVILEGES, self.privileges))
        if self.elf:
            fields.append((StatusTag.ELF_AID, self.elf))
        if self.version:
            fields.append((StatusTag.VERSION, self.version))
        fields += [(StatusTag.MODULE_AID, m) for m in self.modules]
        if self.sd:
            fields.append((StatusTag.ASSOCIATED_SD, self.sd))
        body = b"".join(encode_tlv(t, v) for t, v in fields if tags is None or t in tags)
        return encode_tlv(StatusTag.ENTRY, body)

    def legacy(self, scope: StatusScope) -> bytes:
        """GP 2.1.1 format (GPCS §11.4.3.1): ``len AID LCS priv`` [+ modules]."""
        out = (
            bytes((len(self.aid),))
            + self.aid
            + bytes((self.life_cycle, self.privileges[:1][0] if self.privileges else 0))
        )
        if scope == StatusScope.LOAD_FILES_AND_MODULES:
            out += bytes((len(self.modules),)) + b"".join(bytes((len(m),)) + m for m in self.modules)
        return out


def encode_status(entry: StatusEntry, scope: StatusScope, *, tlv: bool, tags: frozenset[int] | None) -> bytes:
    return entry.tlv(tags) if tlv else entry.legacy(scope)


def parse_status_query(data: bytes) -> tuple[bytes, frozenset[int] | None]:
    """Search qualifier ``4F`` (AID prefix, mandatory) and optional ``5C`` tag list."""
    items = parse_tlvs(data)
    prefix = next((t.value for t in items if t.tag == StatusTag.AID), None)
    if prefix is None:
        raise CardError(SW.WRONG_DATA, "GET STATUS without search qualifier 4F")
    tag_list = next((t.value for t in items if t.tag == StatusTag.TAG_LIST), None)
    if tag_list is None:
        return prefix, None
    tags: set[int] = set()
    i = 0
    while i < len(tag_list):  # a 5C value is a list of bare tags (no lengths)
        tag = tag_list[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while i < len(tag_list):
                tag = (tag << 8) | tag_list[i]
                i += 1
                if not tag & 0x80:
                    break
        tags.add(tag)
    return prefix, frozenset(tags)
