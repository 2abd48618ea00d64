"""The Base CSP file system of a PIV card (minidriver-spec.md §3.4, §4 "Well-known files", §6).

A PIV card has no file system: every file is virtual, computed from PIV objects.

=================  ==========================  ==================================================
file               AC                          backed by
=================  ==========================  ==================================================
cardid             EveryoneReadAdminWriteAc    CHUID GUID (OpenSC rule, piv_map.card_id); an admin
                                               write replaces the CHUID's GUID (PUT DATA)
cardcf             EveryoneReadUserWriteAc     vendor object 5FFF20 (6 bytes, counters 0 if absent)
cardapps           EveryoneReadAdminWriteAc    constant ``mscp`` record
mscp/cmapfile      EveryoneReadUserWriteAc     piv_map (24 records, fixed index per slot); names and
                                               the default flag a caller wrote: vendor object 5FFF21
mscp/kxcNN, kscNN  EveryoneReadUserWriteAc     the slot's certificate object (raw DER, gunzipped)
mscp/msroots       EveryoneReadUserWriteAc     PKCS#7 bag of the CA certificates in the slots
=================  ==========================  ==================================================

Writes: PIV objects change only under the management key (PUT DATA), so a file stored on the
card is written only with ROLE_ADMIN authenticated; otherwise SCARD_W_SECURITY_VIOLATION. The
two bookkeeping files ``cardcf`` and ``cmapfile`` also accept ROLE_USER writes: those stay in
the context (simulated for the insertion lifetime, §3.4) and reach the card at the next write
made as admin. New directories and files other than the ones above: SCARD_E_UNSUPPORTED_FEATURE.

Caching: files other than ``cardid``/``cardcf`` go through the CSP cache callbacks under a tag
naming cardid and cardcf, so a changed ``cardcf`` (freshness counters, incremented by every
change made through this minidriver) makes every cached copy stale (§3.2 "Cache modes").
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from ..iso7816 import SW, ApduError, encode_tlv, parse_tlvs
from ..piv import ObjectId, PivSession
from ._core import alloc_copy, apdu_error, buffer, out_required
from .codes import MinidriverError, ScardCode
from .context import context_of, entry
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
from .structs import CONTAINER_MAP_RECORD_LEN, CardCacheFile, CardFileInfo, ContainerMapRecord
from .types import AccessCondition, CardData, CardDataVersion, DirAccessCondition, Out, PinSet

__all__ = [
    "CardCreateDirectory",
    "CardCreateFile",
    "CardDeleteDirectory",
    "CardDeleteFile",
    "CardEnumFiles",
    "CardGetFileInfo",
    "CardReadFile",
    "CardWriteFile",
    "card_changed",
    "read_cardcf",
]

VENDOR_CARDCF = 0x5FFF20  #: vcard's object for ``cardcf`` (PIV vendor range, readable by anyone)
VENDOR_CMAP = 0x5FFF21  #: vcard's object for the names/default flag written into ``cmapfile``
MSCP = "mscp"
CARDAPPS = b"mscp\0\0\0\0"
MAX_NAME = 8
_USER_WRITE = AccessCondition.EVERYONE_READ_USER_WRITE_AC
_ADMIN_WRITE = AccessCondition.EVERYONE_READ_ADMIN_WRITE_AC
_ROOT_FILES = {"cardid": _ADMIN_WRITE, "cardcf": _USER_WRITE, "cardapps": _ADMIN_WRITE}
_UNCACHED = ("cardid", "cardcf")  #: never through the cache callbacks (§3.4: infinite loop)
_ABSENT = (SW.FILE_NOT_FOUND, SW.REFERENCED_DATA_NOT_FOUND)


# -- names -------------------------------------------------------------------------------------
def _name(value: str | None, what: str, *, optional: bool = False) -> str:
    """Lowercased ANSI name of at most 8 characters; NULL/"" -> "" when ``optional``."""
    if value is None or value == "":
        if optional:
            return ""
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"{what} is NULL or empty")
    if not isinstance(value, str) or len(value) > MAX_NAME or not value.isascii() or "/" in value or "\0" in value:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"{what} must be 1-{MAX_NAME} ANSI characters")
    return value.lower()


def _directory(value: str | None) -> str:
    directory = _name(value, "pszDirectoryName", optional=True)
    if directory not in ("", MSCP):
        raise MinidriverError(ScardCode.SCARD_E_DIR_NOT_FOUND, f"no directory {directory!r}")
    return directory


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
    """Keep ``data`` for ``name``: on the card when admin, else in the context (pushed later)."""
    piv, state = core_state(card_data)
    state.overlay[name] = data
    if not _is_admin(card_data):
        return
    for pending, pending_tag in (("cardcf", VENDOR_CARDCF), ("cmapfile", VENDOR_CMAP)):
        if pending in state.overlay:
            try:
                piv.put_data(pending_tag, state.overlay[pending])
            except ApduError as exc:
                if exc.sw == SW.SECURITY_STATUS_NOT_SATISFIED:
                    context_of(card_data).authenticated &= ~PinSet.ADMIN
                    return  # stays in the context
                raise apdu_error(exc, f"PUT DATA {pending_tag:X}") from None
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


# -- entry points -------------------------------------------------------------------------------
@entry(since=CardDataVersion.FOUR)
def CardReadFile(
    pCardData: CardData,
    pszDirectoryName: str | None,
    pszFileName: str | None,
    dwFlags: int,
    ppbData: Out[bytearray] | None,
    pcbData: Out[int] | None,
) -> None:
    """The whole file, allocated with pfnCspAlloc."""
    directory = _directory(pszDirectoryName)
    name = _name(pszFileName, "pszFileName")
    if dwFlags != 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwFlags must be 0")
    out_required(ppbData, pcbData)
    assert ppbData is not None and pcbData is not None
    _, _, data, _ = _lookup(pCardData, directory, name)
    ppbData.value = alloc_copy(pCardData, data)
    pcbData.value = len(data)


@entry(since=CardDataVersion.FOUR)
def CardWriteFile(
    pCardData: CardData,
    pszDirectoryName: str | None,
    pszFileName: str | None,
    dwFlags: int,
    pbData: bytes | None,
    cbData: int,
) -> None:
    """Replace a file's content (header order: dwFlags, pbData, cbData)."""
    directory = _directory(pszDirectoryName)
    name = _name(pszFileName, "pszFileName")
    if dwFlags != 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwFlags must be 0")
    _write(pCardData, directory, name, buffer(pbData, cbData, "pbData"))


@entry(since=CardDataVersion.FOUR)
def CardCreateFile(
    pCardData: CardData,
    pszDirectoryName: str | None,
    pszFileName: str | None,
    cbInitialCreationSize: int,
    AccessCondition_: int,
) -> None:
    """Only certificate files (``mscp/kxcNN``/``kscNN`` of a container index) can be created."""
    directory = _directory(pszDirectoryName)
    name = _name(pszFileName, "pszFileName")
    if AccessCondition_ not in {int(a) for a in AccessCondition} or AccessCondition_ == AccessCondition.INVALID_AC:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"AccessCondition {AccessCondition_!r}")
    if not isinstance(cbInitialCreationSize, int) or cbInitialCreationSize < 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "cbInitialCreationSize")
    piv, state, _ = _fresh_state(pCardData)
    if name in _files(piv, state, directory):
        raise MinidriverError(ScardCode.ERROR_FILE_EXISTS, name)
    if directory != MSCP or _cert_index(name) is None:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "a PIV card stores certificate files only")
    _require_write(pCardData, _USER_WRITE, card_backed=True)
    if cbInitialCreationSize > MAX_CERT_OBJECT:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "larger than a certificate object can be")
    state.created.add(name)


@entry(since=CardDataVersion.FOUR)
def CardDeleteFile(pCardData: CardData, pszDirectoryName: str | None, pszFileName: str | None, dwFlags: int) -> None:
    directory = _directory(pszDirectoryName)
    name = _name(pszFileName, "pszFileName")
    if dwFlags != 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwFlags must be 0")
    piv, state, _ = _fresh_state(pCardData)
    if name not in _files(piv, state, directory):
        raise MinidriverError(ScardCode.SCARD_E_FILE_NOT_FOUND, name)
    if directory != MSCP or _cert_index(name) is None:
        _require_write(pCardData, _ROOT_FILES.get(name, _USER_WRITE), card_backed=True)
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"{name} always exists on a PIV card")
    _require_write(pCardData, _USER_WRITE, card_backed=True)
    if name in state.created and state.model.slots.get(slot_for_index(int(name[3:])) or 0, (None, None))[1] is None:
        state.created.discard(name)
        return
    _write_certificate(pCardData, piv, state, name, b"")
    card_changed(pCardData, files=True, containers=True)


@entry(since=CardDataVersion.FOUR)
def CardEnumFiles(
    pCardData: CardData,
    pszDirectoryName: str | None,
    pmszFileNames: Out[bytearray] | None,
    pdwcbFileName: Out[int] | None,
    dwFlags: int,
) -> None:
    """The names as one multi-string (each NUL-terminated, one more NUL at the end)."""
    if isinstance(pmszFileNames, Out):
        pmszFileNames.value = None
    directory = _directory(pszDirectoryName)
    if dwFlags != 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwFlags must be 0")
    out_required(pmszFileNames, pdwcbFileName)
    assert pmszFileNames is not None and pdwcbFileName is not None
    piv, state, _ = _fresh_state(pCardData)
    names = sorted(_files(piv, state, directory))
    if not names:  # pragma: no cover - both directories always hold files
        raise MinidriverError(ScardCode.SCARD_E_FILE_NOT_FOUND, "empty directory")
    multi = b"".join(n.encode("ascii") + b"\0" for n in names) + b"\0"
    pmszFileNames.value = alloc_copy(pCardData, multi)
    pdwcbFileName.value = len(multi)


@entry(since=CardDataVersion.FOUR)
def CardGetFileInfo(
    pCardData: CardData, pszDirectoryName: str | None, pszFileName: str | None, pCardFileInfo: CardFileInfo | None
) -> None:
    directory = _directory(pszDirectoryName)
    name = _name(pszFileName, "pszFileName")
    if pCardFileInfo is None:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "pCardFileInfo is NULL")
    if pCardFileInfo.dwVersion not in (0, 1):
        raise MinidriverError(ScardCode.ERROR_REVISION_MISMATCH, f"CARD_FILE_INFO version {pCardFileInfo.dwVersion}")
    _, _, data, ac = _lookup(pCardData, directory, name)
    pCardFileInfo.dwVersion = 1
    pCardFileInfo.cbFileSize = len(data)
    pCardFileInfo.AccessCondition = int(ac)


@entry(since=CardDataVersion.FOUR)
def CardCreateDirectory(pCardData: CardData, pszDirectoryName: str | None, AccessCondition_: int) -> None:
    """The root and ``mscp`` exist; a PIV card has nowhere to keep another directory."""
    name = _name(pszDirectoryName, "pszDirectoryName")
    if name == MSCP:
        raise MinidriverError(ScardCode.ERROR_FILE_EXISTS, name)
    if AccessCondition_ not in (
        DirAccessCondition.USER_CREATE_DELETE_DIR_AC,
        DirAccessCondition.ADMIN_CREATE_DELETE_DIR_AC,
    ):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"AccessCondition {AccessCondition_!r}")
    authenticated = context_of(pCardData).authenticated
    need = (
        PinSet.ADMIN
        if AccessCondition_ == DirAccessCondition.ADMIN_CREATE_DELETE_DIR_AC
        else PinSet.USER | PinSet.ADMIN
    )
    if not authenticated & need:
        raise MinidriverError(ScardCode.SCARD_W_SECURITY_VIOLATION, "not authenticated for this directory")
    raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "a PIV card has the mscp directory only")


@entry(since=CardDataVersion.FOUR)
def CardDeleteDirectory(pCardData: CardData, pszDirectoryName: str | None) -> None:
    name = _name(pszDirectoryName, "pszDirectoryName")
    if name != MSCP:
        raise MinidriverError(ScardCode.SCARD_E_DIR_NOT_FOUND, name)
    if not context_of(pCardData).authenticated & (PinSet.USER | PinSet.ADMIN):
        raise MinidriverError(ScardCode.SCARD_W_SECURITY_VIOLATION, "not authenticated")
    raise MinidriverError(ScardCode.ERROR_DIR_NOT_EMPTY, "mscp always holds cmapfile")


MAX_CERT_OBJECT = 3052  #: SP 800-73-4 part 1 Table 10: certificate objects up to 1858 + slack; YubiKey 5: ~3 KB
