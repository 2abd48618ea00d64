"""Conformance rows for containers and keys (minidriver-spec.md §3.5), see :mod:`.checks`.

Rows find what they need on the card (an EC key, an RSA key, an empty index) and skip when the
card has none. Destructive rows generate keys in the two last retired slots (containers 22 and 23,
PIV 94 and 95) so that a card's working keys in 9A/9C/9D/9E stay untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import containers as co
from .blobs import BlobError, parse_ecc_public_blob, parse_rsa_public_blob
from .checks import Check, CheckEnv, CheckFailed, CheckSkipped, reset_card
from .codes import ScardCode as C
from .structs import (
    CardSigningInfo,
    ContainerInfo,
)
from .types import CardData, KeySpec, Out

__all__ = ["CHECKS"]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
MAX_INDEX = 24
EC_SCRATCH, RSA_SCRATCH = 22, 23  #: containers destructive rows may overwrite (PIV 94, 95)


# -- helpers ---------------------------------------------------------------------------------
def public_key(card: CardData, index: int) -> PublicKey | None:
    info = ContainerInfo()
    if card.pfnCardGetContainerInfo is None or card.pfnCardGetContainerInfo(card, index, 0, info) != 0:
        return None
    blob = bytes(info.pbSigPublicKey or info.pbKeyExPublicKey or b"")
    try:
        return parse_rsa_public_blob(blob)[0] if blob[:1] == b"\x06" else parse_ecc_public_blob(blob)[0]
    except BlobError as exc:
        raise CheckFailed(f"container {index}: public key blob does not parse: {exc}") from None


ANY_KEY = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)


def find(card: CardData, kind: type | tuple[type, ...]) -> tuple[int, PublicKey]:
    """The first container holding a key of ``kind`` (rsa.RSAPublicKey / ec.EllipticCurvePublicKey)."""
    for index in range(MAX_INDEX):
        key = public_key(card, index)
        if key is not None and isinstance(key, kind):
            return index, key
    raise CheckSkipped(
        f"the card has no {'RSA' if kind is rsa.RSAPublicKey else 'EC' if kind is not ANY_KEY else ''} key"
    )


def empty_index(card: CardData) -> int:
    for index in reversed(range(MAX_INDEX)):
        if public_key(card, index) is None:
            return index
    raise CheckSkipped("every container is in use")


def login(env: CheckEnv, card: CardData | None = None) -> None:
    card = card or env.card
    code = card.pfnCardAuthenticatePin(card, "user", env.pin, len(env.pin), None) if card.pfnCardAuthenticatePin else 1
    if code != 0:
        raise CheckFailed(f"CardAuthenticatePin with the given PIN answered 0x{code:08X}")


def admin(env: CheckEnv, card: CardData | None = None) -> None:
    """ROLE_ADMIN: the 9B key's challenge, encrypted with the management key (3DES or AES)."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    card = card or env.card
    challenge: Out[bytearray] = Out()
    size: Out[int] = Out()
    assert card.pfnCardGetChallenge is not None and card.pfnCardAuthenticateChallenge is not None
    code = card.pfnCardGetChallenge(card, challenge, size)
    if code != 0 or challenge.value is None:
        raise CheckFailed(f"CardGetChallenge answered 0x{code:08X}")
    nonce = bytes(challenge.value)
    algo = TripleDES(env.mgmt_key) if len(nonce) == 8 else algorithms.AES(env.mgmt_key)
    enc = Cipher(algo, modes.ECB()).encryptor()
    response = enc.update(nonce) + enc.finalize()
    code = card.pfnCardAuthenticateChallenge(card, response, len(response), None)
    if code != 0:
        raise CheckFailed(f"CardAuthenticateChallenge with the given management key answered 0x{code:08X}")


def deauth(card: CardData) -> None:
    """No PIN and no management key: a warm reset (PIV cannot end a 9B authentication otherwise)."""
    reset_card(card)


def sign_info(index: int, spec: int, data: bytes | None, **kw: object) -> CardSigningInfo:
    info = CardSigningInfo(2, index, spec, 0, 0, data, len(data or b""))
    for name, value in kw.items():
        setattr(info, name, value)
    return info


def sign(env: CheckEnv, info: CardSigningInfo) -> int:
    return env.card.pfnCardSignData(env.card, info) if env.card.pfnCardSignData else -1


def expect(condition: bool, why: str) -> None:
    if not condition:
        raise CheckFailed(why)


# -- rows: CardGetContainerInfo --------------------------------------------------------------
def _info_call(
    index: int | None = None, flags: int = 0, version: int = 1, null: bool = False
) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        where = find(env.card, ANY_KEY)[0] if index is None else index
        return co.CardGetContainerInfo(env.card, where, flags, None if null else ContainerInfo(version))

    return run


def _info_empty(env: CheckEnv) -> int:
    return co.CardGetContainerInfo(env.card, empty_index(env.card), 0, ContainerInfo())


def _info_blob_matches(env: CheckEnv) -> int:
    index, _key = find(env.card, ANY_KEY)
    info = ContainerInfo()
    code = co.CardGetContainerInfo(env.card, index, 0, info)
    blob = info.pbSigPublicKey or info.pbKeyExPublicKey
    expect(blob is not None and len(blob) in (info.cbSigPublicKey, info.cbKeyExPublicKey), "no blob or wrong size")
    expect(not (info.pbSigPublicKey and info.pbKeyExPublicKey), "both blobs set for one key")
    return code


def _info_no_memory(env: CheckEnv) -> int:
    index = find(env.card, ANY_KEY)[0]
    saved, env.card.pfnCspAlloc = env.card.pfnCspAlloc, lambda size: None
    try:
        return co.CardGetContainerInfo(env.card, index, 0, ContainerInfo())
    finally:
        env.card.pfnCspAlloc = saved


# -- rows: CardCreateContainer(Ex) / CardDeleteContainer -------------------------------------
def _create(index: int, flags: int, spec: int, size: int, data: bytes | None = None) -> Callable[[CheckEnv], int]:
    return lambda env: co.CardCreateContainer(env.card, index, flags, spec, size, data)


def _create_ex(pin_id: int) -> Callable[[CheckEnv], int]:
    return lambda env: co.CardCreateContainerEx(env.card, EC_SCRATCH, 1, KeySpec.AT_ECDSA_P256, 0, None, pin_id)


def _create_without_admin(env: CheckEnv) -> int:
    deauth(env.card)
    index = empty_index(env.card)
    code = co.CardCreateContainer(env.card, index, co.CARD_CREATE_CONTAINER_KEY_GEN, KeySpec.AT_ECDSA_P256, 0, None)
    expect(public_key(env.card, index) is None, f"container {index} has a key after a refused generation")
    return code


def _generate(index: int, spec: int, size: int) -> Callable[[CheckEnv], int]:
    def run(env: CheckEnv) -> int:
        admin(env)
        code = co.CardCreateContainer(env.card, index, co.CARD_CREATE_CONTAINER_KEY_GEN, spec, size, None)
        key = public_key(env.card, index)
        wanted = (
            rsa.RSAPublicKey if spec in (KeySpec.AT_KEYEXCHANGE, KeySpec.AT_SIGNATURE) else ec.EllipticCurvePublicKey
        )
        expect(code != 0 or isinstance(key, wanted), f"container {index} has no new key after generation")
        return code

    return run


def _import_rsa(env: CheckEnv) -> int:
    from .blobs import CapiAlg, rsa_private_blob

    admin(env)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    blob = rsa_private_blob(private, CapiAlg.CALG_RSA_KEYX)
    code = co.CardCreateContainer(
        env.card, RSA_SCRATCH, co.CARD_CREATE_CONTAINER_KEY_IMPORT, KeySpec.AT_KEYEXCHANGE, 2048, blob
    )
    key = public_key(env.card, RSA_SCRATCH)
    expect(
        code != 0
        or (isinstance(key, rsa.RSAPublicKey) and key.public_numbers() == private.public_key().public_numbers()),
        "the container does not hold the imported key",
    )
    return code


def _delete_existing(env: CheckEnv) -> int:
    """Succeeds and empties the container, or UNSUPPORTED_FEATURE and changes nothing (no DELETE KEY)."""
    if public_key(env.card, EC_SCRATCH) is None:
        _generate(EC_SCRATCH, KeySpec.AT_ECDSA_P256, 0)(env)
    admin(env)
    code = co.CardDeleteContainer(env.card, EC_SCRATCH, 0)
    present = public_key(env.card, EC_SCRATCH) is not None
    expect(present == (code != 0), f"answered 0x{code:08X} but the key is {'still there' if present else 'gone'}")
    return code


def _null_card(fn: Callable[..., int]) -> int:
    return fn(None, 0, 0, ContainerInfo())


INV, NOKEY, REV, UNSUP = (
    C.SCARD_E_INVALID_PARAMETER,
    C.SCARD_E_NO_KEY_CONTAINER,
    C.ERROR_REVISION_MISMATCH,
    C.SCARD_E_UNSUPPORTED_FEATURE,
)
OK, SEC = C.SCARD_S_SUCCESS, C.SCARD_W_SECURITY_VIOLATION
P256 = KeySpec.AT_ECDSA_P256

CHECKS: list[Check] = [
    Check("CardGetContainerInfo", "pCardData NULL", INV, lambda env: _null_card(co.CardGetContainerInfo)),
    Check("CardGetContainerInfo", "pContainerInfo NULL", INV, _info_call(null=True)),
    Check("CardGetContainerInfo", "dwFlags 1", INV, _info_call(flags=1)),
    Check("CardGetContainerInfo", "dwVersion 2", REV, _info_call(version=2)),
    Check("CardGetContainerInfo", "dwVersion 0 (= 1)", OK, _info_call(version=0)),
    Check("CardGetContainerInfo", "empty container", NOKEY, _info_empty),
    Check("CardGetContainerInfo", "index 200", NOKEY, _info_call(index=200)),
    Check("CardGetContainerInfo", "one blob, right size", OK, _info_blob_matches),
    Check("CardGetContainerInfo", "pfnCspAlloc returns NULL", C.ERROR_NOT_ENOUGH_MEMORY, _info_no_memory, fresh=True),
    Check("CardCreateContainer", "dwFlags 0", INV, _create(EC_SCRATCH, 0, P256, 0)),
    Check("CardCreateContainer", "dwFlags 3", INV, _create(EC_SCRATCH, 3, P256, 0)),
    Check("CardCreateContainer", "index 24 (no PIV slot)", INV, _create(24, 1, P256, 0)),
    Check("CardCreateContainer", "dwKeySpec 9", INV, _create(EC_SCRATCH, 1, 9, 0)),
    Check("CardCreateContainer", "RSA 1000 bits", INV, _create(RSA_SCRATCH, 1, KeySpec.AT_KEYEXCHANGE, 1000)),
    Check("CardCreateContainer", "P-256 with dwKeySize 384", INV, _create(EC_SCRATCH, 1, P256, 384)),
    Check("CardCreateContainer", "P-521 (no PIV algorithm)", UNSUP, _create(EC_SCRATCH, 1, KeySpec.AT_ECDSA_P521, 0)),
    Check("CardCreateContainer", "import, pbKeyData NULL", INV, _create(RSA_SCRATCH, 2, KeySpec.AT_KEYEXCHANGE, 2048)),
    Check(
        "CardCreateContainer",
        "import, garbage blob",
        INV,
        _create(RSA_SCRATCH, 2, KeySpec.AT_KEYEXCHANGE, 2048, b"\x07\x02junk"),
    ),
    Check("CardCreateContainer", "generate without ROLE_ADMIN", SEC, _create_without_admin, fresh=True),
    Check("CardCreateContainerEx", "PinId 9", INV, _create_ex(9)),
    Check("CardCreateContainerEx", "PinId ROLE_ADMIN (cannot guard a PIV key)", UNSUP, _create_ex(2)),
    Check(
        "CardCreateContainer",
        "generate P-256 (container 22)",
        OK,
        _generate(EC_SCRATCH, P256, 0),
        destructive=True,
        fresh=True,
    ),
    Check(
        "CardCreateContainer",
        "generate RSA-2048 (container 23)",
        OK,
        _generate(RSA_SCRATCH, KeySpec.AT_KEYEXCHANGE, 2048),
        destructive=True,
        fresh=True,
    ),
    Check(
        "CardCreateContainer",
        "import RSA-2048 PRIVATEKEYBLOB (container 23)",
        (OK, UNSUP),
        _import_rsa,
        destructive=True,
        fresh=True,
    ),
    Check("CardDeleteContainer", "dwReserved 1", INV, lambda env: co.CardDeleteContainer(env.card, 0, 1)),
    Check("CardDeleteContainer", "index 200 succeeds", OK, lambda env: co.CardDeleteContainer(env.card, 200, 0)),
    Check(
        "CardDeleteContainer",
        "empty container succeeds",
        OK,
        lambda env: co.CardDeleteContainer(env.card, empty_index(env.card), 0),
    ),
    Check(
        "CardDeleteContainer",
        "existing key (UNSUPPORTED without DELETE KEY)",
        (OK, UNSUP),
        _delete_existing,
        destructive=True,
        fresh=True,
    ),
]
