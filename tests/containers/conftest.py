"""Fixtures of the container tests: a Docker daemon, the vcard images, a compose project.

Docker is an install step like pcscd: with ``CI=true`` a missing docker/docker-compose fails
(scripts/setup installs them under CI); where Docker is installed but cannot start (not root,
no kernel support) the tests skip. ``VCARD_CONTAINER_TESTS=0`` turns them off explicitly.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Iterator

import pytest
from dockerctl import (
    BuildReport,
    Compose,
    Docker,
    DockerUnavailable,
    build_images,
    compose_commands,
    find_docker,
    start_dockerd,
    stop_dockerd,
)

from emulator.pytest_plugin import fail_or_skip


@pytest.fixture(scope="session")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    if os.environ.get("VCARD_CONTAINER_TESTS") == "0":
        pytest.skip("container tests turned off (VCARD_CONTAINER_TESTS=0)")
    try:
        d = start_dockerd(find_docker(), tmp_path_factory.mktemp("dockerd"))
    except DockerUnavailable as exc:
        if exc.missing:
            fail_or_skip(str(exc))
        pytest.skip(f"Docker cannot start here: {exc}")
    try:
        yield d
    finally:
        stop_dockerd(d)


@pytest.fixture(scope="session")
def images(docker: Docker) -> BuildReport:
    """Every image built from the working tree (cached layers: seconds when nothing changed)."""
    report = build_images(docker)
    print("\nimage build: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.steps.items()), file=sys.stderr)
    return report


def _compose(docker: Docker, name: str) -> list[str]:
    found = compose_commands(docker)
    if name not in found:
        if name == "docker-compose":
            fail_or_skip("docker-compose is not installed (apt-get install docker-compose)")
        pytest.skip(f"{name} is not installed here (Debian 12 ships docker-compose 1.29 only)")
    return found[name]


@pytest.fixture(params=["docker-compose", "docker compose"])
def compose(request: pytest.FixtureRequest, docker: Docker, images: BuildReport) -> Iterator[Compose]:
    """A compose project of its own (containers, volumes), removed with its volumes at the end."""
    command = _compose(docker, request.param)
    project = f"vcardt{os.getpid()}{zlib.crc32(request.node.name.encode()) & 0xFFFF:x}"
    c = Compose(command, project)
    try:
        yield c
    finally:
        c.down()


@pytest.fixture
def compose_v1(docker: Docker, images: BuildReport) -> Iterator[Compose]:
    """Debian's docker-compose only (for tests whose subject is not the Compose implementation)."""
    c = Compose(_compose(docker, "docker-compose"), f"vcardt{os.getpid()}v1")
    try:
        yield c
    finally:
        c.down()
