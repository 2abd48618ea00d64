"""SCP11 keys of the ISD: storage, PUT KEY / GENERATE KEY, certificate store, CA identifiers, allow-lists.

Persistent layout: one JSON document ``scp11`` in the ISD's namespace,
rewritten whole by every change (one store write: a torn command leaves the
old or the new document)::

    {"keys":  [{"kid": 19, "kvn": 1, "private": "<32-byte scalar>"},      SD ECKA key pairs (11/13/15)
               {"kid": 16, "kvn": 3, "public": "<04 || X || Y>"}],        CA-KLOC public keys (10, 20-2F)
     "certs": {"1301": ["<DER>", ...]},                                   BF21, leaf last
     "allow": {"1003": [serial, ...]},                                    OCE serial allow-lists
     "ca":    {"1003": {"klcc": false, "ski": "<SKI>"}}}                 CA issuer identifiers

Commands (Amd F §7, yubikit ``SecurityDomainSession`` as the reference client):
PUT KEY with P2 = KID (``KVN || B1 L E(DEK, d) | B0 L point || F0 01 00 || 00``,
answer ``KVN``), GENERATE KEY ``80 F1 replace-KVN KID  KVN F0 01 00`` (answer
``B0 41 point``; the YubiKey's command), STORE DATA ``A6{83 ref} BF21{certs}``,
``A6{83 ref} 70{93 serial}*``, ``A6{80 klcc, 42 SKI, 83 ref}``, GET DATA
``BF21`` (data ``A6{83 ref}``), ``FF33`` (KLOC) / ``FF34`` (KLCC) identifiers,
DELETE by ``D0`` KID and/or ``D2`` KVN.
"""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ..gp.scp03 import SCP03Card
from ..gp.scp11 import CA_KEY_IDS, SD_KEY_IDS, SCP11KeyID, encode_point, generate_key, public_key_from_point
from ..gp.scp11_certs import OCETrust
from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU, encode_tlv, parse_tlvs
from ..store import Namespace
from .base import CommandContext

if TYPE_CHECKING:
    from .isd import ISDApplet

__all__ = ["SCP11Keys", "SCP11Tag", "factory_scp11b", "generate_key_command", "put_key"]

log = logging.getLogger(__name__)

DOCUMENT = "scp11"
MAX_KEYS = 16
SCALAR_LEN = 32  #: P-256 private key
KVNS = range(0x01, 0x80)
CURVE_P256 = 0x00  #: F0 key parameter reference of secp256r1 (GPCS §B.4; yubikit ``Curve``)


class SCP11Tag(IntEnum):
    """Data objects of SCP11 key management (Amd F, GPCS §11.1.8, yubikit ``securitydomain``)."""

    ECC_PUBLIC_KEY = 0xB0
    ECC_PRIVATE_KEY = 0xB1
    ECC_KEY_PARAMETERS = 0xF0
    CONTROL_REFERENCE = 0xA6
    KEY_REFERENCE = 0x83
    KLCC_FLAG = 0x80
    ISSUER_ID = 0x42
    CERTIFICATE_STORE = 0xBF21
    ALLOW_LIST = 0x70
    SERIAL = 0x93
    KLOC_IDENTIFIERS = 0xFF33
    KLCC_IDENTIFIERS = 0xFF34
    KEY_INFORMATION_DATA = 0xC0


def _ref(kid: int, kvn: int) -> str:
    return f"{kid:02X}{kvn:02X}"


@dataclass(frozen=True)
class _Key:
    kid: int
    kvn: int
    private: ec.EllipticCurvePrivateKey | None
    public: ec.EllipticCurvePublicKey


class SCP11Keys:
    """The ISD's SCP11 state; the ``SCP11KeySource`` of its :class:`~emulator.gp.scp11_service.SCP11Service`."""

    def __init__(self, store: Namespace) -> None:
        self.store = store
        #: parsed keys of the last document read (deriving a P-256 public key costs a scalar multiplication)
        self._parsed: tuple[bytes | None, list[_Key]] = (None, [])

    # -- the document ----------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.store.get_json(DOCUMENT, {}) or {}
        for name in ("keys",):
            doc.setdefault(name, [])
        for name in ("certs", "allow", "ca"):
            doc.setdefault(name, {})
        return doc

    def _save(self, doc: dict[str, Any]) -> None:
        self.store.put(DOCUMENT, json.dumps(doc, sort_keys=True).encode())

    def keys(self) -> list[_Key]:
        document = self.store.get(DOCUMENT)
        if document is not None and document == self._parsed[0]:
            return list(self._parsed[1])
        out = []
        for raw in self._load()["keys"]:
            if "private" in raw:
                private = ec.derive_private_key(int(raw["private"], 16), ec.SECP256R1())
                out.append(_Key(raw["kid"], raw["kvn"], private, private.public_key()))
            else:
                out.append(_Key(raw["kid"], raw["kvn"], None, public_key_from_point(bytes.fromhex(raw["public"]))))
        self._parsed = (document, out)
        return list(out)

    def _find(self, kid: int, kvn: int) -> _Key | None:
        return next((k for k in self.keys() if k.kid == kid and (kvn == 0 or k.kvn == kvn)), None)

    # -- SCP11KeySource --------------------------------------------------------------------------
    def sd_key(self, kid: int, kvn: int) -> tuple[int, ec.EllipticCurvePrivateKey] | None:
        key = self._find(kid, kvn)
        if key is None or key.private is None:
            return None
        return key.kvn, key.private

    def oce_trust(self, kid: int, kvn: int) -> OCETrust | None:
        key = self._find(kid, kvn)
        if key is None or key.private is not None:
            return None
        doc = self._load()
        ref = _ref(key.kid, key.kvn)
        ca = doc["ca"].get(ref)
        allow = doc["allow"].get(ref)
        return OCETrust(
            key.public,
            ca_ski=bytes.fromhex(ca["ski"]) if ca else None,
            allow_list=frozenset(int(s) for s in allow) if allow else None,
        )

    # -- changes ------------------------------------------------------------------------------
    def put(
        self, kid: int, kvn: int, *, private: bytes | None = None, public: bytes | None = None, replace: int = 0
    ) -> None:
        """Add or replace one key: ``private`` a scalar (SD keys), ``public`` a point (CA keys)."""
        doc = self._load()
        entries = doc["keys"]
        if replace:
            if not any(e["kid"] == kid and e["kvn"] == replace for e in entries):
                raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no SCP11 key {kid:02X}/{replace:02X} to replace")
            self._forget(doc, kid, replace)
        self._forget(doc, kid, kvn, keep_data=True)  # P1 00 over an existing reference replaces it
        entry: dict[str, Any] = {"kid": kid, "kvn": kvn}
        if private is not None:
            entry["private"] = private.hex()
        elif public is not None:
            entry["public"] = public.hex()
        entries = doc["keys"]
        if len(entries) >= MAX_KEYS:
            raise CardError(SW.NOT_ENOUGH_MEMORY, "no room for another SCP11 key")
        entries.append(entry)
        self._save(doc)

    @staticmethod
    def _forget(doc: dict[str, Any], kid: int, kvn: int, *, keep_data: bool = False) -> int:
        before = len(doc["keys"])
        doc["keys"] = [e for e in doc["keys"] if not (e["kid"] == kid and e["kvn"] == kvn)]
        if not keep_data:
            for table in ("certs", "allow", "ca"):
                doc[table].pop(_ref(kid, kvn), None)
        return before - len(doc["keys"])

    def delete(self, kid: int | None, kvn: int | None) -> int:
        """Delete every SCP11 key matching ``kid`` and/or ``kvn``; how many went."""
        doc = self._load()
        gone = 0
        for key in self.keys():
            if (kid is None or key.kid == kid) and (kvn is None or key.kvn == kvn):
                gone += self._forget(doc, key.kid, key.kvn)
        if gone:
            self._save(doc)
        return gone

    def can_manage(self) -> bool:
        """An SCP11a/c key pair and an OCE CA key exist: a mutually authenticated session can be opened."""
        keys = self.keys()
        pairs = any(k.kid in (SCP11KeyID.SCP11A, SCP11KeyID.SCP11C) and k.private is not None for k in keys)
        return pairs and any(k.kid in CA_KEY_IDS for k in keys)

    def set_item(self, table: str, kid: int, kvn: int, value: Any) -> None:
        if self._find(kid, kvn) is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"STORE DATA: no SCP11 key {kid:02X}/{kvn:02X}")
        doc = self._load()
        if value:
            doc[table][_ref(kid, kvn)] = value
        else:
            doc[table].pop(_ref(kid, kvn), None)
        self._save(doc)

    # -- GET DATA -----------------------------------------------------------------------------
    def certificates(self, kid: int, kvn: int) -> bytes | None:
        certs = self._load()["certs"].get(_ref(kid, kvn))
        return b"".join(bytes.fromhex(c) for c in certs) if certs else None

    def ca_identifiers(self, *, klcc: bool) -> bytes | None:
        out = b""
        for ref, ca in sorted(self._load()["ca"].items()):
            if bool(ca["klcc"]) == klcc:
                out += encode_tlv(SCP11Tag.ISSUER_ID, bytes.fromhex(ca["ski"]))
                out += encode_tlv(SCP11Tag.KEY_REFERENCE, bytes.fromhex(ref))
        return out or None

    def key_information(self) -> bytes:
        """C0 entries for E0 (GPCS §11.3.3.1): ``KID KVN B1 20`` (key pairs), ``KID KVN B0 41`` (CA keys)."""
        out = b""
        for key in self.keys():
            kind = (SCP11Tag.ECC_PRIVATE_KEY, SCALAR_LEN) if key.private else (SCP11Tag.ECC_PUBLIC_KEY, 65)
            out += encode_tlv(SCP11Tag.KEY_INFORMATION_DATA, bytes((key.kid, key.kvn, *kind)))
        return out


# -- command bodies (called from the ISD's handlers) --------------------------------------------------
def _parse_key_data(data: bytes) -> tuple[int, dict[int, bytes]]:
    """``KVN || (type L value)* || KCV-len [KCV]`` (GPCS §11.8.2.3) for ECC keys."""
    if len(data) < 2:
        raise CardError(SW.WRONG_DATA, "PUT KEY: no key data")
    kvn, i = data[0], 1
    parts: dict[int, bytes] = {}
    while i < len(data) and data[i] in (SCP11Tag.ECC_PUBLIC_KEY, SCP11Tag.ECC_PRIVATE_KEY, SCP11Tag.ECC_KEY_PARAMETERS):
        tag, i = data[i], i + 1
        if i < len(data) and data[i] < 0x80:
            length, i = data[i], i + 1
        elif i + 1 < len(data) and data[i] == 0x81:
            length, i = data[i + 1], i + 2
        else:
            raise CardError(SW.WRONG_DATA, "PUT KEY: malformed ECC key component")
        if i + length > len(data):
            raise CardError(SW.WRONG_DATA, "PUT KEY: truncated ECC key component")
        parts[tag], i = data[i : i + length], i + length
    if i < len(data) and i + 1 + data[i] != len(data):
        raise CardError(SW.WRONG_DATA, "PUT KEY: trailing bytes after the key")
    if kvn not in KVNS:
        raise CardError(SW.WRONG_DATA, f"PUT KEY: KVN {kvn:02X} is outside 01-7F")
    if parts.get(SCP11Tag.ECC_KEY_PARAMETERS, bytes((CURVE_P256,))) != bytes((CURVE_P256,)):
        raise CardError(SW.ALGORITHM_NOT_SUPPORTED, "SCP11 keys are P-256 only")
    return kvn, parts


def put_key(isd: ISDApplet, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
    """PUT KEY of one SCP11 key (P2 = KID): an SD key pair under the DEK, or a CA public key."""
    kid = cmd.p2 & 0x7F
    session = ctx.session
    if not isinstance(session, SCP03Card):
        raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "PUT KEY needs an SCP03/SCP11 session")
    kvn, parts = _parse_key_data(bytes(cmd.data))
    if kid in SD_KEY_IDS:
        block = parts.get(SCP11Tag.ECC_PRIVATE_KEY)
        if block is None:
            raise CardError(SW.WRONG_DATA, f"PUT KEY: KID {kid:02X} takes a private key (B1)")
        scalar = session.decrypt_key(block)
        if len(scalar) != SCALAR_LEN:
            raise CardError(SW.WRONG_DATA, "PUT KEY: not a P-256 private key")
        try:
            ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
        except ValueError:
            raise CardError(SW.WRONG_DATA, "PUT KEY: not a P-256 private key") from None
        isd.scp11.put(kid, kvn, private=scalar, replace=cmd.p1)
    elif kid in CA_KEY_IDS:
        point = parts.get(SCP11Tag.ECC_PUBLIC_KEY)
        try:
            public_key_from_point(point or b"")
        except ValueError:
            raise CardError(SW.WRONG_DATA, f"PUT KEY: KID {kid:02X} takes a P-256 public key (B0)") from None
        isd.scp11.put(kid, kvn, public=point, replace=cmd.p1)
    else:
        raise CardError(SW.INCORRECT_P1P2, f"PUT KEY: KID {kid:02X}")
    log.info("PUT KEY: SCP11 key %02X/%02X", kid, kvn)
    return ResponseAPDU(bytes((kvn,)))


def generate_key_command(isd: ISDApplet, cmd: CommandAPDU) -> ResponseAPDU:
    """GENERATE KEY ``80 F1 replace-KVN KID  KVN F0 01 00``: a new SD key pair, its public point back."""
    if cmd.p2 not in SD_KEY_IDS:
        raise CardError(SW.INCORRECT_P1P2, f"GENERATE KEY: KID {cmd.p2:02X} is not an SCP11 key pair")
    kvn, _ = _parse_key_data(bytes(cmd.data))
    key = generate_key()
    isd.scp11.put(cmd.p2, kvn, private=key.private_numbers().private_value.to_bytes(SCALAR_LEN, "big"), replace=cmd.p1)
    log.info("GENERATE KEY: SCP11 key %02X/%02X", cmd.p2, kvn)
    return ResponseAPDU(encode_tlv(SCP11Tag.ECC_PUBLIC_KEY, encode_point(key.public_key())))


def _key_ref(raw: bytes) -> tuple[int, int]:
    if len(raw) != 2:
        raise CardError(SW.WRONG_DATA, "key reference 83 must be KID KVN")
    return raw[0], raw[1]


def store_data(isd: ISDApplet, data: bytes) -> ResponseAPDU:
    """STORE DATA ``A6{...}`` forms: certificates, allow-list, CA issuer identifier."""
    items = parse_tlvs(data)
    crt = {t.tag: t.value for t in parse_tlvs(items[0].value)}
    if SCP11Tag.KEY_REFERENCE not in crt:
        raise CardError(SW.WRONG_DATA, "STORE DATA: A6 without a key reference (83)")
    kid, kvn = _key_ref(crt[SCP11Tag.KEY_REFERENCE])
    if len(items) == 1 and SCP11Tag.ISSUER_ID in crt:
        flag = crt.get(SCP11Tag.KLCC_FLAG, b"\x00")
        isd.scp11.set_item("ca", kid, kvn, {"klcc": flag == b"\x01", "ski": crt[SCP11Tag.ISSUER_ID].hex()})
        return ResponseAPDU()
    if len(items) != 2:
        raise CardError(SW.WRONG_DATA, "STORE DATA: A6 must be followed by BF21 or 70")
    body = items[1]
    if body.tag == SCP11Tag.CERTIFICATE_STORE:
        certs = [bytes(t) for t in parse_tlvs(body.value)]
        for der in certs:
            try:
                x509.load_der_x509_certificate(der)
            except ValueError:
                raise CardError(SW.WRONG_DATA, "STORE DATA: BF21 holds something that is not a certificate") from None
        isd.scp11.set_item("certs", kid, kvn, [c.hex() for c in certs])
    elif body.tag == SCP11Tag.ALLOW_LIST:
        serials = [int.from_bytes(t.value, "big") for t in parse_tlvs(body.value) if t.tag == SCP11Tag.SERIAL]
        isd.scp11.set_item("allow", kid, kvn, serials)
    else:
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"STORE DATA: tag {body.tag:X} after A6")
    return ResponseAPDU()


def get_data(isd: ISDApplet, tag: int, data: bytes) -> bytes | None:
    """GET DATA BF21 (certificates of ``A6{83 ref}``), FF33 / FF34 (CA issuer identifiers)."""
    if tag == SCP11Tag.CERTIFICATE_STORE:
        items = parse_tlvs(data)
        if len(items) != 1 or items[0].tag != SCP11Tag.CONTROL_REFERENCE:
            raise CardError(SW.WRONG_DATA, "GET DATA BF21 needs A6{83 KID KVN}")
        crt = {t.tag: t.value for t in parse_tlvs(items[0].value)}
        kid, kvn = _key_ref(crt.get(SCP11Tag.KEY_REFERENCE, b""))
        return isd.scp11.certificates(kid, kvn)
    if tag in (SCP11Tag.KLOC_IDENTIFIERS, SCP11Tag.KLCC_IDENTIFIERS):
        return isd.scp11.ca_identifiers(klcc=tag == SCP11Tag.KLCC_IDENTIFIERS)
    return None


def delete(isd: ISDApplet, kid: bytes | None, kvn: bytes | None) -> bool:
    """DELETE of SCP11 keys by D0 and/or D2; False when the command is about an SCP03/SCP02 key set.

    ``D2`` alone deletes the SCP11 keys of that KVN unless an SCP03/SCP02 key
    set has it (then the key set goes, as before).
    """
    kid_value = kid[0] if kid is not None and len(kid) == 1 else None
    kvn_value = kvn[0] if kvn is not None and len(kvn) == 1 else None
    if kid_value is not None and kid_value not in SD_KEY_IDS | CA_KEY_IDS:
        return False
    if kid_value is None and (kvn_value is None or isd.keys.find_keyset(kvn_value) is not None):
        return False
    if not isd.scp11.delete(kid_value, kvn_value):
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "DELETE: no such SCP11 key")
    log.info("DELETE: SCP11 keys KID %s KVN %s", kid_value, kvn_value)
    return True


def factory_scp11b(kvn: int) -> bytes:
    """The ``scp11`` document of a new card: an SCP11b key pair and its certificate chain. TEST KEY.

    The chain is a throw-away test CA (its private key is discarded) and a
    certificate of PK.SD.ECKA (key usage keyAgreement), leaf last, so hosts
    read the key with GET DATA BF21 as from a YubiKey (``chain[-1].public_key()``).
    """
    sd_key = generate_key()
    ca_key = generate_key()
    now = datetime.datetime.now(datetime.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vcard SCP11 test CA (TEST ONLY)")])

    def builder(subject: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365 * 20))
        )

    ca_cert = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vcard SCP11b (TEST ONLY)")])
    usage = x509.KeyUsage(False, False, False, False, True, False, False, False, False)
    leaf = builder(leaf_name, sd_key.public_key()).add_extension(usage, critical=True).sign(ca_key, hashes.SHA256())
    doc = {
        "keys": [
            {
                "kid": int(SCP11KeyID.SCP11B),
                "kvn": kvn,
                "private": sd_key.private_numbers().private_value.to_bytes(SCALAR_LEN, "big").hex(),
            }
        ],
        "certs": {_ref(SCP11KeyID.SCP11B, kvn): [c.public_bytes(Encoding.DER).hex() for c in (ca_cert, leaf)]},
        "allow": {},
        "ca": {},
    }
    return json.dumps(doc, sort_keys=True).encode()
