"""ISD data objects beyond the card data: GET DATA 67, D3, 2F00, FF21, and SET STATUS P1 60.

* ``67`` Card Capability Information (GPCS 2.3.1 §H.4): one ``A0`` template
  per secure channel protocol the card runs, ``80`` its identifier, ``81`` the
  i-parameters offered, ``82`` (SCP03) the AES key lengths as a bit map (b1
  AES-128, b2 AES-192, b3 AES-256).
* ``D3`` Current Security Level (GPCS 2.3.1 §11.3.3.1, data objects of GET DATA): one byte,
  the level of the secure channel on the channel of the command as GP Card
  API ``SecureChannel.getSecurityLevel`` reports it (b8 AUTHENTICATED, b6
  R-ENC, b5 R-MAC, b2 C-DEC, b1 C-MAC); ``00`` without a session.
* ``2F00`` List of Applications (GPCS 2.3.1 §11.3.3.1; the records of
  EF.DIR, ISO/IEC 7816-4 §8.2.1.1): one application template ``61 { 4F AID }``
  per application that can be selected now (SELECTABLE or beyond, not
  LOCKED). 6A88 when there is none.
* ``FF21`` Extended Card Resources Information (GP Card Spec Amendment C
  §8.2; ETSI TS 102 226 §8.2.1.7.2): ``81`` installed applications (2 bytes),
  ``82`` free non-volatile memory (4 bytes), ``83`` free volatile memory (4
  bytes). vcard has no memory limit of its own: the free NVM is a nominal
  capacity (:data:`NOMINAL_NVM`) less what the security domain stores, the free
  RAM a nominal constant.
* SET STATUS ``80 F0 60 P2 <SD AID>`` (GPCS 2.3.1 §11.10.2.1, P1 b7-b6 = 11:
  the security domain and its associated applications). The ISD is the only
  security domain; its life cycle is the card's (GPCS §5.1). P2 ``80`` locks
  it: the card goes SECURED -> CARD_LOCKED and every associated application
  not yet locked is locked; P2 ``00`` undoes exactly that (applications locked
  on their own before stay locked). One store transaction either way.
"""

from __future__ import annotations

import json
import logging
import os
from enum import IntEnum
from typing import TYPE_CHECKING

from ..gp.keys import SCPVersion
from ..iso7816 import SW, CardError, encode_tlv
from .base import CommandContext
from .isd_content import AppLifeCycle, AppRecord, CardLifeCycle, save_records

if TYPE_CHECKING:
    from .isd import ISDApplet

__all__ = ["CPLC_LEN", "NOMINAL_NVM", "NOMINAL_RAM", "ObjectTag", "get_data", "make_cplc", "set_sd_status"]

log = logging.getLogger(__name__)

CPLC_LEN = 42
NOMINAL_NVM = 0x00100000  #: 1 MiB of "EEPROM" the FF21 answer counts down from
NOMINAL_RAM = 0x00001000  #: 4 KiB of transient memory, reported as free
SCP11_ID = 0x11
#: SCP11 i-parameters (the parameter byte of tag 90, Amd F §7.1.1): 11b, 11a, 11c
SCP11_I = (0x00, 0x01, 0x03)
SD_LOCKED_APPS = "sd_locked_apps"  #: AIDs that SET STATUS 60 locked, for the unlock


class ObjectTag(IntEnum):
    """GET DATA tags answered here."""

    CARD_CAPABILITY = 0x67
    CURRENT_SECURITY_LEVEL = 0xD3
    APPLICATION_LIST = 0x2F00
    EXTENDED_CARD_RESOURCES = 0xFF21
    SCP_INFORMATION = 0xA0
    APPLICATION_TEMPLATE = 0x61
    AID = 0x4F


class CapabilityTag(IntEnum):
    """Inside an ``A0`` template of card capability information (GPCS §H.4)."""

    SCP_ID = 0x80
    I_PARAMETERS = 0x81
    AES_KEY_LENGTHS = 0x82


class ResourceTag(IntEnum):
    """Inside ``FF21`` (Amendment C; ETSI TS 102 226 §8.2.1.7.2)."""

    INSTALLED_APPLICATIONS = 0x81
    FREE_NVM = 0x82
    FREE_RAM = 0x83


def get_data(isd: ISDApplet, tag: int, ctx: CommandContext) -> bytes | None:
    """The whole TLV of ``tag`` if it is one of the objects above, else None."""
    match tag:
        case ObjectTag.CARD_CAPABILITY:
            return encode_tlv(ObjectTag.CARD_CAPABILITY, _capabilities(isd))
        case ObjectTag.CURRENT_SECURITY_LEVEL:
            return encode_tlv(ObjectTag.CURRENT_SECURITY_LEVEL, bytes((int(ctx.level) & 0xFF,)))
        case ObjectTag.APPLICATION_LIST:
            listed = b"".join(
                encode_tlv(ObjectTag.APPLICATION_TEMPLATE, encode_tlv(ObjectTag.AID, r.aid))
                for r in isd.records
                if r.life_cycle & AppLifeCycle.SELECTABLE == AppLifeCycle.SELECTABLE
                and not r.life_cycle & AppLifeCycle.LOCKED
            )
            return listed or None
        case ObjectTag.EXTENDED_CARD_RESOURCES:
            names = isd.store.keys()  # a Namespace is not iterable
            used = sum(len(isd.store.get(name) or b"") for name in names)
            body = (
                encode_tlv(ResourceTag.INSTALLED_APPLICATIONS, len(isd.records).to_bytes(2, "big"))
                + encode_tlv(ResourceTag.FREE_NVM, max(NOMINAL_NVM - used, 0).to_bytes(4, "big"))
                + encode_tlv(ResourceTag.FREE_RAM, NOMINAL_RAM.to_bytes(4, "big"))
            )
            return encode_tlv(ObjectTag.EXTENDED_CARD_RESOURCES, body)
    return None


def _capabilities(isd: ISDApplet) -> bytes:
    """``A0`` per protocol: SCP03 always, SCP02 when a 3DES key set exists, SCP11 (P-256) always."""
    config = isd.config

    def scp(ident: int, i_values: bytes, extra: bytes = b"") -> bytes:
        body = encode_tlv(CapabilityTag.SCP_ID, bytes((ident,))) + encode_tlv(CapabilityTag.I_PARAMETERS, i_values)
        return encode_tlv(ObjectTag.SCP_INFORMATION, body + extra)

    out = scp(SCPVersion.SCP03, bytes((config.scp03_i,)), encode_tlv(CapabilityTag.AES_KEY_LENGTHS, b"\x07"))
    if any(ks.scp == SCPVersion.SCP02 for ks in isd.keysets()) or config.scp == SCPVersion.SCP02:
        out += scp(SCPVersion.SCP02, bytes((config.scp02_i,)))
    return out + scp(SCP11_ID, bytes(SCP11_I))


# -- SET STATUS 60 ------------------------------------------------------------------
class SDStatus(IntEnum):
    """P2 of SET STATUS 60 (GPCS §11.10.2.2): lock, or unlock back to the previous state."""

    UNLOCK = 0x00
    LOCK = 0x80


def set_sd_status(isd: ISDApplet, aid: bytes, p2: int) -> None:
    """Lock or unlock the ISD (the card) together with its associated applications."""
    if aid and aid != isd.aid and aid not in isd.aliases:
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "SET STATUS 60: the ISD is the only security domain")
    current = isd.card_life_cycle
    if p2 == SDStatus.LOCK:
        if current != CardLifeCycle.SECURED:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, f"SET STATUS 60: the card is {current.name}, not SECURED")
        target = [r for r in isd.records if not r.life_cycle & AppLifeCycle.LOCKED]
        records = [_with_state(r, r.life_cycle | AppLifeCycle.LOCKED) if r in target else r for r in isd.records]
        marker: bytes | None = json.dumps([r.aid.hex() for r in target]).encode()
        new_card = CardLifeCycle.CARD_LOCKED
    elif p2 == SDStatus.UNLOCK:
        if current != CardLifeCycle.CARD_LOCKED:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, f"SET STATUS 60: the card is {current.name}, not CARD_LOCKED")
        ours = {bytes.fromhex(a) for a in isd.store.get_json(SD_LOCKED_APPS, [])}
        records = [_with_state(r, r.life_cycle & ~AppLifeCycle.LOCKED) if r.aid in ours else r for r in isd.records]
        marker = None
        new_card = CardLifeCycle.SECURED
    else:
        raise CardError(SW.INCORRECT_P1P2, f"SET STATUS 60: P2 {p2:02X} (80 lock, 00 unlock)")
    with isd.store.batch():  # card state, application states and the marker: one transaction
        save_records(isd.store, records)
        isd.store.put(SD_LOCKED_APPS, marker)
        isd.set_card_life_cycle(new_card)
    isd.records = records
    for record in records:
        entry = isd.registry.get(record.aid)
        if entry is not None:
            entry.life_cycle = record.life_cycle
    log.info("SET STATUS 60: card %s -> %s with its applications", current.name, new_card.name)


def _with_state(record: AppRecord, life_cycle: int) -> AppRecord:
    return AppRecord(record.aid, record.elf, record.module, life_cycle, record.privileges)


def make_cplc() -> bytes:
    """CPLC (GPCS §H.6) with fixed vendor fields and a random IC serial number."""
    fields = (
        bytes.fromhex("4790"),  # IC fabricator (test value)
        bytes.fromhex("5167"),  # IC type
        bytes.fromhex("5643"),  # OS identifier "VC"
        bytes.fromhex("6330"),  # OS release date (YDDD)
        bytes.fromhex("0100"),  # OS release level
        bytes.fromhex("6330"),  # IC fabrication date
        os.urandom(4),  # IC serial number
        bytes.fromhex("0001"),  # IC batch identifier
        bytes(12),  # module fabricator .. pre-perso date
        bytes(4),  # pre-perso equipment
        bytes(4),  # personaliser, perso date
        bytes(4),  # perso equipment
    )
    cplc = b"".join(fields)
    if len(cplc) != CPLC_LEN:
        raise AssertionError(f"CPLC layout is {len(cplc)} bytes")  # pragma: no cover
    return cplc
