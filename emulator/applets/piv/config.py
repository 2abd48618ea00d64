"""The [piv] section of a card profile: what a new card's PIV applet holds.

Every value is read once, when the card is created (or reset with the
YubiKey RESET extension); after that the store wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...iso7816 import CardError
from .consts import ASYMMETRIC_SLOTS, MGMT_ALGORITHMS, Algorithm, PinPolicy, TouchPolicy
from .credentials import MAX_RETRIES, ManagementKey, check_pin_format, pad_pin

if TYPE_CHECKING:  # personas.py imports this package: a runtime import would be circular
    from ...personas import Persona

__all__ = ["MGMT_KEY_NAMES", "KeySpec", "PIVConfig"]

#: YubiKey and PIV tool defaults (well-known test values, never for real use)
DEFAULT_PIN = "123456"
DEFAULT_PUK = "12345678"
DEFAULT_MGMT_KEY = "010203040506070801020304050607080102030405060708"
DEFAULT_VERSION = (5, 4, 3)

#: the profile's management_key_algorithm names (emulator/profiles/schema.py checks against these)
MGMT_KEY_NAMES = {"3des": Algorithm.TDES, "tdes": Algorithm.TDES, "aes128": Algorithm.AES128}
MGMT_KEY_NAMES |= {"aes192": Algorithm.AES192, "aes256": Algorithm.AES256}


def _enum_by_name(kind: type[PinPolicy] | type[TouchPolicy] | type[Algorithm], raw: object, where: str) -> Any:
    name = str(raw).upper()
    try:
        return kind[name]
    except KeyError:
        allowed = ", ".join(m.name.lower() for m in kind)
        raise ValueError(f"{where} must be one of {allowed}, got {raw!r}") from None


@dataclass(frozen=True)
class KeySpec:
    """A key the card generates at creation, optionally with a self-signed certificate."""

    slot: int
    algorithm: Algorithm
    pin_policy: PinPolicy = PinPolicy.DEFAULT
    touch_policy: TouchPolicy = TouchPolicy.DEFAULT
    self_signed_subject: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> KeySpec:
        try:
            slot = int(str(raw["slot"]), 16)
        except KeyError:
            raise ValueError(f"{where}: slot is missing") from None
        if slot not in ASYMMETRIC_SLOTS:
            raise ValueError(f"{where}: slot must be 9a, 9c, 9d, 9e or 82-95, got {raw['slot']!r}")
        alg = _enum_by_name(Algorithm, raw.get("algorithm", "ECCP256"), f"{where}: algorithm")
        if alg in MGMT_ALGORITHMS or alg is Algorithm.PIN:
            raise ValueError(f"{where}: algorithm must be an RSA or ECC one, got {raw.get('algorithm')!r}")
        return cls(
            slot=slot,
            algorithm=alg,
            pin_policy=_enum_by_name(PinPolicy, raw.get("pin_policy", "default"), f"{where}: pin_policy"),
            touch_policy=_enum_by_name(TouchPolicy, raw.get("touch_policy", "default"), f"{where}: touch_policy"),
            self_signed_subject=str(raw.get("self_signed_subject", "")),
        )


@dataclass(frozen=True)
class PIVConfig:
    pin: bytes = field(default=pad_pin(DEFAULT_PIN), repr=False)  #: padded to 8 bytes
    puk: bytes = field(default=pad_pin(DEFAULT_PUK), repr=False)
    pin_retries: int = 3
    puk_retries: int = 3
    management_key: ManagementKey = field(
        default=ManagementKey(Algorithm.TDES, bytes.fromhex(DEFAULT_MGMT_KEY)), repr=False
    )
    version: tuple[int, int, int] = DEFAULT_VERSION
    label: str = ""
    keys: tuple[KeySpec, ...] = ()
    attestation_subject: str = "CN=vcard PIV Attestation (TEST ONLY)"

    def __post_init__(self) -> None:
        for name in ("pin_retries", "puk_retries"):
            if not 1 <= getattr(self, name) <= MAX_RETRIES:
                raise ValueError(f"[piv] {name} must be 1-{MAX_RETRIES}, got {getattr(self, name)}")
        if len(self.version) != 3 or not all(0 <= v <= 255 for v in self.version):
            raise ValueError('[piv] version must be three numbers 0-255, like "5.4.3"')
        slots = [k.slot for k in self.keys]
        if len(set(slots)) != len(slots):
            raise ValueError("[piv] keys: each slot may appear once")

    @classmethod
    def from_profile(
        cls,
        section: dict[str, Any],
        *,
        persona: Persona | None = None,
    ) -> PIVConfig:
        """Parse a [piv] section; absent fields take the persona's defaults (emulator/personas.py).

        The persona sets the management key algorithm of a new card (AES-192 on
        YubiKey 5.7, 3DES otherwise) and the GET VERSION answer.
        """
        default_mgmt_algorithm = persona.piv_default_mgmt_algorithm if persona else Algorithm.TDES
        default_version = (persona.piv_version if persona else None) or DEFAULT_VERSION
        try:
            pin = pad_pin(str(section.get("pin", DEFAULT_PIN)))
            puk = pad_pin(str(section.get("puk", DEFAULT_PUK)))
        except ValueError as exc:
            raise ValueError(f"[piv] pin/puk: {exc}") from None
        try:
            check_pin_format(pin, digits_only=True)
            check_pin_format(puk, digits_only=False)
        except CardError:
            raise ValueError("[piv] pin must be 6-8 digits, puk 6-8 characters") from None
        alg_name = str(section.get("management_key_algorithm", "")).lower()
        if alg_name and alg_name not in MGMT_KEY_NAMES:
            raise ValueError(f"[piv] management_key_algorithm must be one of {', '.join(MGMT_KEY_NAMES)}")
        try:
            mgmt = ManagementKey(
                MGMT_KEY_NAMES[alg_name] if alg_name else default_mgmt_algorithm,
                bytes.fromhex(str(section.get("management_key", DEFAULT_MGMT_KEY))),
            )
            version_text = str(section.get("version", ".".join(map(str, default_version))))
            major, minor, patch = (int(v) for v in version_text.split("."))
        except ValueError as exc:
            raise ValueError(f"[piv] management_key/version: {exc}") from None
        keys = tuple(KeySpec.from_dict(k, f"[[piv.keys]] #{i + 1}") for i, k in enumerate(section.get("keys", [])))
        return cls(
            pin=pin,
            puk=puk,
            pin_retries=int(section.get("pin_retries", 3)),
            puk_retries=int(section.get("puk_retries", 3)),
            management_key=mgmt,
            version=(major, minor, patch),
            label=str(section.get("label", "")),
            keys=keys,
            attestation_subject=str(section.get("attestation_subject", cls.attestation_subject)),
        )
