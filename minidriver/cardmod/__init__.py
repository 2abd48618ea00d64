"""The Windows smart-card minidriver API (Cardmod.h v7) over PC/SC, for PIV cards.

Importing this package registers every entry point in the function table that
CardAcquireContext fills. The modules group the entry points as minidriver-spec.md §2 does.
"""

from __future__ import annotations

from . import containers, crypto, pins, properties, ski, vfs  # noqa: F401 - register entry points
from . import structs as _structs
from .codes import MinidriverError, ScardCode, code_name
from .containers import CardCreateContainer, CardCreateContainerEx, CardDeleteContainer, CardGetContainerInfo
from .context import FUNCTION_TABLE, CardAcquireContext, CardDeleteContext
from .crypto import CardConstructDHAgreement, CardDeriveKey, CardDestroyDHAgreement, CardRSADecrypt, CardSignData
from .facade import Minidriver, PinError
from .helper import card_data_for_reader, release
from .pins import (
    CardAuthenticateChallenge,
    CardAuthenticateEx,
    CardAuthenticatePin,
    CardChangeAuthenticator,
    CardChangeAuthenticatorEx,
    CardDeauthenticate,
    CardDeauthenticateEx,
    CardGetChallenge,
    CardGetChallengeEx,
    CardUnblockPin,
)
from .properties import (
    CardGetContainerProperty,
    CardGetProperty,
    CardQueryCapabilities,
    CardQueryFreeSpace,
    CardQueryKeySizes,
    CardSetContainerProperty,
    CardSetProperty,
)
from .ski import (
    CardDestroyKey,
    CardGetAlgorithmProperty,
    CardGetKeyProperty,
    CardGetSharedKeyHandle,
    CardImportSessionKey,
    CardProcessEncryptedData,
    CardSetKeyProperty,
    MDEncryptData,
    MDImportSessionKey,
)
from .ski_local import LocalInjector, inject
from .ski_state import configure_server
from .structs import *  # noqa: F403 - every Cardmod.h structure by its Python name
from .types import CardData, Out
from .vfs import (
    CardCreateDirectory,
    CardCreateFile,
    CardDeleteDirectory,
    CardDeleteFile,
    CardEnumFiles,
    CardGetFileInfo,
    CardReadFile,
    CardWriteFile,
)

__all__ = [
    *_structs.__all__,
    "FUNCTION_TABLE",
    "CardAcquireContext",
    "CardAuthenticateChallenge",
    "CardAuthenticateEx",
    "CardAuthenticatePin",
    "CardChangeAuthenticator",
    "CardChangeAuthenticatorEx",
    "CardConstructDHAgreement",
    "CardCreateContainer",
    "CardCreateContainerEx",
    "CardCreateDirectory",
    "CardCreateFile",
    "CardData",
    "CardDeauthenticate",
    "CardDeauthenticateEx",
    "CardDeleteContainer",
    "CardDeleteContext",
    "CardDeleteDirectory",
    "CardDeleteFile",
    "CardDeriveKey",
    "CardDestroyDHAgreement",
    "CardDestroyKey",
    "CardEnumFiles",
    "CardGetAlgorithmProperty",
    "CardGetChallenge",
    "CardGetChallengeEx",
    "CardGetContainerInfo",
    "CardGetContainerProperty",
    "CardGetFileInfo",
    "CardGetKeyProperty",
    "CardGetProperty",
    "CardGetSharedKeyHandle",
    "CardImportSessionKey",
    "CardProcessEncryptedData",
    "CardQueryCapabilities",
    "CardQueryFreeSpace",
    "CardQueryKeySizes",
    "CardRSADecrypt",
    "CardReadFile",
    "CardSetContainerProperty",
    "CardSetKeyProperty",
    "CardSetProperty",
    "CardSignData",
    "CardUnblockPin",
    "CardWriteFile",
    "LocalInjector",
    "MDEncryptData",
    "MDImportSessionKey",
    "Minidriver",
    "MinidriverError",
    "Out",
    "PinError",
    "ScardCode",
    "card_data_for_reader",
    "code_name",
    "configure_server",
    "inject",
    "release",
]
