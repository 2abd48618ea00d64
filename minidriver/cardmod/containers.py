"""Containers: CardCreateContainer(Ex), CardDeleteContainer, CardGetContainerInfo (minidriver-spec.md §3.5).

Container index <-> PIV slot is :mod:`.piv_map`'s fixed map (0=9A, 1=9C, 2=9D, 3=9E, 4..23=82..95).

What the card does and who may do it (SP 800-73-4 part 2; emulator/applets/piv/EXTENSIONS.md):

* **Create, KEY_GEN**: GENERATE ASYMMETRIC KEY PAIR in the slot. PIV allows it only after the card
  management key (9B) was authenticated, which is ROLE_ADMIN here (CardGetChallenge +
  CardAuthenticateChallenge, :mod:`.pins`). Without it the card answers 6982 and we return
  SCARD_W_SECURITY_VIOLATION; we do not second-guess the card's security status.
* **Create, KEY_IMPORT**: YubiKey IMPORT ASYMMETRIC KEY (INS FE), same rule; a card without the
  command answers 6D00 -> SCARD_E_UNSUPPORTED_FEATURE.
* After either, the slot's old certificate no longer belongs to the key: it is deleted
  (PUT DATA with an empty object), the CSP then writes the new one with CardWriteFile.
* **Delete**: PIV has no command to delete a private key. YubiKey 5.7 added MOVE KEY (INS F6) whose
  P1 = FF deletes the key in slot P2; on such a card we delete the key and its certificate. On any
  other card the key would stay and so would the container: we answer
  SCARD_E_UNSUPPORTED_FEATURE and change nothing (the key can still be replaced with
  CardCreateContainer). An index out of range or an empty slot succeeds, as the spec requires.
* **Get info** needs no PIN: the public key comes from metadata, the certificate or GENERATE.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..iso7816 import SW, ApduError, CommandAPDU
from ..piv import PinPolicy, PivSession
from .blobs import BlobError, CapiAlg, ecc_public_blob, parse_ecc_private_blob, parse_rsa_private_blob, rsa_public_blob
from .codes import MinidriverError, ScardCode
from .context import entry
from .piv_map import PIN_SIGN, Container, KeyInfo, container, core_state, key_changed, slot_for_index
from .structs import ContainerInfo
from .types import CardData, CardDataVersion, KeySpec, PinId

__all__ = [
    "CARD_CREATE_CONTAINER_KEY_GEN",
    "CARD_CREATE_CONTAINER_KEY_IMPORT",
    "CardCreateContainer",
    "CardCreateContainerEx",
    "CardDeleteContainer",
    "CardGetContainerInfo",
    "alloc",
    "card_error",
    "fill_container_info",
    "public_key_blob",
    "require_container",
]

CARD_CREATE_CONTAINER_KEY_GEN = 0x1
CARD_CREATE_CONTAINER_KEY_IMPORT = 0x2
CONTAINER_INFO_CURRENT_VERSION = 1
INS_MOVE_KEY = 0xF6  #: YubiKey 5.7+: MOVE KEY, P1 = destination (FF = delete), P2 = source
MOVE_KEY_DELETE = 0xFF
MOVE_KEY_SINCE = (5, 7, 0)

RSA_KEY_SPECS = (KeySpec.AT_KEYEXCHANGE, KeySpec.AT_SIGNATURE)
#: EC key specs this card edge has: AT_* -> (PIV algorithm, curve bits)
EC_KEY_SPECS = {
    KeySpec.AT_ECDSA_P256: (0x11, 256),
    KeySpec.AT_ECDHE_P256: (0x11, 256),
    KeySpec.AT_ECDSA_P384: (0x14, 384),
    KeySpec.AT_ECDHE_P384: (0x14, 384),
}
P521_KEY_SPECS = (KeySpec.AT_ECDSA_P521, KeySpec.AT_ECDHE_P521)  #: defined, no PIV algorithm
RSA_ALGORITHMS = {1024: 0x06, 2048: 0x07, 3072: 0x05, 4096: 0x16}
#: CardCreateContainerEx PinId -> the PIV PIN policy that gives the key that protection
PIN_POLICIES = {PinId.ROLE_EVERYONE: PinPolicy.NEVER, PinId.ROLE_USER: PinPolicy.ONCE, PIN_SIGN: PinPolicy.ALWAYS}

#: status words of key commands -> Windows codes (everything else is SCARD_E_UNEXPECTED)
_SW_CODES: dict[int, ScardCode] = {
    SW.SECURITY_STATUS_NOT_SATISFIED: ScardCode.SCARD_W_SECURITY_VIOLATION,
    SW.AUTH_METHOD_BLOCKED: ScardCode.SCARD_W_SECURITY_VIOLATION,
    SW.CONDITIONS_NOT_SATISFIED: ScardCode.SCARD_W_SECURITY_VIOLATION,
    SW.REFERENCED_DATA_NOT_FOUND: ScardCode.SCARD_E_NO_KEY_CONTAINER,
    SW.FILE_NOT_FOUND: ScardCode.SCARD_E_NO_KEY_CONTAINER,
    SW.WRONG_DATA: ScardCode.SCARD_E_INVALID_PARAMETER,
    SW.INCORRECT_P1P2: ScardCode.SCARD_E_INVALID_PARAMETER,
    SW.WRONG_LENGTH: ScardCode.SCARD_E_INVALID_PARAMETER,
    SW.FUNCTION_NOT_SUPPORTED: ScardCode.SCARD_E_UNSUPPORTED_FEATURE,
    SW.INS_NOT_SUPPORTED: ScardCode.SCARD_E_UNSUPPORTED_FEATURE,
    SW.NOT_ENOUGH_MEMORY: ScardCode.SCARD_E_WRITE_TOO_MANY,
}


def card_error(exc: ApduError, what: str) -> MinidriverError:
    """The Windows code for a key command the card refused."""
    code = _SW_CODES.get(exc.sw, ScardCode.SCARD_E_UNEXPECTED)
    return MinidriverError(code, f"{what}: card answered {exc.sw:04X}")


def alloc(card_data: CardData, data: bytes) -> bytearray:
    """A pfnCspAlloc buffer holding ``data`` (ERROR_NOT_ENOUGH_MEMORY if the allocator says no)."""
    fn = card_data.pfnCspAlloc
    buf = fn(len(data)) if fn is not None else None
    if buf is None:
        raise MinidriverError(ScardCode.ERROR_NOT_ENOUGH_MEMORY, "pfnCspAlloc returned NULL")
    buf[: len(data)] = data
    return buf


def require_container(card_data: CardData, index: int) -> Container:
    """Container ``index`` or SCARD_E_NO_KEY_CONTAINER."""
    found = container(card_data, index)
    if found is None:
        raise MinidriverError(ScardCode.SCARD_E_NO_KEY_CONTAINER, f"no key in container {index}")
    return found


def public_key_blob(key: KeyInfo) -> bytes:
    """PUBLICKEYBLOB (RSA) or BCRYPT_ECCKEY_BLOB (EC) of a container key (§3.5)."""
    public = key.public_key
    if isinstance(public, rsa.RSAPublicKey):
        return rsa_public_blob(public, CapiAlg.CALG_RSA_KEYX if key.key_exchange else CapiAlg.CALG_RSA_SIGN)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ecc_public_blob(public, ecdh=key.key_exchange)
    raise MinidriverError(ScardCode.SCARD_E_UNEXPECTED, "container key of unknown type")


def fill_container_info(card_data: CardData, index: int, info: ContainerInfo) -> None:
    """CONTAINER_INFO of container ``index``: the key in pbKeyExPublicKey or pbSigPublicKey."""
    found = require_container(card_data, index)
    blob = alloc(card_data, public_key_blob(found.key))
    info.dwReserved = 0
    if found.key.key_exchange:
        info.pbKeyExPublicKey, info.cbKeyExPublicKey = blob, len(blob)
        info.pbSigPublicKey, info.cbSigPublicKey = None, 0
    else:
        info.pbSigPublicKey, info.cbSigPublicKey = blob, len(blob)
        info.pbKeyExPublicKey, info.cbKeyExPublicKey = None, 0


# -- CardCreateContainer(Ex) -----------------------------------------------------------------
def _algorithm(dwKeySpec: int, dwKeySize: int) -> int:
    """The PIV algorithm for a key spec and size, or the spec's code (§3.5)."""
    if dwKeySpec in RSA_KEY_SPECS:
        if dwKeySize not in RSA_ALGORITHMS:
            raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"RSA key size {dwKeySize} bits")
        return RSA_ALGORITHMS[dwKeySize]
    if dwKeySpec in EC_KEY_SPECS:
        alg, bits = EC_KEY_SPECS[KeySpec(dwKeySpec)]
        if dwKeySize not in (0, bits):
            raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"key size {dwKeySize} for a {bits}-bit curve")
        return alg
    if dwKeySpec in P521_KEY_SPECS:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "PIV has no P-521 keys")
    raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"dwKeySpec {dwKeySpec} is not an AT_* value")


def _import_key(dwKeySpec: int, dwKeySize: int, blob: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """The private key in ``pbKeyData``: PRIVATEKEYBLOB for RSA specs, BCrypt ECC private blob for EC."""
    try:
        if dwKeySpec in RSA_KEY_SPECS:
            rsa_key, _alg = parse_rsa_private_blob(blob)
            if dwKeySize not in (0, rsa_key.key_size) or rsa_key.key_size not in RSA_ALGORITHMS:
                raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwKeySize does not match the key blob")
            return rsa_key
        ec_key, kind = parse_ecc_private_blob(blob)
    except BlobError as exc:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"pbKeyData: {exc}") from None
    _, bits = EC_KEY_SPECS[KeySpec(dwKeySpec)]
    wants_ecdh = dwKeySpec in (KeySpec.AT_ECDHE_P256, KeySpec.AT_ECDHE_P384)
    if ec_key.curve.key_size != bits or kind.ecdh != wants_ecdh:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "ECC blob magic does not match dwKeySpec")
    return ec_key


def _create(
    card_data: CardData,
    index: int,
    flags: int,
    key_spec: int,
    key_size: int,
    key_data: bytes | None,
    policy: PinPolicy,
) -> None:
    slot = slot_for_index(index)
    if slot is None:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"container index {index} (0..23 on PIV)")
    if flags not in (CARD_CREATE_CONTAINER_KEY_GEN, CARD_CREATE_CONTAINER_KEY_IMPORT):
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"dwFlags 0x{flags:X}")
    importing = flags == CARD_CREATE_CONTAINER_KEY_IMPORT
    algorithm = _algorithm(key_spec, key_size if not importing or key_spec not in RSA_KEY_SPECS else 2048)
    private_key = None
    if importing:
        if key_data is None:
            raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "pbKeyData is NULL for KEY_IMPORT")
        private_key = _import_key(key_spec, key_size, bytes(key_data))
    piv, state = core_state(card_data)
    before = state.model.slots.get(slot)
    try:
        if private_key is not None:
            piv.put_key(slot, private_key, pin_policy=policy)
            public_key: PublicKeyTypes = private_key.public_key()
        else:
            public_key = piv.generate_key(slot, algorithm, pin_policy=policy)
    except ApduError as exc:
        raise card_error(exc, "create container") from None
    key_changed(card_data, slot, public_key)
    if before is None or before[1] is not None:  # a certificate was there, or we never looked
        _drop_certificate(piv, slot)


def _drop_certificate(piv: PivSession, slot: int) -> None:
    """Delete the slot's certificate: it certifies a key that is no longer there."""
    try:
        piv.delete_certificate(slot)
    except ApduError as exc:
        if exc.sw in (SW.FILE_NOT_FOUND, SW.REFERENCED_DATA_NOT_FOUND):
            return
        raise card_error(exc, "delete the old certificate") from None


@entry(since=CardDataVersion.FOUR)
def CardCreateContainer(
    pCardData: CardData,
    bContainerIndex: int,
    dwFlags: int,
    dwKeySpec: int,
    dwKeySize: int,
    pbKeyData: bytes | None,
) -> None:
    """Generate a key on the card in container ``bContainerIndex``, or import ``pbKeyData``."""
    _create(pCardData, bContainerIndex, dwFlags, dwKeySpec, dwKeySize, pbKeyData, PinPolicy.DEFAULT)


@entry(since=CardDataVersion.SEVEN)
def CardCreateContainerEx(
    pCardData: CardData,
    bContainerIndex: int,
    dwFlags: int,
    dwKeySpec: int,
    dwKeySize: int,
    pbKeyData: bytes | None,
    PinId: int,
) -> None:
    """As CardCreateContainer, and bind the key to ``PinId`` (v7): the PIV PIN policy says which
    PIN protects a key, so ROLE_EVERYONE -> never, ROLE_USER -> once, the sign PIN -> always."""
    if not isinstance(PinId, int) or not 0 <= PinId <= 7:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, f"PinId {PinId} is not 0..7")
    policy = PIN_POLICIES.get(PinId)
    if policy is None:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, f"a PIV key cannot be protected by PIN {PinId}")
    _create(pCardData, bContainerIndex, dwFlags, dwKeySpec, dwKeySize, pbKeyData, policy)


# -- CardDeleteContainer ---------------------------------------------------------------------
@entry(since=CardDataVersion.FOUR)
def CardDeleteContainer(pCardData: CardData, bContainerIndex: int, dwReserved: int) -> None:
    """Delete the key and certificate of a container; any empty or unknown index succeeds."""
    if dwReserved != 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwReserved must be 0")
    slot = slot_for_index(bContainerIndex)
    if slot is None or container(pCardData, bContainerIndex) is None:
        return
    piv, _state = core_state(pCardData)
    if piv.version is None or piv.version < MOVE_KEY_SINCE:
        raise MinidriverError(ScardCode.SCARD_E_UNSUPPORTED_FEATURE, "this PIV card cannot delete a private key")
    try:
        piv.protocol.send(CommandAPDU(0x00, INS_MOVE_KEY, MOVE_KEY_DELETE, slot), detail="DELETE KEY")
    except ApduError as exc:
        raise card_error(exc, "delete key") from None
    key_changed(pCardData, slot, None)
    _drop_certificate(piv, slot)


# -- CardGetContainerInfo --------------------------------------------------------------------
@entry(since=CardDataVersion.FOUR)
def CardGetContainerInfo(
    pCardData: CardData, bContainerIndex: int, dwFlags: int, pContainerInfo: ContainerInfo | None
) -> None:
    """The container's public key as a CAPI/BCrypt blob (pfnCspAlloc); no PIN needed."""
    if pContainerInfo is None:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "pContainerInfo is NULL")
    if dwFlags != 0:
        raise MinidriverError(ScardCode.SCARD_E_INVALID_PARAMETER, "dwFlags must be 0")
    version = pContainerInfo.dwVersion or 1  # a version 0 structure is version 1 (§1)
    if version > CONTAINER_INFO_CURRENT_VERSION:
        raise MinidriverError(ScardCode.ERROR_REVISION_MISMATCH, f"CONTAINER_INFO version {version}")
    fill_container_info(pCardData, bContainerIndex, pContainerInfo)
