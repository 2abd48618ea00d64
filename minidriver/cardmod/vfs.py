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

from ._core import alloc_copy, buffer, out_required
from .codes import MinidriverError, ScardCode
from .context import context_of, entry
from .piv_map import slot_for_index
from .structs import CardFileInfo
from .types import AccessCondition, CardData, CardDataVersion, DirAccessCondition, Out, PinSet
from .vfs_store import (
    _ROOT_FILES,
    _USER_WRITE,
    MSCP,
    _cert_index,
    _files,
    _fresh_state,
    _lookup,
    _require_write,
    _write,
    _write_certificate,
    card_changed,
    read_cardcf,
)

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

MAX_NAME = 8


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
    files = _files(piv, state, directory)
    index = _cert_index(name)
    # kxcNN and kscNN are the same certificate object: one of them existing is enough
    if name in files or (index is not None and any(_cert_index(n) == index for n in files)):
        raise MinidriverError(ScardCode.ERROR_FILE_EXISTS, name)
    if directory != MSCP or index is None:
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
