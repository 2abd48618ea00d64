"""Static secure channel keys (GPCS 2.3.1 §11.1.8, AmdD §4.1.1).

A key set is identified by its key version number (KVN) and holds three keys:
key identifiers 01 ENC, 02 MAC, 03 DEK. The bytes never appear in a repr,
so a stray ``log.debug("%r", keys)`` stays harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from .crypto import AES_KEY_LENS, DES_KEY_LEN, aes_kcv, des_kcv

__all__ = ["KeyID", "KeyType", "SCPVersion", "StaticKeys"]


class SCPVersion(IntEnum):
    """Secure channel protocol identifiers (GPCS §E, AmdD §1)."""

    SCP02 = 0x02
    SCP03 = 0x03


class KeyType(IntEnum):
    """Key types of PUT KEY and the key information template (GPCS §11.1.8 table 11-16)."""

    DES = 0x80
    AES = 0x88


class KeyID(IntEnum):
    """Key identifiers inside a secure channel key set (GPCS §E.1.1, AmdD §4.1.1)."""

    ENC = 0x01
    MAC = 0x02
    DEK = 0x03


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """One key set: ``scp`` says which protocol it serves (3DES for SCP02, AES for SCP03)."""

    kvn: int
    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)
    scp: SCPVersion = SCPVersion.SCP03

    def __post_init__(self) -> None:
        if not 0x01 <= self.kvn <= 0xFF:
            raise ValueError(f"kvn must be 0x01-0xFF, got {self.kvn:#x}")
        allowed = (DES_KEY_LEN,) if self.scp == SCPVersion.SCP02 else AES_KEY_LENS
        for name in ("enc", "mac", "dek"):
            if len(getattr(self, name)) not in allowed:
                raise ValueError(f"{name} of key set {self.kvn:#04x} must be {allowed} bytes long")

    @property
    def key_type(self) -> KeyType:
        return KeyType.DES if self.scp == SCPVersion.SCP02 else KeyType.AES

    def by_id(self, kid: KeyID) -> bytes:
        return (self.enc, self.mac, self.dek)[kid - 1]

    def kcv(self, kid: KeyID) -> bytes:
        """Key check value of one key (GPCS §11.8.2.3)."""
        key = self.by_id(kid)
        return des_kcv(key) if self.scp == SCPVersion.SCP02 else aes_kcv(key)
