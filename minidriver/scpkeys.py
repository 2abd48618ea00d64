"""PUT KEY for a new ENC/MAC/DEK key set: data field, APDU, and the card's KCV reply.

GPCS §11.8 (PUT KEY), gp-scp.md §1.6. The data field is ``new KVN`` followed by
one key data block per key (ENC, MAC, DEK, key identifiers 1-3)::

    <key type> <L> <key component block> 03 <KCV>

* AES (type ``88``, SCP03): key encrypted with AES-CBC, IV 0, under the
  **static** DEK. Two encodings exist and cards accept both; see
  :class:`AESKeyEncoding`.
* DES (type ``80``, SCP02): key encrypted with 3DES-ECB under the **session**
  DEK (:meth:`minidriver.scp02.SCP02Host.put_key` picks it).

The card answers ``KVN || KCV1 || KCV2 || KCV3`` + ``9000``;
:meth:`PutKeyCommand.check_reply` compares it with what was sent.
The command must travel inside a secure channel with at least C-MAC: pass
:meth:`PutKeyCommand.apdu` through the host's ``wrap``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum, auto

import minidriver.gpcrypto as gpcrypto  # a submodule import: never reaches the package's lazy __getattr__
from minidriver.scpbase import CLA_GP, INS, MAX_SHORT_LC, SW, CommandAPDU, SCPError, StaticKeys, split_response

__all__ = [
    "AESKeyEncoding",
    "KeyType",
    "PutKeyCommand",
    "check_put_key_reply",
    "diversify_kdf3",
    "put_key_apdu",
    "put_key_data_aes",
    "put_key_data_des",
]

KCV_LEN = 3
FIRST_KEY_ID = 0x01  #: ENC; MAC and DEK follow as 02 and 03
P2_MULTIPLE_KEYS = 0x80  #: P2 b8: several keys in one command (GPCS §11.8.2.2)


class KeyType(IntEnum):
    """Key type coding (GPCS §11.1.8, table 11-16)."""

    DES = 0x80  #: DES/3DES, implicitly ECB/CBC
    AES = 0x88


class AESKeyEncoding(Enum):
    """How an AES key component block is laid out (GPCS §11.8.2.3, tables 11-70/11-71)."""

    #: ``88 10 <E(key)>``: the ciphertext only (yubikey-manager, pySim). A key
    #: whose length is not a multiple of 16 (AES-192) still gets the length byte.
    CIPHERTEXT = auto()
    #: ``88 11 10 <E(key)>``: clear key length first (GlobalPlatformPro).
    LENGTH_PREFIXED = auto()


@dataclass(frozen=True, slots=True)
class PutKeyCommand:
    """A built PUT KEY data field plus what the card must answer."""

    new_kvn: int
    data: bytes = field(repr=False)  # holds encrypted keys; no need to print them
    kcvs: tuple[bytes, ...]

    @property
    def expected_reply(self) -> bytes:
        """``KVN || KCV1 || KCV2 || KCV3``: the card's reply data (GPCS §11.8.3)."""
        return bytes([self.new_kvn]) + b"".join(self.kcvs)

    def apdu(self, *, replace_kvn: int = 0) -> bytes:
        """The plain command; ``replace_kvn`` 0 adds a new key set."""
        return put_key_apdu(self.data, replace_kvn=replace_kvn)

    def check_reply(self, response: bytes) -> None:
        """Check the card's answer (data + SW, as returned by ``unwrap``)."""
        check_put_key_reply(response, self.expected_reply)


def _key_block(key_type: KeyType, component: bytes, kcv: bytes) -> bytes:
    if len(component) > 0x7F:
        raise ValueError(f"key component block of {len(component)} bytes is too long")
    return bytes([key_type, len(component)]) + component + bytes([len(kcv)]) + kcv


def _aes_component(dek: bytes, key: bytes, encoding: AESKeyEncoding) -> bytes:
    """AES-CBC(static DEK, IV 0) of the key; zero-padded when not block aligned.

    The card decrypts and keeps the first ``clear length`` bytes (gp-scp.md §1.6),
    so the padding value is free; zeros keep the output reproducible.
    """
    padded = key + bytes(-len(key) % gpcrypto.AES_BLOCK_LEN)
    encrypted = gpcrypto.aes_cbc_encrypt(dek, bytes(gpcrypto.AES_BLOCK_LEN), padded)
    if encoding is AESKeyEncoding.LENGTH_PREFIXED or len(padded) != len(key):
        return bytes([len(key)]) + encrypted
    return encrypted


def _check_new_kvn(kvn: int) -> None:
    # KVN 00 would mean "create" in P1 and FF is the factory set (gp-scp.md §5).
    if not 0x01 <= kvn <= 0x7F:
        raise ValueError(f"new key set KVN must be 0x01-0x7F, got 0x{kvn:02X}")


def put_key_data_aes(
    dek: bytes, new_keys: StaticKeys, *, encoding: AESKeyEncoding = AESKeyEncoding.CIPHERTEXT
) -> PutKeyCommand:
    """PUT KEY data for an AES key set, keys encrypted under the SCP03 **static** DEK.

    GPCS §11.8.2.3 (key data field); gp-scp.md §1.6.
    """
    _check_new_kvn(new_keys.kvn)
    keys = (new_keys.enc, new_keys.mac, new_keys.dek)
    kcvs = tuple(gpcrypto.aes_kcv(key) for key in keys)
    blocks = b"".join(
        _key_block(KeyType.AES, _aes_component(dek, key, encoding), kcv) for key, kcv in zip(keys, kcvs, strict=True)
    )
    return PutKeyCommand(new_keys.kvn, bytes([new_keys.kvn]) + blocks, kcvs)


def put_key_data_des(session_dek: bytes, new_keys: StaticKeys) -> PutKeyCommand:
    """PUT KEY data for a two-key 3DES key set, keys encrypted 3DES-ECB under the SCP02 **session** DEK.

    GPCS Appendix E.4.7 (sensitive data encryption); gp-scp.md §1.6 and §4.5.
    """
    _check_new_kvn(new_keys.kvn)
    keys = (new_keys.enc, new_keys.mac, new_keys.dek)
    for key in keys:
        if len(key) != gpcrypto.DES_KEY_LEN:
            raise ValueError(f"3DES keys must be 16 bytes, got {len(key)}")
    kcvs = tuple(gpcrypto.des_kcv(key) for key in keys)
    blocks = b"".join(
        _key_block(KeyType.DES, gpcrypto.tdes_ecb_encrypt(session_dek, key), kcv)
        for key, kcv in zip(keys, kcvs, strict=True)
    )
    return PutKeyCommand(new_keys.kvn, bytes([new_keys.kvn]) + blocks, kcvs)


def put_key_apdu(data: bytes, *, replace_kvn: int = 0, first_kid: int = FIRST_KEY_ID, multiple: bool = True) -> bytes:
    """``80 D8 P1 P2 Lc data 00`` (GPCS §11.8.2).

    P1 is the key version to replace (0: add a new key set); P2 is the first
    key identifier, with b8 set when the command carries several keys.
    """
    if not 0x00 <= replace_kvn <= 0x7F:
        raise ValueError(f"replace_kvn must be 0x00-0x7F, got 0x{replace_kvn:02X}")
    if not 0x01 <= first_kid <= 0x7F:
        raise ValueError(f"first_kid must be 0x01-0x7F, got 0x{first_kid:02X}")
    if not data or len(data) > MAX_SHORT_LC:
        raise ValueError(f"PUT KEY data must be 1-255 bytes, got {len(data)}")
    p2 = first_kid | (P2_MULTIPLE_KEYS if multiple else 0)
    cmd = CommandAPDU(cla=CLA_GP, ins=INS.PUT_KEY, p1=replace_kvn, p2=p2, data=data, has_le=True)
    return bytes(cmd)


def check_put_key_reply(response: bytes, expected: bytes) -> None:
    """Raise ``SCPError`` unless the card answered ``expected`` (KVN || KCVs) with 9000.

    Typical refusals: 9485 wrong KCV, 9484 algorithm not supported, 6A88 key
    set to replace not found, 6A84 no room (gp-scp.md §1.6).
    """
    data, sw = split_response(response)
    if sw != SW.OK:
        raise SCPError(f"PUT KEY refused with SW {sw:04X}", sw=sw)
    if data != expected:
        raise SCPError(f"PUT KEY reply {data.hex().upper()} does not match KVN||KCVs {expected.hex().upper()}", sw=sw)


def diversify_kdf3(master: bytes, kdd: bytes, *, kvn: int) -> StaticKeys:
    """Card keys from an AES master key and the card's KDD, "KDF3" (gp-scp.md §4.4, §5).

    KDD is the first 10 bytes of the INITIALIZE UPDATE response
    (:attr:`minidriver.scp03.SCP03InitResponse.kdd`). Each key is as long as
    the master key.
    """
    return StaticKeys(
        kvn=kvn,
        enc=gpcrypto.kdf3_diversify(master, 1, kdd),
        mac=gpcrypto.kdf3_diversify(master, 2, kdd),
        dek=gpcrypto.kdf3_diversify(master, 3, kdd),
    )
