"""Profiles: the built-in default, ATR checks, field errors, state file paths, TOML files."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert profile.atr == h("3B8B0180730000C0657663617264BE")
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
        "3B8B0180730000C0657663617264BE",  # default: TD1 names T=1, TCK present and right
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
        "3B8B0180730000C0657663617264BE00",  # a byte after TCK
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


# -- strict validation (issue 8, defect 3): every table, key, type and value is checked ---------------
def piv_changed(tmp_path: Path, **changes: Any) -> Profile:
    data = default_data()
    data["piv"].update(changes)
    return Profile.from_dict(data, source="card.toml", state_dir=tmp_path)


def isd_changed(tmp_path: Path, **changes: Any) -> Profile:
    data = default_data()
    data["isd"].update(changes)
    return Profile.from_dict(data, source="card.toml", state_dir=tmp_path)


def test_typo_in_a_piv_key_names_it_the_file_and_the_right_spelling(tmp_path: Path) -> None:
    # the typo used to be ignored: the card kept the public default management key
    with pytest.raises(ProfileError) as info:
        piv_changed(tmp_path, managment_key="00" * 24)
    assert str(info.value) == ("card.toml: unknown key 'managment_key' in [piv] (did you mean 'management_key'?)")


@pytest.mark.parametrize(
    ("where", "key", "message"),
    [
        ("piv", "pin_retires", "unknown key 'pin_retires' in [piv] (did you mean 'pin_retries'?)"),
        ("isd", "frobnicate", "unknown key 'frobnicate' in [isd]"),
        (None, "atr2", "unknown key 'atr2' (did you mean 'atr'?)"),
        (None, "openpgp", "unknown table [openpgp]"),
        ("piv", "extra", "unknown table [piv.extra]"),
    ],
)
def test_unknown_keys_and_tables_are_refused(tmp_path: Path, where: str | None, key: str, message: str) -> None:
    data = default_data()
    value: object = {"x": 1} if key in ("openpgp", "extra") else 3
    (data if where is None else data[where])[key] = value
    with pytest.raises(ProfileError) as info:
        Profile.from_dict(data, source="card.toml", state_dir=tmp_path)
    assert str(info.value) == f"card.toml: {message}"


def test_typos_inside_arrays_of_tables_are_refused(tmp_path: Path) -> None:
    data = default_data()
    data["isd"]["keysets"][0]["dek_"] = "00" * 16
    with pytest.raises(ProfileError, match=r"unknown key 'dek_' in \[\[isd\.keysets\]\] #1 \(did you mean 'dek'\?\)"):
        Profile.from_dict(data, source="card.toml", state_dir=tmp_path)
    data = default_data()
    data["piv"]["keys"][0]["pin_polcy"] = "once"
    with pytest.raises(ProfileError, match=r"unknown key 'pin_polcy' in \[\[piv\.keys\]\] #1"):
        Profile.from_dict(data, source="card.toml", state_dir=tmp_path)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("piv", "pin_retries", "3", "[piv] pin_retries must be an integer, got the string '3'"),
        ("piv", "pin_retries", True, "[piv] pin_retries must be an integer, got the boolean true"),
        ("piv", "pin", 123456, "[piv] pin must be a string, got the integer 123456"),
        ("piv", "test_only", "yes", "[piv] test_only must be a boolean (true or false), got the string 'yes'"),
        ("isd", "i", "70", "[isd] i must be an integer, got the string '70'"),
        ("isd", "scp", 3, "[isd] scp must be a string, got the integer 3"),
        ("isd", "keysets", {"kvn": 1}, "[[isd.keysets]] must be an array of tables, got a table"),
        (None, "logical_channels", 4.0, "logical_channels must be an integer, got the float 4.0"),
        (None, "applets", ["isd", 1], "applets must be a list of strings, got a list"),
    ],
)
def test_wrong_type_names_the_field_and_the_expected_type(
    tmp_path: Path, section: str | None, key: str, value: object, message: str
) -> None:
    data = default_data()
    (data if section is None else data[section])[key] = value
    with pytest.raises(ProfileError) as info:
        Profile.from_dict(data, source="card.toml", state_dir=tmp_path)
    assert str(info.value) == f"card.toml: {message}"


def test_a_wrong_type_in_a_key_set_names_its_position(tmp_path: Path) -> None:
    data = default_data()
    data["isd"]["keysets"][0]["kvn"] = "FF"
    with pytest.raises(ProfileError) as info:
        Profile.from_dict(data, source="card.toml", state_dir=tmp_path)
    assert str(info.value) == "card.toml: [[isd.keysets]] #1 kvn must be an integer, got the string 'FF'"


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"scp": "07"}, "[isd] scp must be one of '02', '03', got '07'"),
        ({"i": 0x15}, "[isd] i must be one of 0x00, 0x01, 0x10, 0x11, 0x20, 0x21, 0x30"),  # an SCP02 i under SCP03
        ({"i": 0x72}, "[isd] i must be one of"),  # 71 is S16 (AmdD v1.2), 72 is nothing
        ({"scp": "02", "i": 0x70}, "[isd] i must be one of 0x05, 0x15, 0x25, 0x35, 0x45, 0x55, 0x65, 0x75"),
        ({"scp02_i": 0x16}, "[isd] scp02_i must be one of 0x05, 0x15, 0x25, 0x35, 0x45, 0x55, 0x65, 0x75"),
        ({"scp03_i": 0x10}, "[isd] scp03_i contradicts i"),
        ({"kdd": "00" * 9}, "[isd] kdd must be 10 bytes"),
        ({"aid": "A0000001"}, "[isd] aid must be 5-16 bytes"),
        ({"life_cycle": "secure"}, "(did you mean 'secured'?)"),
        ({"iin": "4X"}, "[isd] iin is not hex"),
    ],
)
def test_isd_values_the_card_does_not_implement_are_refused(
    tmp_path: Path, changes: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ProfileError) as info:
        isd_changed(tmp_path, **changes)
    assert str(info.value).startswith("card.toml: ") and needle in str(info.value)


@pytest.mark.parametrize(
    ("keyset", "needle"),
    [
        ({"enc": "00" * 15}, "[[isd.keysets]] #1 enc must be 16, 24 or 32 bytes for an SCP03 (AES) key set, got 15"),
        ({"scp": "02", "mac": "00" * 24}, "#1 mac must be 16 bytes for an SCP02 (3DES (two-key)) key set"),
        ({"kvn": 0}, "#1 kvn must be 0x01-0xFF, got 0x00"),
        ({"kvn": 0x100}, "#1 kvn must be 0x01-0xFF, got 0x100"),
        ({"scp": "03", "dek": "zz"}, "#1 dek is not hex"),
    ],
)
def test_key_set_lengths_follow_the_protocol(tmp_path: Path, keyset: dict[str, Any], needle: str) -> None:
    data = default_data()
    data["isd"]["keysets"][0].update(keyset)
    with pytest.raises(ProfileError) as info:
        Profile.from_dict(data, source="card.toml", state_dir=tmp_path)
    assert needle in str(info.value)


def test_a_key_set_version_given_twice_is_refused(tmp_path: Path) -> None:
    data = default_data()
    data["isd"]["keysets"].append(dict(data["isd"]["keysets"][0]))
    with pytest.raises(ProfileError, match=r"\[isd\] keysets has kvn ff more than once"):
        Profile.from_dict(data, source="card.toml", state_dir=tmp_path)


def test_an_scp02_key_set_beside_the_scp03_one_is_accepted(tmp_path: Path) -> None:
    data = default_data()
    data["isd"]["keysets"].append({"kvn": 0x20, "scp": "02", "enc": "40" * 16, "mac": "41" * 16, "dek": "42" * 16})
    assert len(Profile.from_dict(data, source="card.toml", state_dir=tmp_path).isd["keysets"]) == 2


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"pin": "12345"}, "[piv] pin must be 6-8 digits"),
        ({"pin": "123456789"}, "[piv] pin must be 6-8 digits"),
        ({"pin": "12345a"}, "[piv] pin must be 6-8 digits"),
        ({"puk": "1234567"}, None),  # 7 characters: fine
        ({"puk": "12345"}, "[piv] puk must be 6-8 characters"),
        ({"pin_retries": 0}, "[piv] pin_retries must be 1-15, got 0"),
        ({"puk_retries": 16}, "[piv] puk_retries must be 1-15, got 16"),
        ({"management_key": "00" * 16}, "management_key must be 24 bytes for management_key_algorithm '3des'"),
        ({"management_key_algorithm": "aes128"}, "must be 16 bytes for management_key_algorithm 'aes128', got 24"),
        ({"management_key_algorithm": "aes256", "management_key": "00" * 32}, None),
        ({"management_key_algorithm": "aes129"}, "(did you mean 'aes192'?)"),
        ({"version": "5.4"}, '[piv] version must be three numbers 0-255 like "5.4.3"'),
        ({"version": "5.4.256"}, "[piv] version must be three numbers"),
        ({"attestation_subject": "XX=nope"}, "[piv] attestation_subject must be a name"),
    ],
)
def test_piv_values_are_checked_against_the_card(tmp_path: Path, changes: dict[str, Any], needle: str | None) -> None:
    if needle is None:
        assert piv_changed(tmp_path, **changes).piv | changes == piv_changed(tmp_path, **changes).piv
        return
    with pytest.raises(ProfileError) as info:
        piv_changed(tmp_path, **changes)
    assert str(info.value).startswith("card.toml: ") and needle in str(info.value)


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ({"slot": "9b"}, '#1 slot must be a PIV key slot, hex: "9a", "9c", "9d", "9e" or "82"-"95", got \'9b\''),
        ({"slot": 0x9A}, "#1 slot must be a string, got the integer 154"),
        ({"algorithm": "ECCP521"}, "#1 algorithm must be one of 'rsa1024',"),
        ({"pin_policy": "sometimes"}, "#1 pin_policy must be one of"),
        ({"self_signed_subject": "CN=" + "x" * 65}, "#1 self_signed_subject must be a name"),
    ],
)
def test_piv_keys_are_checked(tmp_path: Path, key: dict[str, Any], needle: str) -> None:
    data = default_data()
    data["piv"]["keys"][0].update(key)
    with pytest.raises(ProfileError) as info:
        Profile.from_dict(data, source="card.toml", state_dir=tmp_path)
    assert "[[piv.keys]] #1" in str(info.value) and needle in str(info.value)


def test_a_piv_slot_given_twice_is_refused_whatever_its_case(tmp_path: Path) -> None:
    data = default_data()
    data["piv"]["keys"].append({"slot": "9A", "algorithm": "eccp384"})
    with pytest.raises(ProfileError, match=r"\[piv\] keys has slot 9a more than once"):
        Profile.from_dict(data, source="card.toml", state_dir=tmp_path)


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "with space", ""])
def test_a_name_that_is_no_file_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ProfileError, match=r"card\.toml: name must be letters, digits"):
        Profile.from_dict(default_data() | {"name": name}, source="card.toml", state_dir=tmp_path)


@pytest.mark.parametrize("state", ["", "  ", "a\0b.sqlite"])
def test_a_state_file_that_is_no_path_is_refused(tmp_path: Path, state: str) -> None:
    with pytest.raises(ProfileError, match=r"card\.toml: state_file must not"):
        Profile.from_dict(default_data() | {"state_file": state}, source="card.toml", state_dir=tmp_path)


def test_typo_in_a_toml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "card.toml"
    path.write_text(
        resources.files("emulator.profiles").joinpath("default.toml").read_text().replace("pin_retries", "pin_retires")
    )
    with pytest.raises(ProfileError) as info:
        load_profile(str(path), state_dir=tmp_path)
    assert str(info.value) == f"{path}: unknown key 'pin_retires' in [piv] (did you mean 'pin_retries'?)"
    assert list(tmp_path.iterdir()) == [path]  # nothing written


# -- what a profile file may be: a bounded regular file ----------------------------------------------
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "card.toml"
    os.mkfifo(fifo)

    def writer() -> None:  # unblocks a reader that opened the FIFO (what the old code did)
        os.close(os.open(fifo, os.O_WRONLY))

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ProfileError) as info:
            load_profile(str(fifo))
        assert str(info.value) == f"cannot read profile {fifo}: it is a FIFO, not a regular file"
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets the writer's open return
        thread.join(timeout=10)


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null"])
def test_devices_are_refused_before_reading(special: str) -> None:
    import resource
    import subprocess
    import sys

    code = (
        "from emulator.profile import load_profile, ProfileError\n"
        f"try:\n    load_profile({special!r})\nexcept ProfileError as exc:\n    print(exc)\n"
    )

    def limit_memory() -> None:  # the old code read /dev/zero until memory ran out
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, preexec_fn=limit_memory
    )
    assert out.stdout == f"cannot read profile {special}: it is a character device, not a regular file\n", out.stderr


def test_a_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(ProfileError, match="it is a directory, not a regular file"):
        load_profile(str(folder))


def test_an_oversized_profile_is_refused(tmp_path: Path) -> None:
    from emulator.profile import MAX_PROFILE_BYTES

    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * (MAX_PROFILE_BYTES + 1))
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert str(info.value) == f"cannot read profile {path}: larger than 1024 KiB"
    path.write_bytes(b"#" * (MAX_PROFILE_BYTES - 100) + b'\natr = "3B00"\n')  # at the bound: read
    assert load_profile(str(path)).atr == h("3B00")


# -- the schema is complete: whatever it accepts, the card builds ------------------------------------
#: per field: values near the edge of what the card takes, on both sides
_NEAR: dict[tuple[str | None, str], list[object]] = {
    ("isd", "aid"): ["A000000151", "A0000001", "A0" * 16, "A0" * 17],
    ("isd", "scp"): ["02", "03", "07", 3],
    ("isd", "i"): [0x00, 0x10, 0x15, 0x55, 0x60, 0x70, 0x71, "70"],
    ("isd", "scp02_i"): [0x05, 0x15, 0x45, 0x55, 0x16],
    ("isd", "scp03_i"): [0x00, 0x70, 0x30, 0x40],
    ("isd", "kdd"): ["00" * 10, "00" * 9, "zz"],
    ("isd", "iin"): ["", "42", "00" * 64, "00" * 65],
    ("isd", "life_cycle"): ["op_ready", "INITIALIZED", "card_locked", "terminated", "secure"],
    ("piv", "pin"): ["123456", "12345678", "12345", "123456789", "abcdef", 123456],
    ("piv", "puk"): ["abcdef", "12345678", "12345", "\u00e9" * 4, "\u00e9" * 5],
    ("piv", "pin_retries"): [1, 15, 0, 16, -1, True],
    ("piv", "puk_retries"): [1, 15, 0, 16],
    ("piv", "management_key"): ["40" * 16, "40" * 24, "40" * 32, "40" * 8],
    ("piv", "management_key_algorithm"): ["3des", "TDES", "aes128", "aes192", "aes256", "des"],
    ("piv", "version"): ["5.4.3", "0.0.0", "255.255.255", "5.4", "1.2.256"],
    ("piv", "attestation_subject"): ["CN=a", "plain words", "CN=" + "x" * 64, "CN=" + "x" * 65, ""],
    ("keyset", "kvn"): [0x01, 0x7F, 0xFF, 0x00, 0x100],
    ("keyset", "scp"): ["02", "03", "04"],
    ("keyset", "enc"): ["40" * 16, "40" * 24, "40" * 32, "40" * 8],
    ("keyset", "mac"): ["40" * 16, "40" * 32, "40" * 20],
    ("key", "slot"): ["9a", "9C", "9d", "9e", "82", "95", "96", "9b", "f9"],
    ("key", "algorithm"): ["eccp256", "ECCP384", "rsa1024", "tdes", "pin"],
    ("key", "pin_policy"): ["default", "never", "once", "always", "sometimes"],
    ("key", "touch_policy"): ["default", "never", "always", "cached", "maybe"],
    ("key", "self_signed_subject"): ["", "CN=k", "O=org,CN=k", "XX=k"],
    (None, "logical_channels"): [1, 4, 20, 0, 21],
    (None, "applets"): [["isd"], ["piv"], [], ["isd", "piv"], ["piv", "piv"]],
    (None, "name"): ["blue", "a.b-c_d+e", "a/b"],
}


def _change() -> st.SearchStrategy[tuple[tuple[str | None, str], object]]:
    return st.sampled_from(sorted(_NEAR, key=str)).flatmap(lambda f: st.tuples(st.just(f), st.sampled_from(_NEAR[f])))


@settings(max_examples=150, deadline=None)
@given(st.lists(_change(), min_size=1, max_size=3))
def test_a_profile_the_schema_accepts_builds_a_card(changes: list[tuple[tuple[str | None, str], object]]) -> None:
    from emulator.factory import build_card
    from emulator.store import MemoryStore

    data = default_data()
    tables = {
        None: data,
        "isd": data["isd"],
        "piv": data["piv"],
        "keyset": data["isd"]["keysets"][0],
        "key": data["piv"]["keys"][0],
    }
    for (section, key), value in changes:
        tables[section][key] = value
    try:
        profile = Profile.from_dict(data, source="card.toml", state_dir=Path("/nonexistent"))
    except ProfileError as exc:
        assert str(exc).startswith("card.toml: ")
        return
    card = build_card(profile, MemoryStore())  # must not raise: validation was complete
    card.power_on()
