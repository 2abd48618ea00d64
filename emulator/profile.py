"""Card profiles: TOML files that describe a card at creation.

A profile fixes what a *new* card looks like (ATR, ISD key sets, PIV
credentials, applets, state file). Once the state file exists, the card's
persistent state wins; ``vcard insert --fresh`` sets the old file aside and
builds a new card from the profile.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["Profile", "ProfileError", "builtin_profiles", "default_state_dir", "load_profile"]

KNOWN_APPLETS = ("isd", "piv")
MAX_LOGICAL_CHANNELS = 20


class ProfileError(ValueError):
    """A profile that cannot describe a card; the message names the field."""


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


def atr_tck_ok(atr: bytes) -> bool:
    """True if the ATR needs no TCK (T=0 only) or carries a correct one (ISO 7816-3 §8.2.5).

    The check byte is present when any TDi names a protocol other than T=0;
    then the XOR of every byte from T0 through TCK is zero.
    """
    if len(atr) < 2:
        return False
    i, y, needs_tck = 1, atr[1] >> 4, False
    k = atr[1] & 0x0F
    while True:
        i += bin(y & 0x7).count("1")  # TA, TB, TC present
        if not y & 0x8:
            break
        i += 1
        if i >= len(atr):
            return False
        td = atr[i]
        needs_tck |= (td & 0x0F) != 0
        y = td >> 4
    end = i + 1 + k  # index after the historical bytes
    if not needs_tck:
        return len(atr) == end
    if len(atr) != end + 1:
        return False
    x = 0
    for b in atr[1:]:
        x ^= b
    return x == 0


@dataclass(frozen=True)
class Profile:
    name: str
    atr: bytes
    state_file: Path
    applets: tuple[str, ...] = ("isd", "piv")
    logical_channels: int = 4
    description: str = ""
    isd: dict[str, Any] = field(default_factory=dict)
    piv: dict[str, Any] = field(default_factory=dict)
    source: str = "<builtin>"

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
        try:
            name = str(data.get("name") or Path(source).stem)
            atr = bytes.fromhex(str(data["atr"]))
        except KeyError as exc:
            raise ProfileError(f"{source}: missing field {exc.args[0]!r}") from None
        except ValueError as exc:
            raise ProfileError(f"{source}: atr is not hex ({exc})") from None
        state = Path(str(data.get("state_file") or f"{name}.sqlite"))
        if not state.is_absolute():
            state = (state_dir or default_state_dir()) / state
        applets = data.get("applets", ["isd", "piv"])
        if not isinstance(applets, list):
            raise ProfileError(f"{source}: applets must be a list")
        try:
            channels = int(data.get("logical_channels", 4))
        except (TypeError, ValueError):
            raise ProfileError(f"{source}: logical_channels must be an integer 1-{MAX_LOGICAL_CHANNELS}") from None
        for section in ("isd", "piv"):
            if not isinstance(data.get(section, {}), dict):
                raise ProfileError(f"{source}: [{section}] must be a table")
        return cls(
            name=name,
            atr=atr,
            state_file=state,
            applets=tuple(str(a) for a in applets),
            logical_channels=channels,
            description=str(data.get("description", "")),
            isd=dict(data.get("isd", {})),
            piv=dict(data.get("piv", {})),
            source=source,
        )


def load_profile(spec: str | None = None, *, state_dir: Path | None = None) -> Profile:
    """A built-in profile by name (default: ``default``) or a TOML file by path."""
    spec = spec or "default"
    path = Path(spec)
    if path.suffix == ".toml" or os.sep in spec:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ProfileError(f"cannot read profile {spec}: {exc.strerror}") from None
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
