"""The card's application registry: which applets exist and which may be selected.

This is the card runtime's view (lookup for SELECT). GlobalPlatform's view
(life cycle states, privileges, install/delete, GET STATUS) extends it in
the ISD; both read the same entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .applets.base import Applet

__all__ = ["Registry", "RegistryEntry"]


@dataclass
class RegistryEntry:
    applet: Applet
    #: GP life cycle state (GPCS §5.3): 0x07 SELECTABLE for applications,
    #: 0x0F PERSONALIZED for security domains; bit 0x80 = LOCKED
    life_cycle: int = 0x07
    privileges: bytes = field(default=b"\x00\x00\x00")

    @property
    def aid(self) -> bytes:
        return self.applet.aid

    @property
    def selectable(self) -> bool:
        """INSTALLED (03) is not selectable; LOCKED (b8) is not either."""
        return bool(self.life_cycle & 0x04) and not self.life_cycle & 0x80 and self.applet.selectable


class Registry:
    """Applets in installation order; the first entry is the default-selected one."""

    def __init__(self) -> None:
        self._entries: list[RegistryEntry] = []

    def add(self, applet: Applet, *, life_cycle: int = 0x07, privileges: bytes = b"\x00\x00\x00") -> RegistryEntry:
        if self.get(applet.aid) is not None:
            raise ValueError(f"AID {applet.aid.hex().upper()} is already registered")
        entry = RegistryEntry(applet, life_cycle, privileges)
        self._entries.append(entry)
        return entry

    def remove(self, aid: bytes) -> RegistryEntry | None:
        entry = self.get(aid)
        if entry is not None:
            self._entries.remove(entry)
        return entry

    def get(self, aid: bytes) -> RegistryEntry | None:
        for entry in self._entries:
            if entry.aid == aid:
                return entry
        return None

    def __iter__(self) -> Iterator[RegistryEntry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def default(self) -> RegistryEntry | None:
        return self._entries[0] if self._entries else None

    def find(self, aid_prefix: bytes, *, after: Applet | None = None) -> Applet | None:
        """The selectable applet whose AID starts with ``aid_prefix``.

        ISO 7816-4 §7.1.1 partial selection: with ``after`` (P2 'next
        occurrence'), the first match following ``after`` in registry order.
        Aliases (``Applet.aliases``) match too, so an ISD answers to the
        legacy OP/Visa card manager AIDs.
        """
        matches = [
            e.applet
            for e in self._entries
            if e.selectable and any(a.startswith(aid_prefix) for a in (e.aid, *e.applet.aliases))
        ]
        if after is not None and after in matches:
            matches = matches[matches.index(after) + 1 :]
        return matches[0] if matches else None
