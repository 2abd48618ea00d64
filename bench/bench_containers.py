"""Container benchmarks: image builds (cold and warm), compose up until a client sees the card,
and the card farm at N replicas.

Run: .venv/bin/python -m bench.bench_containers [--cold] [--farm 1,2,4,8]   (as root)

Targets (issue 12): a build from a warm cache under 60 s; ``docker compose up`` until a client
container sees the card under 5 s. Baselines from the same run: the build of the image with
nothing changed (Docker's cache floor), and ``docker run`` of a container that does nothing
(the container start floor). ``--cold`` also rebuilds from nothing: the debian:12 base (made with
debootstrap into a fresh cache directory where no registry answers), every wheel (pyscard
compiled, pip's cache off) and every layer (--no-cache). Measures, never asserts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._harness import Stats, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "containers"))

from dockerctl import (
    REPO,
    TAG,
    Compose,
    Docker,
    build_images,
    compose_commands,
    find_docker,
    reader_states,
    run,
    start_dockerd,
    stop_dockerd,
    wait_until,
)


def _build_rows(docker: Docker, cold: bool) -> list[tuple[str, dict[str, float]]]:
    rows: list[tuple[str, dict[str, float]]] = []
    if cold:
        with tempfile.TemporaryDirectory(prefix="vcard-cold-") as cache:
            run([docker.cli, "rmi", "-f", "debian:12"], check=False)
            env = {"VCARD_CACHE_DIR": cache, "PIP_NO_CACHE_DIR": "1", "VCARD_BASE_PULL": "1"}
            report = _build_no_cache(docker, env)
        rows.append(("cold: debootstrap, wheels, --no-cache", report))
    build_images(docker)  # so the next rows start from a warm cache
    rows.append(("warm, nothing changed (cache floor)", build_images(docker).steps))
    # A code change: another SOURCE_DATE_EPOCH gives the vcard wheel other bytes, as an edit does.
    changed = build_images(docker, env={"SOURCE_DATE_EPOCH": str(int(time.time()))}).steps
    rows.append(("warm, vcard's code changed", changed))
    build_images(docker)  # back to the tree's own wheel
    return rows


def _build_no_cache(docker: Docker, env: dict[str, str]) -> dict[str, float]:
    steps: dict[str, float] = {}
    full_env = {**os.environ, "DOCKER": docker.cli, **env}
    for name, args in (
        ("base image", [str(REPO / "scripts/docker-base")]),
        ("wheelhouse", [str(REPO / "scripts/wheelhouse")]),
    ):
        t0 = time.monotonic()
        run(args, timeout=1800, env=full_env)
        steps[name] = time.monotonic() - t0
    for target in ("client", "pcscd", "card", "test"):
        t0 = time.monotonic()
        run([docker.cli, "build", "-q", "--no-cache", "--target", target, "-t", f"vcard/{target}:{TAG}", str(REPO)],
            timeout=1800, env=full_env)  # fmt: skip
        steps[f"image {target}"] = time.monotonic() - t0
    return steps


def _print_builds(rows: list[tuple[str, dict[str, float]]]) -> None:
    steps = list(rows[0][1])
    head = f"{'build':<40}" + "".join(f"{s.replace('image ', ''):>11}" for s in steps) + f"{'total s':>9}"
    print("\nimage build (seconds per step; the images: client, pcscd, card, test)")
    print(head)
    print("-" * len(head))
    for name, r in rows:
        print(f"{name:<40}" + "".join(f"{r.get(s, 0):>11.1f}" for s in steps) + f"{sum(r.values()):>9.1f}")


def _container_floor(docker: Docker, n: int) -> Stats:
    s = Stats("floor: docker run --rm debian:12 true", [])
    for _ in range(n):
        t0 = time.perf_counter()
        docker("run", "--rm", "--network", "none", "debian:12", "true")
        s.samples.append(time.perf_counter() - t0)
    return s


def _up_until_seen(docker: Docker, compose: Compose, n: int) -> list[Stats]:
    """From `up -d` until the client container's pcsc_scan prints the card (its logs)."""
    seen, up_only = Stats("compose up -d -> client sees the card", []), Stats("compose up -d (returns)", [])
    compose("up", "-d")  # the first card is created here; the rounds measure a card that exists
    compose("down")
    for _ in range(n):
        t0 = time.perf_counter()
        compose("up", "-d")
        up_only.samples.append(time.perf_counter() - t0)
        container = compose("ps", "-q", "client").stdout.strip()

        def inserted(cid: str = container) -> bool:
            logs = docker("logs", cid, timeout=30).stdout
            return reader_states(logs).get("Virtual PCD 00 00") == "Card inserted"

        if not wait_until(inserted, 60, interval=0.05):
            raise RuntimeError("the client never saw the card")
        seen.samples.append(time.perf_counter() - t0)
        compose("down")
    return [up_only, seen]


def _farm(docker: Docker, compose: Compose, sizes: list[int]) -> None:
    print("\ncard farm: compose --profile farm up --scale card-stack=N (2 cards each), until all 2N are seen")
    head = f"{'N':>4} {'up -> all 2N seen, s':>21} {'s per stack':>12} {'MiB per stack':>14} {'idle CPU %':>11}"
    print(head)
    print("-" * len(head))
    for n in sizes:
        t0 = time.perf_counter()
        compose("--profile", "farm", "up", "-d", "--scale", f"card-stack={n}", "card-stack", timeout=600)
        loop = (  # both cards of every stack
            f"for i in $(seq 1 {n}); do until [ $(PCSCLITE_CSOCK_NAME=/farm/card-stack-$i/pcscd.comm "
            "pcsc_scan -c -t 0 2>/dev/null | grep -c 'Card inserted') -ge 2 ]; do sleep 0.05; done; done; "
            "echo all-seen"
        )
        out = compose.client("sh", "-c", loop)
        elapsed = time.perf_counter() - t0
        assert "all-seen" in out
        ids = compose("ps", "-q", "card-stack").stdout.split()
        time.sleep(2)  # let start-up settle: the CPU column is the idle cost (pcscd polls every 400 ms)
        fmt = "{{.MemUsage}};{{.CPUPerc}}"
        stats = [line.split(";") for line in docker("stats", "--no-stream", "--format", fmt, *ids, timeout=120)
                 .stdout.splitlines() if line.strip()]  # fmt: skip
        mib = sum(_mib(m.split("/")[0]) for m, _ in stats) / max(len(stats), 1)
        cpu = sum(float(c.rstrip("%")) for _, c in stats)
        print(f"{n:>4} {elapsed:>21.2f} {elapsed / n:>12.2f} {mib:>14.1f} {cpu:>11.1f}")
        compose("--profile", "farm", "down", "-v", timeout=600)


def _farm_throughput(compose: Compose, sizes: list[int], apdus: int) -> None:
    """Where a farm stops scaling here: every stack busy at once, APDUs per second in all.

    One client container per stack sends ``apdus`` GET SERIAL commands to its card through
    scriptor (one PC/SC connection); the wall time includes starting the N client containers
    (about 0.6 s), which is why the default sends many APDUs.
    """
    print(f"\ncard farm under load: N stacks busy at once, {apdus} APDUs each (scriptor, one connection)")
    head = f"{'N':>4} {'wall s':>8} {'APDU/s in all':>14} {'x N=1':>7}"
    print(head)
    print("-" * len(head))
    script = f"{{ echo '00 A4 04 00 09 A0 00 00 03 08 00 00 10 00'; yes '00 F8 00 00' | head -n {apdus}; }}"
    base = 0.0
    for n in sizes:
        compose("--profile", "farm", "up", "-d", "--scale", f"card-stack={n}", "card-stack", timeout=600)
        for i in range(1, n + 1):  # every card in, before the clock starts
            wait_card = (
                f"until PCSCLITE_CSOCK_NAME=/farm/card-stack-{i}/pcscd.comm pcsc_scan -c -t 0 2>/dev/null "
                "| grep -q 'Card inserted'; do sleep 0.05; done"
            )
            compose.client("sh", "-c", wait_card)
        base_cmd = [*compose.command, "-f", str(REPO / "docker-compose.yml"), "-p", compose.project]
        procs = []
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            cmd = [*base_cmd, "run", "--rm", "-T", "-e", f"PCSCLITE_CSOCK_NAME=/farm/card-stack-{i}/pcscd.comm",
                   "client", "sh", "-c", f"{script} | scriptor -r 'Virtual PCD 00 00' | grep -c '90 00 :'"]  # fmt: skip
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        answered = sum(int((p.communicate(timeout=600)[0] or "0").strip() or 0) for p in procs)
        wall = time.perf_counter() - t0
        rate = answered / wall
        base = base or rate
        print(f"{n:>4} {wall:>8.2f} {rate:>14.0f} {rate / base:>7.2f}")
        compose("--profile", "farm", "down", "-v", timeout=600)


def _mib(text: str) -> float:
    text = text.strip()
    for unit, factor in (("GiB", 1024.0), ("MiB", 1.0), ("KiB", 1 / 1024), ("B", 1 / 1024 / 1024)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also time a build from nothing (debootstrap, wheels)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--farm", default="1,2,4,8", help="farm sizes to time (empty: skip)")
    parser.add_argument("--load", default="1,2,4", help="farm sizes to load with APDUs (empty: skip)")
    parser.add_argument("--apdus", type=int, default=20000, help="APDUs per stack under load")
    parser.add_argument("--skip-build", action="store_true", help="measure compose and the farm only")
    args = parser.parse_args()
    docker = start_dockerd(find_docker(), Path(tempfile.mkdtemp(prefix="vcard-bench-dockerd-")))
    try:
        print(f"dockerd {docker.server_version()}, {os.cpu_count()} CPUs")
        if not args.skip_build:
            _print_builds(_build_rows(docker, args.cold))
        commands = compose_commands(docker)
        command = commands.get("docker compose") or commands["docker-compose"]
        compose = Compose(command, f"vcardbench{os.getpid()}")
        try:
            floor = _container_floor(docker, args.rounds)
            rows = _up_until_seen(docker, compose, args.rounds)
            print(table(f"compose up ({' '.join(command[-2:])}), {args.rounds} rounds", [floor, *rows], baseline=floor))
            sizes = [int(x) for x in args.farm.split(",") if x.strip()]
            if sizes:
                _farm(docker, compose, sizes)
            loads = [int(x) for x in args.load.split(",") if x.strip()]
            if loads:
                _farm_throughput(compose, loads, args.apdus)
        finally:
            compose.down()
    except subprocess.TimeoutExpired as exc:
        print(f"timed out: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        stop_dockerd(docker)


if __name__ == "__main__":
    main()
