"""Card profiles: TOML files that describe a card at creation.

A profile fixes what a *new* card looks like (ATR, ISD key sets, PIV
credentials, applets, state file). Once the state file exists, the card's
persistent state wins; ``vcard insert --fresh`` sets the old file aside and
builds a new card from the profile.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .personas import DEFAULT_PERSONA, Persona, persona_named
from .profiles.schema import KNOWN_APPLETS, MAX_LOGICAL_CHANNELS, SchemaError, atr_tck_ok, validate

__all__ = [
    "MAX_PROFILE_BYTES",
    "Profile",
    "ProfileError",
    "atr_tck_ok",
    "builtin_profiles",
    "default_state_dir",
    "load_profile",
    "read_profile_file",
    "read_small_file",
]

#: a profile is a few KiB; anything larger is a mistake (or /dev/zero)
MAX_PROFILE_BYTES = 1 << 20


class ProfileError(ValueError):
    """A profile that cannot describe a card; the message names the file and the field."""


def default_state_dir() -> Path:
    env = os.environ.get("VCARD_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/vcard")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vcard"


def builtin_profiles() -> list[str]:
    files = resources.files("emulator.profiles")
    return sorted(p.name.removesuffix(".toml") for p in files.iterdir() if p.name.endswith(".toml"))


@dataclass(frozen=True)
class Profile:
    """A validated profile. ``isd`` and ``piv`` are the checked TOML tables the applets read."""

    name: str
    atr: bytes
    state_file: Path
    applets: tuple[str, ...] = ("isd", "piv")
    logical_channels: int = 4
    description: str = ""
    isd: dict[str, Any] = field(default_factory=dict)
    piv: dict[str, Any] = field(default_factory=dict)
    source: str = "<builtin>"
    #: the behaviours in which real tokens differ (emulator/personas.py, PERSONAS.md)
    persona: Persona = DEFAULT_PERSONA

    def __post_init__(self) -> None:
        if not 2 <= len(self.atr) <= 33 or self.atr[0] not in (0x3B, 0x3F):
            raise ProfileError(f"{self.source}: atr must be 2-33 bytes starting 3B or 3F")
        if not atr_tck_ok(self.atr):
            raise ProfileError(f"{self.source}: atr has a wrong length or check byte (TCK)")
        for name in self.applets:
            if name not in KNOWN_APPLETS:
                raise ProfileError(
                    f"{self.source}: unknown applet {name!r} in applets (known: {', '.join(KNOWN_APPLETS)})"
                )
        if not 1 <= self.logical_channels <= MAX_LOGICAL_CHANNELS:
            raise ProfileError(f"{self.source}: logical_channels must be 1-{MAX_LOGICAL_CHANNELS}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str, state_dir: Path | None = None) -> Profile:
        """Validate ``data`` completely (schema, then the applets' own parsers), then build.

        Nothing is written here: a profile that fails is refused before any
        state file exists.
        """
        try:
            validate(data)
        except SchemaError as exc:
            raise ProfileError(f"{source}: {exc}") from None
        persona = persona_named(data.get("persona"))
        _applets_accept(data, source, persona)
        name = data.get("name") or Path(source).stem.strip("<>").removeprefix("builtin:")
        state = Path(data.get("state_file") or f"{name}.sqlite")
        if not state.is_absolute():
            state = (state_dir or default_state_dir()) / state
        return cls(
            name=name,
            atr=bytes.fromhex(data["atr"]),
            state_file=state,
            applets=tuple(data.get("applets", KNOWN_APPLETS)),
            logical_channels=data.get("logical_channels", 4),
            description=data.get("description", ""),
            isd=dict(data.get("isd", {})),
            piv=dict(data.get("piv", {})),
            source=source,
            persona=persona,
        )


def _applets_accept(data: dict[str, Any], source: str, persona: Persona) -> None:
    """The applets parse their tables as the card will; the schema should have caught everything."""
    from functools import partial

    from .applets.isd import ISDConfig
    from .applets.piv.config import PIVConfig

    piv_config = partial(PIVConfig.from_profile, persona=persona)
    for section, parse in (("isd", ISDConfig.from_profile), ("piv", piv_config)):
        try:
            parse(data.get(section, {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProfileError(f"{source}: [{section}] {exc}") from None


def read_small_file(path: Path, limit: int) -> tuple[bytes, int]:
    """The bytes and mode of a regular file of at most ``limit`` bytes.

    A FIFO, a device (``/dev/zero``) or a directory is refused before it is
    read: ``os.stat`` first, then the opened descriptor is checked again
    (``O_NONBLOCK`` so a FIFO swapped in meanwhile cannot block the open).
    Raises ``OSError`` from the system, ``ValueError`` (a reason) otherwise.
    """
    kind = _not_regular(os.stat(path).st_mode)
    if kind:
        raise ValueError(f"it is {kind}, not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        kind = _not_regular(mode)
        if kind:
            raise ValueError(f"it is {kind}, not a regular file")
        raw = file.read(limit + 1)
    if len(raw) > limit:
        raise ValueError(f"larger than {limit // 1024} KiB")
    return raw, mode


def read_profile_file(path: Path) -> bytes:
    """A profile file's bytes: a regular file of at most :data:`MAX_PROFILE_BYTES`."""
    try:
        return read_small_file(path, MAX_PROFILE_BYTES)[0]
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from None


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device"}
    kinds |= {stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    return next((what for test, what in kinds.items() if test(mode)), "a special file")


def load_profile(spec: str | None = None, *, state_dir: Path | None = None) -> Profile:
    """A built-in profile by name (default: ``default``) or a TOML file by path."""
    spec = spec or "default"
    path = Path(spec)
    if path.suffix == ".toml" or os.sep in spec:
        raw = read_profile_file(path)
        source = str(path)
    else:
        res = resources.files("emulator.profiles").joinpath(f"{spec}.toml")
        if not res.is_file():
            raise ProfileError(
                f"no built-in profile {spec!r} (built-in: {', '.join(builtin_profiles())}; or give a .toml path)"
            )
        raw = res.read_bytes()
        source = f"<builtin:{spec}>"
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from None
    return Profile.from_dict(data, source=source, state_dir=state_dir)
