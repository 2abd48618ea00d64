"""docker-compose.yml for real: images built from the tree, a card a client container sees.

What the README promises a newcomer: ``up`` gives a card that a *separate* client container sees
with pcsc_scan; ``vcard remove`` run in the card container is seen there; the card's state
survives ``down && up``; the farm gives N independent stacks each reachable by its socket name;
the test profile runs the end-to-end tests inside a container.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dockerctl import REPO, TAG, Compose, Docker, reader_states, wait_until

pytestmark = pytest.mark.e2e

READER0 = "Virtual PCD 00 00"
READER1 = "Virtual PCD 00 01"
#: SELECT PIV, then GET SERIAL (vendor extension F8: random at card creation, persisted)
SERIAL_SCRIPT = "00 A4 04 00 09 A0 00 00 03 08 00 00 10 00\n00 F8 00 00\n"
#: "comm:uid" of every process in a container, except this one
PS = (
    "import os, pathlib\n"
    "for p in pathlib.Path('/proc').glob('[0-9]*'):\n"
    "    if p.name != str(os.getpid()):\n"
    "        uid = next(l.split()[1] for l in (p / 'status').read_text().splitlines() if l.startswith('Uid:'))\n"
    "        print(f\"{(p / 'comm').read_text().strip()}:{uid}\")\n"
)
WAIT = 60.0  #: bound for a state change to show (a ceiling against hangs, not a timing check)


def _scan(compose: Compose, env: dict[str, str] | None = None) -> dict[str, str]:
    return reader_states(compose.client("pcsc_scan", "-c", "-t", "1", env=env))


def _wait_reader(
    compose: Compose, state: str, env: dict[str, str] | None = None, readers: tuple[str, ...] = (READER0,)
) -> dict[str, str]:
    seen: dict[str, str] = {}

    def check() -> bool:
        nonlocal seen
        seen = _scan(compose, env)
        return all(seen.get(reader) == state for reader in readers)

    assert wait_until(check, WAIT), f"a client container never saw {readers}: {state}; last scan: {seen}"
    return seen


def _serial(compose: Compose, env: dict[str, str] | None = None, reader: str = READER0) -> str:
    """The card's serial, read by scriptor in a client container."""
    out = compose.client("sh", "-c", f"printf '{SERIAL_SCRIPT}' | scriptor -r '{reader}'", env=env)
    answers = [" ".join(a.split()) for a in re.findall(r"^< ([0-9A-F \n]+?) : ", out, re.M)]  # may wrap
    assert len(answers) == 2 and answers[1].endswith("90 00"), out
    return answers[1][: -len(" 90 00")]


def test_up_remove_insert_and_state_across_down_up(compose: Compose) -> None:
    compose("up", "-d")
    _wait_reader(compose, "Card inserted")
    serial = _serial(compose)

    # the card container and pcscd share one network namespace with nothing but lo
    ifaces = compose("exec", "-T", "card", "python", "-c", "import socket; print(socket.if_nameindex())").stdout
    assert "'lo'" in ifaces and ifaces.count("(") == 1, ifaces
    # every service runs as uid 10001 (vcard), not root
    for service in ("pcscd", "card"):
        assert compose("exec", "-T", service, "id", "-u").stdout.strip() == "10001"
    status = compose("exec", "-T", "card", "vcard", "status").stdout
    assert "started outside vcard" in status and "card present" in status, status

    # pulled from the CLI inside the card container: a client container sees it go and come back
    compose("exec", "-T", "card", "vcard", "remove", "--wait")
    _wait_reader(compose, "Card removed")
    compose("exec", "-T", "card", "vcard", "insert", "--wait")
    _wait_reader(compose, "Card inserted")

    # down && up: same card (its serial is random at creation and lives in the card-state volume)
    compose("down")
    compose("up", "-d")
    _wait_reader(compose, "Card inserted")
    assert _serial(compose) == serial
    # ... and the check can fail: without the volume, a new card has a new serial
    compose("down", "-v")
    compose("up", "-d")
    _wait_reader(compose, "Card inserted")
    assert _serial(compose) != serial


def test_client_library_matches_pcscd(docker: Docker, images: object) -> None:
    """pcsc-lite's client/server protocol (4:4 in 1.9.9) must match: one pinned version everywhere."""
    pins, stage_packages = _dockerfile_pins()
    assert pins["PCSCLITE_VERSION"], pins
    for target in ("client", "pcscd", "card", "test"):
        wanted = stage_packages[target]
        out = docker(
            "run", "--rm", "--network", "none", "--entrypoint", "dpkg-query", f"vcard/{target}:{TAG}",
            "-W", "-f", "${Package} ${Version}\\n", *sorted(wanted),
        ).stdout  # fmt: skip
        installed = dict(line.split(" ", 1) for line in out.strip().splitlines())
        assert installed == wanted, f"vcard/{target}: pinned {wanted}, installed {installed}"
        assert installed["libpcsclite1"] == pins["PCSCLITE_VERSION"]
        if "pcscd" in installed:
            assert installed["pcscd"] == installed["libpcsclite1"]


def _dockerfile_pins() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The ARG pins and, per Dockerfile target, {package: version} it installs (with its parents')."""
    text = (REPO / "Dockerfile").read_text()
    pins = dict(re.findall(r"^ARG ([A-Z0-9_]+)=(\S+)$", text, re.M))
    stages: dict[str, dict[str, str]] = {}
    parent: dict[str, str] = {}
    for chunk in re.split(r"^FROM ", text, flags=re.M)[1:]:
        head = re.match(r"(\S+) AS (\S+)", chunk)
        assert head is not None, chunk[:80]
        base, name = head.groups()
        parent[name] = base
        own = {pkg: pins[var] for pkg, var in re.findall(r'([a-z0-9][a-z0-9.+-]*)="\$\{([A-Z0-9_]+)\}"', chunk)}
        stages[name] = {**stages.get(base, {}), **own}
    return pins, stages


def test_farm_scale_gives_independent_stacks(compose_v1: Compose) -> None:
    compose = compose_v1
    compose("--profile", "farm", "up", "-d", "--scale", "card-stack=2", "card-stack")
    serials = set()
    for n in (1, 2):  # each replica: a card in each of vpcd's two slots, 4 cards in all
        env = {"PCSCLITE_CSOCK_NAME": f"/farm/card-stack-{n}/pcscd.comm"}
        _wait_reader(compose, "Card inserted", env, readers=(READER0, READER1))
        serials |= {_serial(compose, env, READER0), _serial(compose, env, READER1)}
    assert len(serials) == 4, f"4 cards, but serials {serials}"
    # each replica: its own pcscd and daemon, both uid 10001 (the entrypoint dropped root)
    for index in (1, 2):
        ps = compose("exec", "-T", "--index", str(index), "card-stack", "python", "-c", PS).stdout.split()
        assert {"pcscd:10001", "python:10001"} <= set(ps), ps
        assert not [p for p in ps if p.endswith(":0")], ps
    # pulling one replica's card leaves the other's in
    compose("exec", "-T", "--index", "1", "--user", "vcard", "card-stack", "vcard", "remove", "--wait")
    states = {}
    for n in (1, 2):
        states[n] = _scan(compose, {"PCSCLITE_CSOCK_NAME": f"/farm/card-stack-{n}/pcscd.comm"}).get(READER0, "?")
    assert sorted(states.values()) == ["Card inserted", "Card removed"], states


def test_test_profile_runs_e2e_in_a_container(compose_v1: Compose) -> None:
    """The test service runs the end-to-end tests (here one file; the default command runs all)."""
    out = compose_v1("--profile", "test", "run", "--rm", "-T", "test", "python", "-m", "pytest", "-q",
                     "tests/e2e/test_stack.py", timeout=600).stdout  # fmt: skip
    assert re.search(r"\b\d+ passed\b", out) and "failed" not in out and "error" not in out, out[-3000:]


def test_compose_file_is_read_by_every_installed_compose(compose: Compose) -> None:
    merged = compose("--profile", "farm", "--profile", "test", "config").stdout
    for service in ("pcscd:", "card:", "client:", "card-stack:", "test:"):
        assert re.search(rf"^  {re.escape(service)}", merged, re.M), service
    assert Path(REPO / "docker-compose.yml").read_text().count("network_mode") >= 5
