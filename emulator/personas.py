"""Card personas: every behaviour in which real tokens differ from each other, in one table.

A profile names a persona (``persona = "yubikey-5.7"``); the applets read its
named switches and never compare persona names. Where the specifications and
the tokens people carry disagree (GET DATA ``E0`` as GPCS §11.3.3.1 writes it,
or as a YubiKey answers and yubikit parses it), each persona picks one answer.
PERSONAS.md lists every switch with its source.

* ``gp-standard`` (the default): the GlobalPlatform text for the ISD, PIV with
  the YubiKey 5.4-level vendor extensions (what vcard did before personas).
* ``yubikey-5.7``: answers shaped as a YubiKey 5.7 gives them (ISD data
  objects as yubikit's ``SecurityDomainSession`` parses them, GET VERSION
  5.7.x, MOVE/DELETE KEY, Ed25519 and X25519, AES-192 default management key).
* ``piv-nist``: NIST SP 800-73-4 only: every vendor instruction answers 6D00,
  no attestation key, no PIN/touch policy tags, SP 800-78-4 algorithms only.

The persona is read from the profile at every insertion (like the ISD's AID);
the card's stored keys and objects stay what they are. A key a persona cannot
create (an Ed25519 key, after a profile changed persona) still works.
"""

from __future__ import annotations

from dataclasses import dataclass

from .applets.isd import CardDataShape, KeyInfoShape
from .applets.isd_lockout import KeyLockout
from .applets.piv.consts import INS, Algorithm

__all__ = [
    "DEFAULT_PERSONA",
    "PERSONAS",
    "CardDataShape",
    "KeyInfoShape",
    "KeyLockout",
    "Persona",
    "persona_named",
]


#: SP 800-78-4 table 6-2 key algorithms of the asymmetric slots
_NIST_KEYS = frozenset({Algorithm.RSA1024, Algorithm.RSA2048, Algorithm.ECCP256, Algorithm.ECCP384})
#: what the card made before personas: RSA up to 4096 (YubiKey values 05, 16) and the NIST curves
_CLASSIC_KEYS = _NIST_KEYS | {Algorithm.RSA3072, Algorithm.RSA4096}
#: YubiKey 5.7 adds Ed25519 (E0) and X25519 (E1) (yubikit ``KEY_TYPE``; Yubico PIV docs, 5.7 features)
_YUBIKEY_57_KEYS = _CLASSIC_KEYS | {Algorithm.ED25519, Algorithm.X25519}

#: the vendor instructions of YubiKey 5.4 (EXTENSIONS.md)
_YUBIKEY_54_INS = frozenset(
    {
        INS.GET_METADATA,
        INS.GET_SERIAL,
        INS.ATTEST,
        INS.SET_PIN_RETRIES,
        INS.RESET,
        INS.GET_VERSION,
        INS.IMPORT_ASYMMETRIC_KEY,
        INS.SET_MANAGEMENT_KEY,
    }
)


@dataclass(frozen=True)
class Persona:
    """The switches one persona sets. Applets consult these, never the name."""

    name: str
    summary: str
    #: GET DATA E0 of the ISD
    gp_key_info_shape: KeyInfoShape
    #: GET DATA 66 of the ISD
    gp_card_data_shape: CardDataShape
    #: GET VERSION answer when the profile gives none; None: no GET VERSION (6D00)
    piv_version: tuple[int, int, int] | None
    #: inclusive range a profile's ``[piv] version`` must fall in (None: any version)
    piv_version_range: tuple[tuple[int, int, int], tuple[int, int, int]] | None
    #: vendor instructions the PIV applet answers; the others of :data:`~.applets.piv.consts.VENDOR_INS` get 6D00
    piv_extensions: frozenset[INS]
    #: algorithms GENERATE and IMPORT accept for the key slots (and SELECT advertises)
    piv_key_algorithms: frozenset[Algorithm]
    #: PIN and touch policy tags AA / AB in GENERATE (YubiKey); without them 6A80
    piv_key_policies: bool
    #: the management key algorithm of a new card when the profile names none
    piv_default_mgmt_algorithm: Algorithm
    #: failed-authentication counters per SD key and the reset when all are blocked; None: no counters
    gp_key_lockout: KeyLockout | None = None
    #: DELETE key with P2 01 may delete the last key set (yubikit ``delete_key(delete_last=True)``); else 6A86
    gp_delete_last: bool = False

    def __post_init__(self) -> None:
        if (self.piv_version is None) != (INS.GET_VERSION not in self.piv_extensions):
            raise ValueError(f"persona {self.name}: piv_version goes with the GET VERSION extension")

    @property
    def piv_attestation(self) -> bool:
        """An attestation key (slot F9) and its certificate (5FFF01) are made with the card."""
        return INS.ATTEST in self.piv_extensions

    def piv_answers(self, ins: int) -> bool:
        """True if the PIV applet answers the vendor instruction ``ins``."""
        return ins in self.piv_extensions

    def version_problem(self, version: tuple[int, int, int]) -> str | None:
        """Why a profile's ``[piv] version`` does not fit this persona, or None."""
        if self.piv_version is None:
            return f"has no effect with persona {self.name!r} (it has no GET VERSION); remove it"
        if self.piv_version_range is not None:
            low, high = self.piv_version_range
            if not low <= version <= high:
                shown = ".".join(map(str, low)), ".".join(map(str, high))
                return f"must be {shown[0]}-{shown[1]} with persona {self.name!r}"
        return None


GP_STANDARD = Persona(
    name="gp-standard",
    summary="GlobalPlatform as written (E0 template, 66 card data); PIV with YubiKey 5.4 extensions",
    gp_key_info_shape=KeyInfoShape.TEMPLATE,
    gp_card_data_shape=CardDataShape.CARD_DATA,
    piv_version=(5, 4, 3),
    piv_version_range=None,
    piv_extensions=_YUBIKEY_54_INS,
    piv_key_algorithms=_CLASSIC_KEYS,
    piv_key_policies=True,
    piv_default_mgmt_algorithm=Algorithm.TDES,
)

YUBIKEY_57 = Persona(
    name="yubikey-5.7",
    summary="answers as a YubiKey 5.7: bare C0 list, bare 73, GET VERSION 5.7.x, MOVE/DELETE KEY, Ed25519/X25519",
    gp_key_info_shape=KeyInfoShape.BARE_LIST,
    gp_card_data_shape=CardDataShape.RECOGNITION_DATA,
    piv_version=(5, 7, 2),
    piv_version_range=((5, 7, 0), (5, 7, 255)),
    piv_extensions=_YUBIKEY_54_INS | {INS.MOVE_KEY},
    piv_key_algorithms=_YUBIKEY_57_KEYS,
    piv_key_policies=True,
    piv_default_mgmt_algorithm=Algorithm.AES192,
    gp_key_lockout=KeyLockout(),
    gp_delete_last=True,
)

PIV_NIST = Persona(
    name="piv-nist",
    summary="NIST SP 800-73-4 only: vendor instructions answer 6D00; SP 800-78-4 algorithms",
    gp_key_info_shape=KeyInfoShape.TEMPLATE,
    gp_card_data_shape=CardDataShape.CARD_DATA,
    piv_version=None,
    piv_version_range=None,
    piv_extensions=frozenset(),
    piv_key_algorithms=_NIST_KEYS,
    piv_key_policies=False,
    piv_default_mgmt_algorithm=Algorithm.TDES,
)

PERSONAS: dict[str, Persona] = {p.name: p for p in (GP_STANDARD, YUBIKEY_57, PIV_NIST)}
DEFAULT_PERSONA = GP_STANDARD


def persona_named(name: str | None) -> Persona:
    """The persona called ``name`` (None: the default); KeyError for an unknown name."""
    return DEFAULT_PERSONA if name is None else PERSONAS[name]
