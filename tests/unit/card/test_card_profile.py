"""Profiles: the built-in default, ATR checks, field errors, state file paths, TOML files."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from emulator.profile import Profile, ProfileError, atr_tck_ok, builtin_profiles, load_profile

h = bytes.fromhex


def default_data() -> dict[str, Any]:
    raw = resources.files("emulator.profiles").joinpath("default.toml").read_bytes()
    return copy.deepcopy(tomllib.loads(raw.decode()))


def from_data(tmp_path: Path, **changes: Any) -> Profile:
    data = default_data() | changes
    return Profile.from_dict({k: v for k, v in data.items() if v is not None}, source="t.toml", state_dir=tmp_path)


def test_default_profile_loads(tmp_path: Path) -> None:
    profile = load_profile(state_dir=tmp_path)
    assert profile == load_profile("default", state_dir=tmp_path)
    assert profile.name == "default"
    assert profile.atr == h("3B87018065766361726401")
    assert profile.applets == ("isd", "piv")
    assert profile.logical_channels == 4
    assert profile.state_file == tmp_path / "default.sqlite"
    assert profile.isd["aid"] == "A000000151000000"
    assert profile.piv["pin"] == "123456"
    assert profile.source == "<builtin:default>"
    assert "default" in builtin_profiles()


@pytest.mark.parametrize(
    "atr",
    [
        "3B87018065766361726401",  # default: TD1 names T=1, TCK present and right
        "3B 02 14 50",  # T=0 only, no interface bytes: no TCK
        "3B 00",  # no historical bytes
        "3B 90 11 00",  # TA1, TD1 names T=0 only: no TCK
        "3B 80 80 01 01",  # TD1 T=0, TD2 T=1: TCK needed, XOR of 80 80 01 01 is 0
        "3F 00",
    ],
)
def test_atr_tck_good(atr: str) -> None:
    assert atr_tck_ok(h(atr))


@pytest.mark.parametrize(
    "atr",
    [
        "3B87018065766361726400",  # wrong TCK
        "3B870180657663617264",  # TCK missing
        "3B8701806576636172640100",  # a byte after TCK
        "3B 02 14 50 00",  # T=0 only: nothing may follow the historical bytes
        "3B 02 14",  # historical bytes missing
        "3B 80",  # TD1 announced, missing
        "3B",
        "",
    ],
)
def test_atr_tck_bad(atr: str) -> None:
    assert not atr_tck_ok(h(atr))


def test_profile_with_a_bad_tck_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"t\.toml: atr .*TCK"):
        from_data(tmp_path, atr="3B87018065766361726400")


@pytest.mark.parametrize("atr", ["", "3B", "12 00", "3B" + "00" * 33])
def test_atr_of_bad_shape_is_refused(tmp_path: Path, atr: str) -> None:
    with pytest.raises(ProfileError, match="atr"):
        from_data(tmp_path, atr=atr)


def test_atr_not_hex_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="atr is not hex"):
        from_data(tmp_path, atr="3B 8X")


def test_missing_atr_names_the_field(tmp_path: Path) -> None:
    data = default_data()
    del data["atr"]
    with pytest.raises(ProfileError, match=r"t\.toml: missing field 'atr'"):
        Profile.from_dict(data, source="t.toml", state_dir=tmp_path)


def test_unknown_applet_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        from_data(tmp_path, applets=["isd", "openpgp"])
    message = str(info.value)
    assert "t.toml" in message
    assert "applets" in message
    assert "'openpgp'" in message


def test_applets_must_be_a_list(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="applets must be a list"):
        from_data(tmp_path, applets="isd")


@pytest.mark.parametrize("value", [0, 21, "four", [4]])
def test_bad_logical_channels_names_the_field(tmp_path: Path, value: object) -> None:
    with pytest.raises(ProfileError, match=r"t\.toml: logical_channels"):
        from_data(tmp_path, logical_channels=value)


@pytest.mark.parametrize("section", ["isd", "piv"])
def test_section_that_is_no_table_names_it(tmp_path: Path, section: str) -> None:
    with pytest.raises(ProfileError, match=rf"t\.toml: \[?{section}\]? must be a table"):
        from_data(tmp_path, **{section: "x"})


def test_relative_state_file_is_under_the_state_dir(tmp_path: Path) -> None:
    assert from_data(tmp_path, state_file="cards/mine.sqlite").state_file == tmp_path / "cards" / "mine.sqlite"
    assert from_data(tmp_path, state_file="/abs/mine.sqlite").state_file == Path("/abs/mine.sqlite")
    # no state_file: the profile's name
    assert from_data(tmp_path, state_file=None, name="blue").state_file == tmp_path / "blue.sqlite"


def test_state_dir_defaults_to_vcard_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VCARD_STATE_DIR", str(tmp_path / "env"))
    assert load_profile().state_file == tmp_path / "env" / "default.sqlite"


def test_toml_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "blue.toml"
    path.write_text('atr = "3B 02 14 50"\napplets = ["piv"]\nlogical_channels = 1\n')
    profile = load_profile(str(path), state_dir=tmp_path / "state")
    assert profile.name == "blue"  # from the file name
    assert profile.atr == h("3B021450")
    assert profile.applets == ("piv",)
    assert profile.state_file == tmp_path / "state" / "blue.sqlite"
    assert profile.source == str(path)


def test_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('atr = "3B02\n')
    with pytest.raises(ProfileError, match=r"bad\.toml: not valid TOML"):
        load_profile(str(path))


def test_toml_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(str(path))


def test_missing_toml_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert str(info.value) == f"cannot read profile {path}: No such file or directory"


def test_unknown_builtin_profile_lists_the_builtins() -> None:
    with pytest.raises(ProfileError, match=r"no built-in profile 'nope' \(built-in: .*default.*\.toml path"):
        load_profile("nope")
