"""ensure_private_dir: a directory that cannot be made is one line, never a loop."""

from pathlib import Path

from emulator.control.stack.paths import ensure_private_dir


def test_parent_exists_but_mkdir_says_enoent_is_one_line() -> None:
    # /proc exists, yet mkdir under it answers ENOENT: this used to recurse until RecursionError
    problem = ensure_private_dir(Path("/proc/vcard-no-such-dir"))
    assert problem is not None and "cannot create runtime directory /proc/vcard-no-such-dir" in problem


def test_missing_parents_are_created_0700(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert ensure_private_dir(target) is None
    assert target.stat().st_mode & 0o777 == 0o700
