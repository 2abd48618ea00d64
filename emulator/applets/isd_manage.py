"""Card management commands of the ISD (GPCS 2.3.1 §11.2-§11.11).

Each function is the body of one ``@command`` handler of :class:`ISDApplet`;
the security level each needs is declared there. Every state change is one
store write (or one ``batch``), so a card torn mid-command keeps the state
before it or after it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from ..gp.levels import SecurityLevel
from ..gp.scp02 import SCP02Card
from ..gp.scp03 import SCP03Card
from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU, parse_tlvs
from .base import CommandContext
from .isd_content import (
    ISD_ELF_AID,
    AppLifeCycle,
    AppRecord,
    CardLifeCycle,
    Privilege,
    StatusEntry,
    StatusScope,
    encode_status,
    parse_status_query,
    save_records,
)
from .isd_keys import parse_put_key
from .isd_objects import set_sd_status
from .isd_scp11 import CA_KEY_IDS, SD_KEY_IDS
from .isd_scp11 import delete as delete_scp11
from .isd_scp11 import put_key as put_scp11_key
from .isd_scp11 import store_data as store_scp11_data

if TYPE_CHECKING:
    from .isd import ISDApplet

__all__ = ["StatusPages", "delete", "get_status", "install", "put_key", "set_status", "store_data"]

log = logging.getLogger(__name__)

SHORT_RESPONSE_MAX = 256
MAC_LEN = 8
NO_RECEIPT = b"\x00"  #: DELETE / INSTALL reply without a receipt (GPCS §11.2.3, §11.5.3)
ISD_PRIVILEGES = bytes.fromhex("9AFE80")


class DeleteTag(IntEnum):
    """Data objects of DELETE (GPCS §11.2.2.3)."""

    AID = 0x4F
    KEY_ID = 0xD0
    KEY_VERSION = 0xD2


class StoreDataTag(IntEnum):
    """ISD data objects STORE DATA may set (GPCS §11.11.2.2, gp-scp.md §1.7)."""

    IIN = 0x42
    CIN = 0x45
    CARD_DATA = 0x66


class InstallRole(IntEnum):
    """P1 bits of INSTALL (GPCS §11.5.2.1)."""

    LOAD = 0x02
    INSTALL = 0x04
    MAKE_SELECTABLE = 0x08
    EXTRADITION = 0x10
    PERSONALIZATION = 0x20
    REGISTRY_UPDATE = 0x40


class StatusScopeP1(IntEnum):
    """P1 of SET STATUS (GPCS §11.10.2.1)."""

    CARD = 0x80
    APPLICATION = 0x40
    SD_AND_APPLICATIONS = 0x60


#: legal card life cycle transitions by SET STATUS (GPCS §5.1.1)
_CARD_TRANSITIONS = {
    CardLifeCycle.OP_READY: {CardLifeCycle.INITIALIZED, CardLifeCycle.SECURED, CardLifeCycle.TERMINATED},
    CardLifeCycle.INITIALIZED: {CardLifeCycle.SECURED, CardLifeCycle.TERMINATED},
    CardLifeCycle.SECURED: {CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED},
    CardLifeCycle.CARD_LOCKED: {CardLifeCycle.SECURED, CardLifeCycle.TERMINATED},
    CardLifeCycle.TERMINATED: set(),
}
_CONTENT_FROZEN = (CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED)


# -- GET STATUS -----------------------------------------------------------------
@dataclass
class StatusPages:
    """The rest of a GET STATUS reply, waiting for ``P2|01`` on one channel."""

    query: tuple[int, int, bytes]
    pages: list[bytes] = field(default_factory=list)


def _response_budget(level: SecurityLevel, mac_len: int = MAC_LEN) -> int:
    """Reply data that still fits a short response after R-MAC/R-ENC (gp-scp.md §1.5; S16: 16-byte R-MAC)."""
    if level & SecurityLevel.R_ENCRYPTION:
        return SHORT_RESPONSE_MAX - mac_len - 16 - 1  # 239 (S8): padding may add a block
    if level & SecurityLevel.R_MAC:
        return SHORT_RESPONSE_MAX - mac_len
    return SHORT_RESPONSE_MAX


def _status_entries(isd: ISDApplet, scope: StatusScope) -> list[StatusEntry]:
    if scope == StatusScope.ISD:
        entry = isd.registry.get(isd.aid)
        privileges = entry.privileges if entry is not None else ISD_PRIVILEGES
        return [StatusEntry(isd.aid, isd.card_life_cycle, privileges, ISD_ELF_AID, sd=isd.aid)]
    if scope == StatusScope.APPLICATIONS:
        return [StatusEntry(r.aid, r.life_cycle, r.privileges, r.elf, sd=isd.aid) for r in isd.records]
    with_modules = scope == StatusScope.LOAD_FILES_AND_MODULES
    return [
        StatusEntry(
            lf.aid,
            0x01,
            version=lf.version,
            modules=tuple(m.aid for m in lf.modules) if with_modules else (),
            sd=isd.aid,
        )
        for lf in isd.load_files.values()
    ]


def get_status(isd: ISDApplet, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
    """GET STATUS (GPCS §11.4): whole entries per reply, ``6310`` while more follow."""
    try:
        scope = StatusScope(cmd.p1)
    except ValueError:
        raise CardError(SW.INCORRECT_P1P2, f"GET STATUS P1 {cmd.p1:02X}") from None
    if cmd.p2 & ~0x03:
        raise CardError(SW.INCORRECT_P1P2, f"GET STATUS P2 {cmd.p2:02X}")
    tlv, more = bool(cmd.p2 & 0x02), bool(cmd.p2 & 0x01)
    query = (cmd.p1, cmd.p2 & 0x02, bytes(cmd.data))
    if more:
        pending = isd.status_pages.get(ctx.channel)
        if pending is None or pending.query != query or not pending.pages:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "GET STATUS 'next' without a pending reply")
    else:
        isd.status_pages.pop(ctx.channel, None)
        prefix, tags = parse_status_query(cmd.data)
        encoded = [
            encode_status(e, scope, tlv=tlv, tags=tags) for e in _status_entries(isd, scope) if e.aid.startswith(prefix)
        ]
        if not encoded:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "GET STATUS: no matching entry")
        mac_len = ctx.session.mac_len if isinstance(ctx.session, SCP03Card) else MAC_LEN
        pending = StatusPages(query, _paginate(encoded, _response_budget(ctx.level, mac_len)))
        isd.status_pages[ctx.channel] = pending
    page = pending.pages.pop(0)
    if pending.pages:
        return ResponseAPDU(page, SW.MORE_DATA_AVAILABLE)
    isd.status_pages.pop(ctx.channel, None)
    return ResponseAPDU(page)


def _paginate(entries: list[bytes], budget: int) -> list[bytes]:
    pages: list[bytes] = []
    current = b""
    for entry in entries:
        if current and len(current) + len(entry) > budget:
            pages.append(current)
            current = b""
        current += entry
    pages.append(current)
    return pages


# -- PUT KEY / DELETE -------------------------------------------------------------
def put_key(isd: ISDApplet, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
    """PUT KEY (GPCS §11.8): add (P1 00) or replace a key set; keys wrapped under the DEK."""
    if cmd.p2 & 0x7F in SD_KEY_IDS | CA_KEY_IDS:  # one SCP11 key (Amd F): P2 is its KID
        return put_scp11_key(isd, cmd, ctx)
    if cmd.p2 & 0x7F != 0x01:
        raise CardError(SW.INCORRECT_P1P2, "PUT KEY: only complete key sets starting at key 01")
    session = ctx.session
    if not isinstance(session, (SCP03Card, SCP02Card)):
        raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "PUT KEY needs an SCP02/SCP03 session")
    parsed = parse_put_key(cmd.data, session.decrypt_key)
    isd.keys.put(parsed.keys, replace=cmd.p1)
    log.info("PUT KEY: key set %02X %s", parsed.keys.kvn, "replaced" if cmd.p1 else "added")
    return ResponseAPDU(parsed.reply())


def delete(isd: ISDApplet, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
    """DELETE (GPCS §11.2): an application instance (4F) or a key set (D2, optionally with D0)."""
    # P2 01: "the last key may go", a YubiKey extension (yubikit delete_key(delete_last=True)); GPCS
    # §11.2.2.2 defines only 00 and 80, so other personas answer 6A86
    last = cmd.p2 == 0x01 and isd.persona.gp_delete_last
    if cmd.p1 & 0x7F or (cmd.p2 & 0x7F and not last):
        raise CardError(SW.INCORRECT_P1P2, f"DELETE P1P2 {cmd.p1:02X}{cmd.p2:02X}")
    items = {t.tag: t.value for t in parse_tlvs(cmd.data)}
    if DeleteTag.AID in items:
        if last:
            raise CardError(SW.INCORRECT_P1P2, f"DELETE P2 {cmd.p2:02X} of an application")
        _delete_application(isd, items[DeleteTag.AID])
        return ResponseAPDU(NO_RECEIPT)
    kvn = items.get(DeleteTag.KEY_VERSION)
    kid = items.get(DeleteTag.KEY_ID)
    if delete_scp11(isd, kid, kvn):  # SCP11 keys by D0 and/or D2 (Amd F; yubikit delete_key)
        return ResponseAPDU(NO_RECEIPT)
    if kvn is None and kid is not None and len(kid) == 1:
        # D0 alone: every key with that identifier (GPCS §11.2.2.3), so every key set holding it
        gone = isd.keys.delete_kid(kid[0], keep_one=not last and not isd.scp11.can_manage())
        log.info("DELETE: key identifier %02X, key sets %s", kid[0], " ".join(f"{k:02X}" for k in gone))
        return ResponseAPDU(NO_RECEIPT)
    if kvn is None or len(kvn) != 1:
        raise CardError(SW.WRONG_DATA, "DELETE key needs D0 (key identifier) or D2 (key version)")
    if kid is not None and (len(kid) != 1 or kid[0] not in (0x01, 0x02, 0x03)):
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "DELETE key: no such key identifier")
    isd.keys.delete(kvn[0], allow_last=last)
    log.info("DELETE: key set %02X", kvn[0])
    return ResponseAPDU(NO_RECEIPT)


def _delete_application(isd: ISDApplet, aid: bytes) -> None:
    if isd.card_life_cycle in _CONTENT_FROZEN:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, "card content is frozen in this life cycle state")
    if aid == isd.aid or aid in isd.aliases:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the ISD cannot be deleted")
    if aid in isd.load_files:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, "built-in load files cannot be deleted")
    record = next((r for r in isd.records if r.aid == aid), None)
    if record is None:
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "DELETE: no such application")
    remaining = [r for r in isd.records if r.aid != aid]
    load_file = isd.load_files.get(record.elf)
    module = load_file.module(record.module) if load_file else None
    with isd.store.batch():  # the registry entry and the instance's own state go together
        save_records(isd.store, remaining)
        if module is not None and module.destroy is not None:
            module.destroy(aid)
    isd.records = remaining
    isd.registry.remove(aid)
    log.info("DELETE: application %s", aid.hex().upper())


# -- SET STATUS ---------------------------------------------------------------------
def set_status(isd: ISDApplet, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
    """SET STATUS (GPCS §11.10): card life cycle (P1 80), lock/unlock an application (P1 40) or the ISD with its applications (P1 60)."""
    if cmd.p1 == StatusScopeP1.CARD:
        if cmd.data and cmd.data != isd.aid:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "SET STATUS 80 names another AID")
        _set_card_state(isd, cmd.p2)
        return ResponseAPDU()
    if cmd.p1 == StatusScopeP1.APPLICATION:
        _set_application_state(isd, bytes(cmd.data), cmd.p2)
        return ResponseAPDU()
    if cmd.p1 == StatusScopeP1.SD_AND_APPLICATIONS:
        set_sd_status(isd, bytes(cmd.data), cmd.p2)
        return ResponseAPDU()
    raise CardError(SW.INCORRECT_P1P2, f"SET STATUS P1 {cmd.p1:02X}")


def _set_card_state(isd: ISDApplet, p2: int) -> None:
    try:
        target = CardLifeCycle(p2)
    except ValueError:
        raise CardError(SW.WRONG_DATA, f"no card life cycle state {p2:02X}") from None
    current = isd.card_life_cycle
    if target not in _CARD_TRANSITIONS[current]:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, f"card life cycle {current.name} -> {target.name}")
    isd.set_card_life_cycle(target)
    log.info("card life cycle: %s -> %s", current.name, target.name)


def _set_application_state(isd: ISDApplet, aid: bytes, p2: int) -> None:
    record = next((r for r in isd.records if r.aid == aid), None)
    if record is None:
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "SET STATUS: no such application")
    locked = bool(record.life_cycle & AppLifeCycle.LOCKED)
    if p2 == AppLifeCycle.LOCKED:
        if locked:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "application already locked")
        new = record.life_cycle | AppLifeCycle.LOCKED
    elif p2 == 0x00:
        if not locked:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "application is not locked")
        new = record.life_cycle & ~AppLifeCycle.LOCKED
    else:
        raise CardError(SW.INCORRECT_P1P2, "application-specific states are set by the application")
    _update_record(isd, record, life_cycle=new)


def _update_record(isd: ISDApplet, record: AppRecord, *, life_cycle: int, privileges: bytes | None = None) -> None:
    updated = AppRecord(record.aid, record.elf, record.module, life_cycle, privileges or record.privileges)
    records = [updated if r.aid == record.aid else r for r in isd.records]
    save_records(isd.store, records)
    isd.records = records
    entry = isd.registry.get(record.aid)
    if entry is not None:
        entry.life_cycle = updated.life_cycle
        entry.privileges = updated.privileges


# -- STORE DATA -----------------------------------------------------------------------
def store_data(isd: ISDApplet, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
    """STORE DATA (GPCS §11.11) to the ISD: IIN 42, CIN 45, card data 66 in BER-TLV."""
    if cmd.p1 & 0x60:
        raise CardError(SW.WRONG_DATA, "STORE DATA: encrypted personalization data is not supported")
    if cmd.p1 & 0x18 == 0x08:
        raise CardError(SW.WRONG_DATA, "STORE DATA: DGI format is not supported; use BER-TLV")
    if cmd.data[:1] == b"\xa6":  # SCP11 certificates, allow-list, CA identifier (A6 first)
        return store_scp11_data(isd, bytes(cmd.data))
    changes: dict[str, bytes | None] = {}
    for item in parse_tlvs(cmd.data):
        match item.tag:
            case StoreDataTag.IIN:
                changes["iin"] = item.value
            case StoreDataTag.CIN:
                changes["cin"] = item.value
            case StoreDataTag.CARD_DATA:
                changes["card_data"] = item.value
            case _:
                raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"STORE DATA: tag {item.tag:X}")
    if not changes:
        raise CardError(SW.WRONG_DATA, "STORE DATA without data objects")
    isd.store.put_many(changes)
    return ResponseAPDU()


# -- INSTALL ---------------------------------------------------------------------------
def _fields(data: bytes, count: int) -> list[bytes]:
    """``count`` length-prefixed fields (GPCS §11.5.2.3); anything else is 6A80."""
    out: list[bytes] = []
    i = 0
    for _ in range(count):
        if i >= len(data) or i + 1 + data[i] > len(data):
            raise CardError(SW.WRONG_DATA, "INSTALL: truncated data field")
        out.append(bytes(data[i + 1 : i + 1 + data[i]]))
        i += 1 + data[i]
    if i != len(data):
        raise CardError(SW.WRONG_DATA, "INSTALL: trailing bytes")
    return out


def _privileges(raw: bytes) -> bytes:
    if len(raw) not in (1, 3):
        raise CardError(SW.WRONG_DATA, "privileges are 1 or 3 bytes")
    if raw[0] & Privilege.SECURITY_DOMAIN:
        raise CardError(SW.WRONG_DATA, "this card cannot install security domains")
    return raw + bytes(3 - len(raw))


def install(isd: ISDApplet, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
    """INSTALL [for install] / [for make selectable] of built-in modules (GPCS §11.5)."""
    if cmd.p2 != 0x00:
        raise CardError(SW.INCORRECT_P1P2, f"INSTALL P2 {cmd.p2:02X}")
    roles = cmd.p1 & 0x7F
    if roles not in (
        InstallRole.INSTALL,
        InstallRole.MAKE_SELECTABLE,
        InstallRole.INSTALL | InstallRole.MAKE_SELECTABLE,
    ):
        raise CardError(SW.FUNCTION_NOT_SUPPORTED, f"INSTALL P1 {cmd.p1:02X}: no LOAD, extradition or personalization")
    if isd.card_life_cycle in _CONTENT_FROZEN:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, "card content is frozen in this life cycle state")
    elf, module_aid, aid, privileges, _params, _token = _fields(cmd.data, 6)
    selectable = bool(roles & InstallRole.MAKE_SELECTABLE)
    if roles & InstallRole.INSTALL:
        _install_instance(isd, elf, module_aid, aid or module_aid, _privileges(privileges), selectable)
    else:
        record = next((r for r in isd.records if r.aid == aid), None)
        if record is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "INSTALL [for make selectable]: no such application")
        if record.life_cycle != AppLifeCycle.INSTALLED:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "application is not in state INSTALLED")
        new_privileges = _privileges(privileges) if privileges else None
        _update_record(isd, record, life_cycle=AppLifeCycle.SELECTABLE, privileges=new_privileges)
    return ResponseAPDU(NO_RECEIPT)


def _install_instance(
    isd: ISDApplet, elf: bytes, module_aid: bytes, aid: bytes, privileges: bytes, selectable: bool
) -> None:
    load_file = isd.load_files.get(elf)
    module = load_file.module(module_aid) if load_file else None
    if module is None:
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "INSTALL: no such load file or module")
    if not 5 <= len(aid) <= 16:
        raise CardError(SW.WRONG_DATA, "INSTALL: an AID is 5-16 bytes")
    taken = [isd.aid, *isd.aliases, *isd.load_files, *(r.aid for r in isd.records)]
    if aid in taken or isd.registry.get(aid) is not None:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, "INSTALL: AID already in use")
    state = AppLifeCycle.SELECTABLE if selectable else AppLifeCycle.INSTALLED
    record = AppRecord(aid, elf, module_aid, state, privileges)
    records = [*isd.records, record]
    with isd.store.batch():  # the instance's first state and its registry entry: one transaction
        applet = module.create(aid)
        save_records(isd.store, records)
    isd.records = records
    isd.registry.add(applet, life_cycle=state, privileges=privileges)
    log.info("INSTALL: %s from module %s", aid.hex().upper(), module_aid.hex().upper())
