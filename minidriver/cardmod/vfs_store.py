"""Contents and persistence of the virtual files (the model behind :mod:`.vfs`'s entry points).

See :mod:`.vfs` for the table of files and the write rules; this module computes each file from
the PIV card, keeps ``cardcf``/``cmapfile`` (vendor objects 5FFF20/5FFF21, or the context when
the management key is not authenticated) and goes through the CSP cache callbacks.
"""

from __future__ import annotations

import logging

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from ..iso7816 import SW, ApduError, encode_tlv, parse_tlvs
from ..piv import ObjectId, PivSession
from ._core import apdu_error
from .codes import MinidriverError, ScardCode
from .context import context_of
from .piv_map import (
    SLOTS,
    CardIdentity,
    CoreState,
    card_id,
    cert_file_name,
    cmap_records,
    core_state,
    index_for_slot,
    key_info,
    read_card,
    read_identity,
    slot_for_index,
)
from .structs import CONTAINER_MAP_RECORD_LEN, CardCacheFile, ContainerMapRecord
from .types import AccessCondition, CardData, Out, PinSet

log = logging.getLogger(__name__)

__all__ = ["VENDOR_CARDCF", "VENDOR_CMAP", "card_changed", "read_cardcf"]

VENDOR_CARDCF = 0x5FFF20  #: vcard's object for ``cardcf`` (PIV vendor range, readable by anyone)
VENDOR_CMAP = 0x5FFF21  #: vcard's object for the names/default flag written into ``cmapfile``
MSCP = "mscp"
CARDAPPS = b"mscp\0\0\0\0"
_USER_WRITE = AccessCondition.EVERYONE_READ_USER_WRITE_AC
_ADMIN_WRITE = AccessCondition.EVERYONE_READ_ADMIN_WRITE_AC
_ROOT_FILES = {"cardid": _ADMIN_WRITE, "cardcf": _USER_WRITE, "cardapps": _ADMIN_WRITE}
_UNCACHED = ("cardid", "cardcf")  #: never through the cache callbacks (§3.4: infinite loop)
_ABSENT = (SW.FILE_NOT_FOUND, SW.REFERENCED_DATA_NOT_FOUND)


def _cert_index(name: str) -> int | None:
    """NN of ``kxcNN``/``kscNN`` when it names a container index, else None."""
    if len(name) == 5 and name[:3] in ("kxc", "ksc") and name[3:].isdigit():
        index = int(name[3:])
        return index if slot_for_index(index) is not None else None
    return None


# -- cardcf and change tracking -----------------------------------------------------------------
def _get_object(piv: PivSession, tag: int) -> bytes | None:
    try:
        return piv.get_data(tag)
    except ApduError as exc:
        if exc.sw in _ABSENT:
            return None
        raise MinidriverError(ScardCode.SCARD_E_COMM_DATA_LOST, f"GET DATA {tag:X}: {exc}") from None


def read_cardcf(card_data: CardData) -> bytes:
    """``cardcf``: the context's unsaved copy, else the card's object, else fresh counters."""
    piv, state = core_state(card_data)
    stored = _get_object(piv, VENDOR_CARDCF)  # read even with a local copy: the card must be there
    if "cardcf" in state.overlay:
        return state.overlay["cardcf"]
    return stored if stored is not None and len(stored) >= 6 else bytes(CardCacheFile())


def _is_admin(card_data: CardData) -> bool:
    return bool(context_of(card_data).authenticated & PinSet.ADMIN)


def _store(card_data: CardData, name: str, tag: int, data: bytes) -> None:
    """Keep ``data`` for ``name``: on the card when admin, else in the context (pushed later).

    A card that refuses the vendor object (a PIV card without the 5FFFxx range) keeps it in the
    context as well: bookkeeping never fails the change that caused it.
    """
    piv, state = core_state(card_data)
    state.overlay[name] = data
    if not _is_admin(card_data):
        return
    for pending, pending_tag in (("cardcf", VENDOR_CARDCF), ("cmapfile", VENDOR_CMAP)):
        if pending in state.overlay:
            try:
                piv.put_data(pending_tag, state.overlay[pending])
            except ApduError as exc:
                log.debug("PUT DATA %X refused (%s): %s kept in the context", pending_tag, exc, pending)
                if exc.sw == SW.SECURITY_STATUS_NOT_SATISFIED:
                    context_of(card_data).authenticated &= ~PinSet.ADMIN
                return
            del state.overlay[pending]


def card_changed(card_data: CardData, *, pins: bool = False, containers: bool = False, files: bool = False) -> None:
    """Increment ``cardcf``'s freshness counters after a change made through this context.

    Called by the PIN functions, by the file writes below and by the container functions
    (CardCreateContainer/CardDeleteContainer: ``containers=True``).
    """
    _, state = core_state(card_data)
    raw = read_cardcf(card_data)
    cf = CardCacheFile.from_bytes(raw)
    new = CardCacheFile(
        cf.bVersion,
        (cf.bPinsFreshness + pins) & 0xFF,
        (cf.wContainersFreshness + containers) & 0xFFFF,
        (cf.wFilesFreshness + files) & 0xFFFF,
    )
    content = bytes(new) + raw[6:]
    _store(card_data, "cardcf", VENDOR_CARDCF, content)
    state.seen_cardcf = content
    if containers or files:
        state.model.slots.clear()


def _reread_identity(piv: PivSession, state: CoreState) -> CardIdentity:
    """The CHUID read again (the CSP reads cardid to tell cards apart); a new one drops the model."""
    known = state.model.identity if state.model.identity_read else None
    state.model.identity_read = False
    identity = read_identity(piv, state.model)
    if known is not None and identity != known:
        state.model.slots.clear()
    return identity


def _fresh_state(card_data: CardData) -> tuple[PivSession, CoreState, bytes]:
    """Session, state and current ``cardcf``; a cardcf another process changed drops the model."""
    piv, state = core_state(card_data)
    cardcf = read_cardcf(card_data)
    if state.seen_cardcf is not None and state.seen_cardcf != cardcf:
        state.model.slots.clear()
        state.model.identity_read = False
    state.seen_cardcf = cardcf
    return piv, state, cardcf


# -- file contents ------------------------------------------------------------------------------
def _cmap_overlay(piv: PivSession, state: CoreState) -> list[ContainerMapRecord]:
    raw = state.overlay.get("cmapfile")
    if raw is None:
        raw = _get_object(piv, VENDOR_CMAP) or b""
    count = len(raw) // CONTAINER_MAP_RECORD_LEN
    return [ContainerMapRecord.from_bytes(raw[i * 86 : (i + 1) * 86]) for i in range(count)]


def _cmapfile(piv: PivSession, state: CoreState) -> bytes:
    records = cmap_records(read_card(piv, state.model))
    written = _cmap_overlay(piv, state)
    valid = [i for i, r in enumerate(records) if r.bFlags]
    default_written = [i for i, r in enumerate(written) if r.bFlags & 2 and i in valid]
    for i in valid:
        r = records[i]
        name = written[i].wszGuid if i < len(written) and written[i].bFlags & 1 and written[i].wszGuid else r.wszGuid
        flags = 1 | (2 if (i == default_written[0] if default_written else r.bFlags & 2) else 0)
        records[i] = ContainerMapRecord(name, flags, r.wSigKeySizeBits, r.wKeyExchangeKeySizeBits)
    return b"".join(bytes(r) for r in records)


def _files(piv: PivSession, state: CoreState, directory: str) -> dict[str, AccessCondition]:
    """The files of a directory and their access conditions."""
    if directory == "":
        return dict(_ROOT_FILES)
    files = {"cmapfile": _USER_WRITE}
    for slot, found in zip(SLOTS, read_card(piv, state.model), strict=True):
        cert = state.model.slots[slot][1]
        if found is not None and found.has_certificate:
            files[cert_file_name(found)] = _USER_WRITE
        elif cert:  # a certificate without a key: listed by what the certificate says
            info = key_info(slot, certificate=cert)
            exchange = info.key_exchange if info is not None else False
            files[f"{'kxc' if exchange else 'ksc'}{index_for_slot(slot):02d}"] = _USER_WRITE
    for name in state.created:
        files[name] = _USER_WRITE
    if _ca_certificates(state):
        files["msroots"] = _USER_WRITE
    return files


def _ca_certificates(state: CoreState) -> list[x509.Certificate]:
    cas = []
    for slot in SLOTS:
        der = state.model.slots.get(slot, (None, None))[1]
        if not der:
            continue
        try:
            cert = x509.load_der_x509_certificate(der)
            if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                cas.append(cert)
        except (ValueError, x509.ExtensionNotFound):
            continue
    return cas


def _content(card_data: CardData, piv: PivSession, state: CoreState, directory: str, name: str) -> bytes:
    if directory == "":
        if name == "cardid":
            return card_id(_reread_identity(piv, state))
        if name == "cardcf":
            return read_cardcf(card_data)
        return CARDAPPS
    if name == "cmapfile":
        return _cmapfile(piv, state)
    if name == "msroots":
        return pkcs7.serialize_certificates(_ca_certificates(state), Encoding.DER)
    index = _cert_index(name)
    slot = slot_for_index(index) if index is not None else None
    cert = state.model.slots.get(slot, (None, None))[1] if slot is not None else None
    return cert or b""  # a file created and not written yet is empty


def _lookup(card_data: CardData, directory: str, name: str) -> tuple[PivSession, CoreState, bytes, AccessCondition]:
    """Content and AC of an existing file, through the CSP cache for the cacheable ones."""
    if directory == "" and name in _UNCACHED:
        piv, state = core_state(card_data)
        if name not in _ROOT_FILES:
            raise MinidriverError(ScardCode.SCARD_E_FILE_NOT_FOUND, name)
        return piv, state, _content(card_data, piv, state, directory, name), _ROOT_FILES[name]
    piv, state, cardcf = _fresh_state(card_data)
    ac = _ROOT_FILES.get(name, _USER_WRITE) if directory == "" else _USER_WRITE
    tag = f"vcard:{card_id(read_identity(piv, state.model)).hex()}:{cardcf.hex()}:{directory}/{name}"
    lookup, add = card_data.pfnCspCacheLookupFile, card_data.pfnCspCacheAddFile
    if lookup is not None and name not in state.created:
        box: Out[bytes] = Out()
        if lookup(card_data.pvCacheContext, tag, 0, box) == 0 and box.value is not None:
            return piv, state, bytes(box.value), ac
    if name not in _files(piv, state, directory):
        raise MinidriverError(ScardCode.SCARD_E_FILE_NOT_FOUND, f"no file {directory + '/' if directory else ''}{name}")
    data = _content(card_data, piv, state, directory, name)
    if add is not None and name not in state.created:
        add(card_data.pvCacheContext, tag, 0, data)
    return piv, state, data, ac


# -- write rules --------------------------------------------------------------------------------
def _require_write(card_data: CardData, ac: AccessCondition, *, card_backed: bool) -> None:
    """User-write files stored on the card still need the management key (PUT DATA)."""
    authenticated = context_of(card_data).authenticated
    if ac == _ADMIN_WRITE or card_backed:
        if not authenticated & PinSet.ADMIN:
            raise MinidriverError(
                ScardCode.SCARD_W_SECURITY_VIOLATION, "the card needs the management key (ROLE_ADMIN)"
            )
    elif not authenticated & (PinSet.USER | PinSet.ADMIN):
        raise MinidriverError(ScardCode.SCARD_W_SECURITY_VIOLATION, "needs ROLE_USER or ROLE_ADMIN")


def _write_cardid(piv: PivSession, state: CoreState, data: bytes) -> None:
    if len(data) != 16 or not any(data):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "cardid is 16 bytes, not all zero")
    chuid = _get_object(piv, ObjectId.CHUID) or b""
    items = [t for t in parse_tlvs(chuid) if t.tag != 0x34] if chuid else []
    head = [t for t in items if t.tag == 0x30]
    rest = [t for t in items if t.tag != 0x30]
    content = b"".join(encode_tlv(t.tag, t.value) for t in head) + encode_tlv(0x34, data)
    content += b"".join(encode_tlv(t.tag, t.value) for t in rest)
    try:
        piv.put_data(ObjectId.CHUID, content)
    except ApduError as exc:
        raise apdu_error(exc, "PUT DATA CHUID") from None
    state.model.identity_read = False


def _write_certificate(card_data: CardData, piv: PivSession, state: CoreState, name: str, data: bytes) -> None:
    index = _cert_index(name)
    slot = slot_for_index(index) if index is not None else None
    if slot is None:  # pragma: no cover - _files lists only container indexes
        raise MinidriverError(ScardCode.SCARD_E_FILE_NOT_FOUND, name)
    try:
        if data:
            piv.put_certificate(slot, data)
        else:
            piv.delete_certificate(slot)
    except ApduError as exc:
        raise apdu_error(exc, f"PUT DATA (certificate of slot {slot:02X})") from None
    state.created.discard(name)
    state.model.slots.pop(slot, None)


def _write(card_data: CardData, directory: str, name: str, data: bytes) -> None:
    piv, state, _, ac = _lookup(card_data, directory, name)
    bookkeeping = (directory, name) in (("", "cardcf"), (MSCP, "cmapfile"))
    _require_write(card_data, ac, card_backed=not bookkeeping)
    if (directory, name) == ("", "cardcf"):
        if len(data) < 6:
            raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "cardcf holds at least 6 bytes")
        _store(card_data, "cardcf", VENDOR_CARDCF, data)
        state.seen_cardcf = data
        return
    if name == "cmapfile":
        if len(data) % CONTAINER_MAP_RECORD_LEN or len(data) > CONTAINER_MAP_RECORD_LEN * len(SLOTS):
            raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "cmapfile is whole 86-byte records, 24 at most")
        _store(card_data, "cmapfile", VENDOR_CMAP, data)
        card_changed(card_data, containers=True)  # a new cardcf: cached copies are stale
        return
    if name == "cardid":
        _write_cardid(piv, state, data)
    elif name == "cardapps":
        if data != CARDAPPS:
            raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "a PIV card has the mscp application only")
        return
    elif name == "msroots":
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "msroots is computed from the CA certificates")
    else:
        _write_certificate(card_data, piv, state, name, data)
    card_changed(card_data, files=True, containers=_cert_index(name) is not None)
