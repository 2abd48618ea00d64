"""Docker for the container tests and bench/bench_containers.py: start dockerd, build, compose.

Facts this follows (issue 12, measured on Debian 12): Debian's docker.io 20.10 has no systemd
unit running here, so dockerd is started in the background and stopped by pid; no registry is
reachable, so ``debian:12`` comes from scripts/docker-base (pull, else debootstrap + import);
pip cannot reach the index inside an image build, so scripts/wheelhouse builds the wheels on the
host. Every command has a timeout: a stuck Docker fails a test, it never hangs the suite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("client", "pcscd", "card", "test")  #: Dockerfile targets = compose services' images
TAG = os.environ.get("VCARD_TAG", "dev")


class DockerUnavailable(Exception):
    """Docker is not installed (``missing``) or cannot start here."""

    def __init__(self, reason: str, *, missing: bool) -> None:
        super().__init__(reason)
        self.missing = missing


def run(
    args: Sequence[str], *, timeout: float = 120, check: bool = True, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout; on failure the exception message holds its output."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@dataclass
class Docker:
    cli: str
    started_pid: int | None = None  #: the dockerd we started (stopped by this pid), or None
    log: Path | None = None

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.cli, *args], timeout=timeout, check=check)

    def answers(self) -> bool:
        return run([self.cli, "info", "--format", "{{.ServerVersion}}"], timeout=20, check=False).returncode == 0

    def server_version(self) -> str:
        return self("info", "--format", "{{.ServerVersion}}", timeout=20).stdout.strip()


def find_docker() -> Docker:
    cli = shutil.which("docker")
    if cli is None:
        raise DockerUnavailable(
            "docker is not installed (CI: scripts/setup installs docker.io docker-compose debootstrap)", missing=True
        )
    return Docker(cli)


def start_dockerd(docker: Docker, workdir: Path, *, timeout: float = 60) -> Docker:
    """Use a running dockerd, or start one in the background (``docker.started_pid``)."""
    if docker.answers():
        return docker
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if dockerd is None:
        raise DockerUnavailable("dockerd is not installed (apt-get install docker.io)", missing=True)
    if os.geteuid() != 0:
        raise DockerUnavailable("dockerd is not running and only root can start it here", missing=False)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "dockerd.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([dockerd], stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    docker.started_pid, docker.log = proc.pid, log
    deadline = time.monotonic() + timeout
    while not docker.answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_dockerd(docker)
            tail = log.read_text(errors="replace")[-1500:]
            raise DockerUnavailable(f"dockerd does not start here:\n{tail}", missing=False)
        time.sleep(0.2)
    return docker


def stop_dockerd(docker: Docker, *, timeout: float = 30) -> None:
    """Stop the dockerd we started, by its pid (it stops its containers and its containerd)."""
    pid, docker.started_pid = docker.started_pid, None
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@dataclass
class BuildReport:
    """Seconds per step of one image build (bench_containers prints it; tests log it)."""

    steps: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = time.monotonic() - t0

    @property
    def total(self) -> float:
        return sum(self.steps.values())


def build_images(docker: Docker, *, env: dict[str, str] | None = None, timeout: float = 900) -> BuildReport:
    """debian:12 (scripts/docker-base), the wheels (scripts/wheelhouse), then every target."""
    report = BuildReport()
    full_env = {**os.environ, "DOCKER": docker.cli, **(env or {})}
    with report.step("base image"):
        run([str(REPO / "scripts/docker-base")], timeout=timeout, env=full_env)
    with report.step("wheelhouse"):
        run([str(REPO / "scripts/wheelhouse")], timeout=timeout, env=full_env)
    for target in TARGETS:
        with report.step(f"image {target}"):
            run(
                [docker.cli, "build", "-q", "--target", target, "-t", f"vcard/{target}:{TAG}", str(REPO)],
                timeout=timeout,
                env=full_env,
            )
    # Each code change leaves the previous images untagged: drop those (never a tagged image or a
    # layer the current ones use, so the build cache stays), or a CI machine's disk fills up.
    with report.step("prune"):
        run([docker.cli, "image", "prune", "-f"], timeout=timeout)
    return report


def compose_commands(docker: Docker) -> dict[str, list[str]]:
    """The Compose implementations installed: Debian's docker-compose 1.29 and/or `docker compose`."""
    found: dict[str, list[str]] = {}
    v1 = shutil.which("docker-compose")
    if v1 is not None and run([v1, "version"], timeout=30, check=False).returncode == 0:
        found["docker-compose"] = [v1]
    if run([docker.cli, "compose", "version"], timeout=30, check=False).returncode == 0:
        found["docker compose"] = [docker.cli, "compose"]
    return found


@dataclass
class Compose:
    """One compose project (its own containers and volumes) of docker-compose.yml."""

    command: list[str]
    project: str

    def __call__(
        self, *args: str, timeout: float = 180, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run(
            [*self.command, "-f", str(REPO / "docker-compose.yml"), "-p", self.project, *args],
            timeout=timeout,
            check=check,
            env={**os.environ, **(env or {})},
        )

    def down(self, *, volumes: bool = True) -> None:
        self("--profile", "farm", "--profile", "test", "down", "--remove-orphans", *(["-v"] if volumes else []))

    def client(self, *command: str, env: dict[str, str] | None = None) -> str:
        """Run ``command`` in a new client container (pcsc-tools only); its output."""
        flags = [f"-e{k}={v}" for k, v in (env or {}).items()]
        return self("run", "--rm", "-T", *flags, "client", *command, timeout=60).stdout


def reader_states(pcsc_scan_output: str) -> dict[str, str]:
    """``pcsc_scan -c`` output -> {reader name: "Card inserted" / "Card removed" ...}."""
    states: dict[str, str] = {}
    reader = None
    for line in pcsc_scan_output.splitlines():
        text = line.strip()
        if text.startswith("Reader ") and ": " in text:
            reader = text.split(": ", 1)[1]
        elif text.startswith("Card state:") and reader is not None:
            states[reader] = text.split(":", 1)[1].strip().rstrip(",").strip()
    return states


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds (a bound, never an assertion on speed)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
