"""userns.diagnose: which sysctl forbids user namespaces, and the one-line fix for each (sans-I/O)."""

from __future__ import annotations

import pytest

from emulator.control.stack.userns import SYSCTLS, diagnose

OPEN = {
    "kernel.unprivileged_userns_clone": None,  # absent on Debian 12's kernel
    "user.max_user_namespaces": "96365\n",
    "kernel.apparmor_restrict_unprivileged_userns": None,
}


def test_nothing_blocks_on_this_kind_of_machine() -> None:
    assert diagnose(OPEN) == []
    assert diagnose({}) == []  # nothing readable: nothing to blame


@pytest.mark.parametrize(
    ("name", "value", "said", "fix"),
    [
        ("kernel.unprivileged_userns_clone", "0\n", "root only", "sysctl -w kernel.unprivileged_userns_clone=1"),
        ("user.max_user_namespaces", "0\n", "no user namespace", "sysctl -w user.max_user_namespaces=15000"),
        (
            "kernel.apparmor_restrict_unprivileged_userns",
            "1\n",
            "AppArmor",
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
        ),
    ],
)
def test_each_knob_is_named_with_its_fix(name: str, value: str, said: str, fix: str) -> None:
    (blocker,) = diagnose({**OPEN, name: value})
    assert name in blocker.what and said in blocker.what
    assert fix in blocker.fix and "as root" in blocker.fix
    assert "\n" not in blocker.what + blocker.fix


def test_enabled_values_are_not_blamed() -> None:
    assert diagnose({**OPEN, "kernel.unprivileged_userns_clone": "1\n"}) == []
    assert diagnose({**OPEN, "kernel.apparmor_restrict_unprivileged_userns": "0"}) == []
    assert diagnose({**OPEN, "user.max_user_namespaces": "10"}) == []


def test_several_blockers_are_all_reported() -> None:
    values = {"kernel.unprivileged_userns_clone": "0", "user.max_user_namespaces": " 0 "}
    assert len(diagnose(values)) == 2


def test_every_knob_diagnosed_is_one_read_from_proc() -> None:
    blocked = {name: "0" if "apparmor" not in name else "1" for name in SYSCTLS}
    assert len(diagnose(blocked)) == len(SYSCTLS)
    assert all(str(path).startswith("/proc/sys/") for path in SYSCTLS.values())
