"""The fixture's card choice (the vcard marker) and profile rewriting (sans-I/O but for tmp files)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from emulator.fixture_cards import CardSpec, SpecError, card_spec, profile_with_state
from emulator.profile import load_profile


def test_defaults_and_a_builtin_profile() -> None:
    assert card_spec({}) == CardSpec("default", 0, "function", None)
    assert card_spec({"profile": "piv-nist", "slot": 1, "scope": "module"}) == CardSpec("piv-nist", 1, "module", None)


def test_a_relative_profile_path_is_taken_from_the_test_file(tmp_path: Path) -> None:
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "mine.toml").write_text("")
    spec = card_spec({"profile": "cards/mine.toml", "other_profile": "yubikey-5.7"}, base=tmp_path)
    assert spec.profile == str((tmp_path / "cards" / "mine.toml").resolve()) and spec.other_profile == "yubikey-5.7"


@pytest.mark.parametrize(
    ("kwargs", "args", "text"),
    [
        ({}, ("default",), "keyword arguments only"),
        ({"slot": True}, (), "slot must be 0 or 1"),
        ({"slot": "0"}, (), "slot must be 0 or 1"),
        ({"profile": 3}, (), "must be a built-in profile"),
        ({"other_profile": "nope"}, (), "other_profile must be a built-in profile"),
    ],
)
def test_mistakes_name_the_argument(kwargs: dict[str, object], args: tuple[object, ...], text: str) -> None:
    with pytest.raises(SpecError, match=text):
        card_spec(kwargs, args)


def test_profile_with_state_moves_only_the_top_level_state_file(tmp_path: Path) -> None:
    source = tmp_path / "p.toml"
    source.write_text(
        '# a card\nname = "mine"\nstate_file = "old.sqlite"\natr = "3B8B0180730000C0657663617264BE"\n'
        '[piv]\npin = "123456"\n# state_file inside a table is not the card\'s\n'
    )
    text = profile_with_state(str(source), tmp_path / "new.sqlite")
    data = tomllib.loads(text)
    assert data["state_file"] == str(tmp_path / "new.sqlite") and data["name"] == "mine"
    assert data["piv"] == {"pin": "123456"}
    assert "old.sqlite" not in text


def test_builtin_profile_with_state_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(profile_with_state("yubikey-5.7", tmp_path / "c.sqlite"))
    profile = load_profile(str(path))
    assert profile.state_file == tmp_path / "c.sqlite" and profile.atr == load_profile("yubikey-5.7").atr
