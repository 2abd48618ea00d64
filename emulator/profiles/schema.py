"""The profile schema: every table, key, type and allowed value, in one declaration.

A profile is validated completely against :data:`PROFILE` before anything is
written (issue 8, defect 3): an unknown table or key, a value of the wrong
TOML type or a value the card does not implement is a :class:`SchemaError`
naming the field. The allowed values come from the card side (the
i-parameters the SCP implementations accept, key lengths, PIV retry limits,
algorithms), so the schema cannot promise what the card cannot do.

Each key is a :class:`Key` (name, TOML type, value check); each table a
:class:`Table` (its keys, sub-tables, arrays of tables and rules that relate
several keys). :func:`validate` walks the data and the schema together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..applets.isd import SCP03_SUPPORTED_I
from ..applets.isd_content import CardLifeCycle
from ..applets.piv.config import MGMT_KEY_NAMES
from ..applets.piv.consts import EC_ALGORITHMS, RSA_ALGORITHMS, PinPolicy, TouchPolicy
from ..applets.piv.credentials import MAX_RETRIES, MGMT_KEY_LEN
from ..gp.crypto import AES_KEY_LENS, DES_KEY_LEN
from ..gp.scp02 import SUPPORTED_I as SCP02_SUPPORTED_I
from ..personas import PERSONAS
from .checks import (
    KNOWN_APPLETS,
    Check,
    applet_list,
    atr_tck_ok,
    file_name,
    hex_bytes,
    int_in,
    int_range,
    lens,
    one_of,
    path_text,
    pin,
    piv_slot,
    suggest,
    version,
    x509_name,
)

__all__ = [
    "KNOWN_APPLETS",
    "MAX_LOGICAL_CHANNELS",
    "PROFILE",
    "Key",
    "SchemaError",
    "Table",
    "Type",
    "atr_tck_ok",
    "validate",
]

MAX_LOGICAL_CHANNELS = 20  #: ISO 7816-4 §5.1.1: channels 0-19 with the further interindustry class
#: ATR: TS and T0 at least, 33 bytes at most (ISO 7816-3 §8.2.1)
ATR_LENS = range(2, 34)
ISD_AID_LENS = range(5, 17)  #: ISO 7816-4 §8.2.1.2: RID (5) + PIX (up to 11)
KDD_LEN = 10  #: GPCS §E.4.1 / AmdD §7.1.1: key diversification data
#: IIN and CIN are GET DATA objects answered as they are; bounded for sanity
MAX_ID_LEN = 64
SCP_KEY_LENS = {"02": (DES_KEY_LEN,), "03": AES_KEY_LENS}
SCP_I = {"02": SCP02_SUPPORTED_I, "03": SCP03_SUPPORTED_I}
KEY_ALGORITHMS = tuple(a.name.lower() for a in (*RSA_ALGORITHMS, *EC_ALGORITHMS))
DEFAULT_MGMT_KEY_LEN = 24  #: the well-known default management key 01..08 x 3


class SchemaError(ValueError):
    """A profile field the card cannot take; the message names the field (without the file)."""


class Type(Enum):
    """TOML value types, as tomllib returns them."""

    STRING = "a string"
    INTEGER = "an integer"
    BOOLEAN = "a boolean (true or false)"
    STRING_LIST = "a list of strings"

    def accepts(self, value: object) -> bool:
        if self is Type.STRING:
            return isinstance(value, str)
        if self is Type.INTEGER:
            return isinstance(value, int) and not isinstance(value, bool)
        if self is Type.BOOLEAN:
            return isinstance(value, bool)
        return isinstance(value, list) and all(isinstance(v, str) for v in value)


def describe(value: object) -> str:
    """How a TOML value looks to the user: its type and, for scalars, the value."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


# -- the schema types --------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """One key of a table: its TOML type, and what its value must be."""

    name: str
    type: Type
    check: Check | None = None
    required: bool = False


#: a rule relating several keys of one table; returns None or (key, what is wrong)
Rule = Callable[[dict[str, Any]], "tuple[str, str] | None"]


@dataclass(frozen=True)
class Table:
    """A TOML table: known keys, sub-tables (``[a.b]``), arrays of tables (``[[a.b]]``), rules."""

    keys: tuple[Key, ...] = ()
    tables: tuple[tuple[str, Table], ...] = ()
    arrays: tuple[tuple[str, Table], ...] = ()
    rules: tuple[Rule, ...] = ()

    def names(self) -> list[str]:
        return [k.name for k in self.keys] + [n for n, _ in self.tables] + [n for n, _ in self.arrays]


def _where(path: str, key: str) -> str:
    """How a field is named in messages: ``atr``, ``[piv] pin_retries``, ``[[isd.keysets]] #2 enc``."""
    return f"{path} {key}" if path else key


def validate(data: dict[str, Any]) -> None:
    """Raise :class:`SchemaError` for the first field of a profile that is wrong."""
    _validate(data, PROFILE, "")


def _validate(data: dict[str, Any], table: Table, path: str) -> None:
    known = table.names()
    inner = path.strip("[]").split(" ")[0].strip("[]")
    for name, value in data.items():
        if name not in known:
            if isinstance(value, dict):
                raise SchemaError(f"unknown table [{f'{inner}.' if inner else ''}{name}]{suggest(name, known)}")
            where = f" in {path}" if path else ""
            raise SchemaError(f"unknown key {name!r}{where}{suggest(name, known)}")
    for key in table.keys:
        if key.name not in data:
            if key.required:
                raise SchemaError(f"missing field {key.name!r}{f' in {path}' if path else ''}")
            continue
        value = data[key.name]
        if not key.type.accepts(value):
            raise SchemaError(f"{_where(path, key.name)} must be {key.type.value}, got {describe(value)}")
        problem = key.check(value) if key.check else None
        if problem:
            raise SchemaError(f"{_where(path, key.name)} {problem}")
    for name, sub in table.tables:
        if name in data:
            sub_path = f"[{inner}.{name}]" if inner else f"[{name}]"
            if not isinstance(data[name], dict):
                raise SchemaError(f"{sub_path} must be a table, got {describe(data[name])}")
            _validate(data[name], sub, sub_path)
    for name, sub in table.arrays:
        if name in data:
            sub_path = f"[[{inner}.{name}]]" if inner else f"[[{name}]]"
            items = data[name]
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise SchemaError(f"{sub_path} must be an array of tables, got {describe(items)}")
            for n, item in enumerate(items, 1):
                _validate(item, sub, f"{sub_path} #{n}")
    for rule in table.rules:
        broken = rule(data)
        if broken:
            raise SchemaError(f"{_where(path, broken[0])} {broken[1]}")


# -- rules ---------------------------------------------------------------------------------
def _atr_shape(data: dict[str, Any]) -> tuple[str, str] | None:
    atr = bytes.fromhex(data["atr"])
    if atr[0] not in (0x3B, 0x3F):
        return "atr", "must start with TS = 3B or 3F (ISO 7816-3 §8.1)"
    if not atr_tck_ok(atr):
        return "atr", "has a wrong length or check byte (TCK) for its interface bytes (ISO 7816-3 §8.2)"
    return None


def _isd_i(data: dict[str, Any]) -> tuple[str, str] | None:
    """``i`` belongs to the protocol named by ``scp``; it must not contradict ``scpNN_i``."""
    scp = data.get("scp", "03")
    if "i" in data:
        problem = int_in(SCP_I[scp], f"the i-parameters this card implements for SCP{scp}")(data["i"])
        if problem:
            return "i", problem
        other = f"scp{scp}_i"
        if other in data and data[other] != data["i"]:
            return other, f"contradicts i ({data[other]:#04x} vs {data['i']:#04x}); give one of them"
    return None


def _unique(array: str, key: str, *, hex_text: bool = False) -> Rule:
    """No two tables of ``[[array]]`` share ``key`` (compared as numbers)."""

    def rule(data: dict[str, Any]) -> tuple[str, str] | None:
        seen = [int(i[key], 16) if hex_text else i[key] for i in data.get(array, []) if key in i]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        return (array, f"has {key} {', '.join(f'{v:02x}' for v in twice)} more than once") if twice else None

    return rule


def _keyset_lengths(data: dict[str, Any]) -> tuple[str, str] | None:
    scp = data.get("scp", "03")
    allowed = SCP_KEY_LENS[scp]
    for name in ("enc", "mac", "dek"):
        size = len(bytes.fromhex(data[name]))
        if size not in allowed:
            kind = "3DES (two-key)" if scp == "02" else "AES"
            return name, f"must be {lens(allowed)} bytes for an SCP{scp} ({kind}) key set, got {size} bytes"
    return None


def _management_key(data: dict[str, Any]) -> tuple[str, str] | None:
    """The key's length is the algorithm's (SP 800-78-4 table 6-1); no key means the default key.

    The default key (01..08 three times, 24 bytes) is a 3DES key, and an AES-192 key on
    YubiKey 5.7 (the persona's default algorithm); every persona's default is 24 bytes.
    """
    name = data.get("management_key_algorithm", "3des")
    alg = MGMT_KEY_NAMES[name.lower()]
    if "management_key" not in data:
        if MGMT_KEY_LEN[alg] == DEFAULT_MGMT_KEY_LEN:
            return None
        return "management_key", f"is needed with management_key_algorithm {name!r} (the default key is 24 bytes)"
    size = len(bytes.fromhex(data["management_key"]))
    if size != MGMT_KEY_LEN[alg]:
        return "management_key", f"must be {MGMT_KEY_LEN[alg]} bytes for management_key_algorithm {name!r}, got {size}"
    return None


def _persona_fits(data: dict[str, Any]) -> tuple[str, str] | None:
    """``[piv] version`` must be a version the persona's firmware has (emulator/personas.py)."""
    persona = PERSONAS[data.get("persona", "gp-standard")]
    text = data.get("piv", {}).get("version") if isinstance(data.get("piv"), dict) else None
    if text is None:
        return None
    major, minor, patch = (int(v) for v in text.split("."))
    problem = persona.version_problem((major, minor, patch))
    return ("[piv] version", problem) if problem else None


# -- the profile -------------------------------------------------------------------------------
KEYSET = Table(
    keys=(
        Key("kvn", Type.INTEGER, int_range(0x01, 0xFF, hexa=True), required=True),
        Key("scp", Type.STRING, one_of(tuple(SCP_I), fold=False)),
        Key("enc", Type.STRING, hex_bytes(), required=True),
        Key("mac", Type.STRING, hex_bytes(), required=True),
        Key("dek", Type.STRING, hex_bytes(), required=True),
        Key("test_only", Type.BOOLEAN),
    ),
    rules=(_keyset_lengths,),
)

ISD = Table(
    keys=(
        Key("aid", Type.STRING, hex_bytes(ISD_AID_LENS)),
        Key("scp", Type.STRING, one_of(tuple(SCP_I), fold=False)),
        Key("i", Type.INTEGER),
        Key("scp02_i", Type.INTEGER, int_in(SCP02_SUPPORTED_I, "the SCP02 i-parameters this card implements")),
        Key("scp03_i", Type.INTEGER, int_in(SCP03_SUPPORTED_I, "the SCP03 i-parameters this card implements")),
        Key("kdd", Type.STRING, hex_bytes((KDD_LEN,))),
        Key("iin", Type.STRING, hex_bytes(range(0, MAX_ID_LEN + 1))),
        Key("cin", Type.STRING, hex_bytes(range(0, MAX_ID_LEN + 1))),
        Key("life_cycle", Type.STRING, one_of(tuple(s.name.lower() for s in CardLifeCycle))),
        Key("scp11b_kvn", Type.INTEGER, int_range(0x00, 0x7F, hexa=True)),  # SCP11b key pair made with the card
    ),
    arrays=(("keysets", KEYSET),),
    rules=(_isd_i, _unique("keysets", "kvn")),
)

PIV_KEY = Table(
    keys=(
        Key("slot", Type.STRING, piv_slot, required=True),
        Key("algorithm", Type.STRING, one_of(KEY_ALGORITHMS)),
        Key("pin_policy", Type.STRING, one_of(tuple(p.name.lower() for p in PinPolicy))),
        Key("touch_policy", Type.STRING, one_of(tuple(t.name.lower() for t in TouchPolicy))),
        Key("self_signed_subject", Type.STRING, x509_name(empty_ok=True)),
    ),
)

PIV = Table(
    keys=(
        Key("pin", Type.STRING, pin(digits=True)),
        Key("puk", Type.STRING, pin(digits=False)),
        Key("pin_retries", Type.INTEGER, int_range(1, MAX_RETRIES)),
        Key("puk_retries", Type.INTEGER, int_range(1, MAX_RETRIES)),
        Key("management_key", Type.STRING, hex_bytes(sorted(set(MGMT_KEY_LEN.values())))),
        Key("management_key_algorithm", Type.STRING, one_of(tuple(MGMT_KEY_NAMES))),
        Key("test_only", Type.BOOLEAN),
        Key("version", Type.STRING, version),
        Key("label", Type.STRING),
        Key("attestation_subject", Type.STRING, x509_name(empty_ok=False)),
    ),
    arrays=(("keys", PIV_KEY),),
    rules=(_management_key, _unique("keys", "slot", hex_text=True)),
)

PROFILE = Table(
    keys=(
        Key("name", Type.STRING, file_name),
        Key("description", Type.STRING),
        Key("persona", Type.STRING, one_of(tuple(PERSONAS), fold=False)),
        Key("atr", Type.STRING, hex_bytes(ATR_LENS), required=True),
        Key("state_file", Type.STRING, path_text),
        Key("logical_channels", Type.INTEGER, int_range(1, MAX_LOGICAL_CHANNELS)),
        Key("applets", Type.STRING_LIST, applet_list),
    ),
    tables=(("isd", ISD), ("piv", PIV)),
    rules=(_atr_shape, _persona_fits),
)
