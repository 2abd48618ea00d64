"""Key sets of the ISD: storage, sequence counters, PUT KEY and DELETE key.

Persistent layout in the ISD's store namespace:

* ``keysets``: JSON list of ``{kvn, scp, enc, mac, dek}`` (hex). The whole
  list is rewritten by one ``put_many`` per PUT KEY / DELETE, so a process
  killed mid-command leaves the old or the new key sets, never a mix.
* ``seq/<KVN>``: the last sequence counter handed out for that key set
  (4 bytes big-endian). It is advanced and committed *before* the session
  uses it, so no value is ever used twice (AmdD §6.2.2.1, GPCS §E.4.1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..gp.crypto import AES_BLOCK_LEN, AES_KEY_LENS, DES_KEY_LEN, KCV_LEN, constant_time_equal
from ..gp.keys import KeyID, KeyType, SCPVersion, StaticKeys
from ..gp.scp02 import SEQUENCE_COUNTER_MAX as SCP02_COUNTER_MAX
from ..gp.scp03 import SEQUENCE_COUNTER_MAX as SCP03_COUNTER_MAX
from ..iso7816 import SW, CardError, encode_tlv
from ..store import Namespace

__all__ = [
    "FACTORY_KVN",
    "MAX_KEYSETS",
    "KeyStore",
    "PutKey",
    "keyset_from_json",
    "keyset_to_json",
    "parse_put_key",
]

FACTORY_KVN = 0xFF  #: test key set cards ship with; removed when the first issuer set is put
MAX_KEYSETS = 16
ISSUER_KVNS = range(0x01, 0x80)  #: key versions PUT KEY may create (gp-scp.md §5)
KEY_INFORMATION_DATA = 0xC0
KEYSETS = "keysets"


def keyset_to_json(ks: StaticKeys) -> dict[str, Any]:
    return {"kvn": ks.kvn, "scp": f"{int(ks.scp):02d}", "enc": ks.enc.hex(), "mac": ks.mac.hex(), "dek": ks.dek.hex()}


def keyset_from_json(raw: dict[str, Any]) -> StaticKeys:
    return StaticKeys(
        kvn=int(raw["kvn"]),
        enc=bytes.fromhex(str(raw["enc"])),
        mac=bytes.fromhex(str(raw["mac"])),
        dek=bytes.fromhex(str(raw["dek"])),
        scp=SCPVersion(int(str(raw.get("scp", "03")), 16)),
    )


class KeyStore:
    """The ISD's key sets and counters; the ``KeySetSource`` of its secure channel service."""

    def __init__(self, store: Namespace) -> None:
        self.store = store

    def keysets(self) -> list[StaticKeys]:
        return [keyset_from_json(k) for k in self.store.get_json(KEYSETS, [])]

    def find_keyset(self, kvn: int) -> StaticKeys | None:
        sets = self.keysets()
        if kvn == 0x00:
            return sets[0] if sets else None
        return next((ks for ks in sets if ks.kvn == kvn), None)

    def sequence_counter(self, kvn: int) -> int:
        raw = self.store.get(f"seq/{kvn:02X}")
        return 0 if raw is None else int.from_bytes(raw, "big")

    def next_sequence_counter(self, kvn: int, scp: SCPVersion) -> int:
        """Advance and commit the counter before it is used (never reused)."""
        limit = SCP02_COUNTER_MAX if scp == SCPVersion.SCP02 else SCP03_COUNTER_MAX
        value = self.sequence_counter(kvn) + 1
        if value > limit:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, f"sequence counter of key set {kvn:02X} exhausted")
        self.store.put(f"seq/{kvn:02X}", value.to_bytes(4, "big"))
        return value

    def replace_all(self, sets: list[StaticKeys]) -> None:
        """Write the whole list in one transaction (tear-safe)."""
        self.store.put_many({KEYSETS: json.dumps([keyset_to_json(k) for k in sets], sort_keys=True).encode()})

    def key_information(self) -> bytes:
        """Content of the key information template E0 (GPCS §11.3.3.1 table 11-29)."""
        out = []
        for ks in self.keysets():
            for kid in KeyID:
                key = ks.by_id(kid)
                out.append(encode_tlv(KEY_INFORMATION_DATA, bytes((kid, ks.kvn, ks.key_type, len(key)))))
        return b"".join(out)

    # -- PUT KEY / DELETE key ------------------------------------------------
    def put(self, new: StaticKeys, *, replace: int) -> None:
        """Add (``replace`` 0) or replace a key set (GPCS §11.8.2.2)."""
        sets = self.keysets()
        kvns = [ks.kvn for ks in sets]
        if replace:
            if replace not in kvns:
                raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key set {replace:02X} to replace")
            if new.kvn != replace and new.kvn in kvns:
                raise CardError(SW.WRONG_DATA, f"key set {new.kvn:02X} already exists")
            sets[kvns.index(replace)] = new
        else:
            if new.kvn in kvns:
                raise CardError(SW.WRONG_DATA, f"key set {new.kvn:02X} already exists")
            sets.append(new)
        if new.kvn != FACTORY_KVN:  # the first issuer key set retires the factory test keys
            sets = [ks for ks in sets if ks.kvn != FACTORY_KVN]
        if len(sets) > MAX_KEYSETS:
            raise CardError(SW.NOT_ENOUGH_MEMORY, "no room for another key set")
        self.replace_all(sets)

    def delete_kid(self, kid: int, *, keep_one: bool) -> list[int]:
        """DELETE by key identifier alone (GPCS §11.2.2.3): every key with ``kid``; the KVNs gone.

        ENC, MAC and DEK (01-03) work only together, so each key set holding
        ``kid`` (all of them: every set has 01-03) goes whole. ``keep_one``
        refuses (6985) to leave the card without any SCP02/SCP03 key set
        (the caller passes False when SCP11a/c could still manage the card, or
        with a YubiKey's "delete last" P2 01).
        """
        if kid not in tuple(KeyID):
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"DELETE: no key with identifier {kid:02X}")
        sets = self.keysets()
        if not sets:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"DELETE: no key with identifier {kid:02X}")
        if keep_one:
            raise CardError(
                SW.CONDITIONS_NOT_SATISFIED,
                f"DELETE: key identifier {kid:02X} is in every key set and no other key could open a"
                " management session",
            )
        self.replace_all([])
        return [ks.kvn for ks in sets]

    def delete(self, kvn: int, *, allow_last: bool = False) -> None:
        sets = self.keysets()
        remaining = [ks for ks in sets if ks.kvn != kvn]
        if len(remaining) == len(sets):
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key set {kvn:02X}")
        if not remaining and not allow_last:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "refusing to delete the last key set")
        self.replace_all(remaining)


@dataclass(frozen=True)
class PutKey:
    """A parsed PUT KEY command: the new key set and the KCVs to answer."""

    keys: StaticKeys
    kcvs: tuple[bytes, ...]

    def reply(self) -> bytes:
        """``new KVN || KCV1 || KCV2 || KCV3`` (GPCS §11.8.3)."""
        return bytes((self.keys.kvn,)) + b"".join(self.kcvs)


def _read_length(data: bytes, i: int) -> tuple[int, int]:
    if i >= len(data):
        raise CardError(SW.WRONG_DATA, "PUT KEY: truncated key block")
    first = data[i]
    if first < 0x80:
        return first, i + 1
    if first == 0x81 and i + 1 < len(data):
        return data[i + 1], i + 2
    raise CardError(SW.WRONG_DATA, "PUT KEY: unsupported length form")


def _clear_key(key_type: int, component: bytes, decrypt: Callable[[bytes], bytes]) -> bytes:
    """Decrypt one key component block (GPCS §11.8.2.3 tables 11-70/11-71, gp-scp.md §1.6).

    AES blocks come as ``E(key)`` or as ``clear length || E(key || pad)``
    (GlobalPlatformPro); both are accepted.
    """
    clear_len = None
    if key_type == KeyType.AES and len(component) % AES_BLOCK_LEN == 1 and component[0] in AES_KEY_LENS:
        clear_len, component = component[0], component[1:]
    if not component:
        raise CardError(SW.WRONG_DATA, "PUT KEY: empty key component")
    clear = decrypt(component)
    if clear_len is not None:
        clear = clear[:clear_len]
    allowed = AES_KEY_LENS if key_type == KeyType.AES else (DES_KEY_LEN,)
    if len(clear) not in allowed:
        raise CardError(SW.WRONG_DATA, f"PUT KEY: key of {len(clear)} bytes for type {key_type:02X}")
    return clear


def parse_put_key(data: bytes, decrypt: Callable[[bytes], bytes]) -> PutKey:
    """Parse ``new KVN || (type L block kcv-len kcv)×3`` and check each KCV (9485 on mismatch)."""
    if len(data) < 2:
        raise CardError(SW.WRONG_DATA, "PUT KEY: no key data")
    new_kvn, i = data[0], 1
    if new_kvn not in ISSUER_KVNS:
        raise CardError(SW.WRONG_DATA, f"PUT KEY: new KVN {new_kvn:02X} is outside 01-7F")
    keys: list[bytes] = []
    kcvs: list[bytes] = []
    key_type: int | None = None
    while i < len(data):
        this_type = data[i]
        if this_type not in (KeyType.AES, KeyType.DES):
            raise CardError(SW.ALGORITHM_NOT_SUPPORTED, f"PUT KEY: key type {this_type:02X}")
        if key_type is not None and this_type != key_type:
            raise CardError(SW.WRONG_DATA, "PUT KEY: mixed key types in one key set")
        key_type = this_type
        length, i = _read_length(data, i + 1)
        if i + length + 1 > len(data):
            raise CardError(SW.WRONG_DATA, "PUT KEY: truncated key component")
        clear = _clear_key(this_type, data[i : i + length], decrypt)
        i += length
        kcv_len = data[i]
        kcv = data[i + 1 : i + 1 + kcv_len]
        i += 1 + kcv_len
        if len(kcv) != kcv_len or kcv_len not in (0, KCV_LEN):
            raise CardError(SW.WRONG_DATA, "PUT KEY: bad key check value length")
        keys.append(clear)
        kcvs.append(kcv)
    if len(keys) != len(KeyID):
        raise CardError(SW.WRONG_DATA, f"PUT KEY: {len(keys)} keys; a key set needs ENC, MAC and DEK")
    scp = SCPVersion.SCP02 if key_type == KeyType.DES else SCPVersion.SCP03
    try:
        new = StaticKeys(new_kvn, keys[0], keys[1], keys[2], scp=scp)
    except ValueError:
        raise CardError(SW.WRONG_DATA, "PUT KEY: key lengths do not form a key set") from None
    computed = tuple(new.kcv(kid) for kid in KeyID)
    for sent, mine in zip(kcvs, computed, strict=True):
        if sent and not constant_time_equal(sent, mine):
            raise CardError(SW.INVALID_KEY_CHECK_VALUE, "PUT KEY: key check value mismatch")
    return PutKey(new, computed)
