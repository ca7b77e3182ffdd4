"""Compose start-to-finish on the course data: ``python3 -m bench.compose_start [--runs N]``.

One run: a fresh Compose project (the file generar-compose.sh would write for 5
agencies, lottery mode) in a temporary directory holding the course's data, then
``docker compose up -d`` and the wait for every client to exit. Figures are plain
data (`run(runs) -> dict`); ``make bench`` puts them on the benchmark page.
"""

# Strategy: time what a user waits for, by the engine's clock where it can. The
# start is the host's clock just before `docker compose up -d`; the end is the
# latest client `State.FinishedAt` (the engine runs on this host, so both clocks
# are the same clock). The run's wall time from `up` to `docker wait` returning
# is reported too, and the server's own start (`State.StartedAt`) splits the
# figure into "until the server runs" and "after". Every run is checked: each
# client exits 0 with its course winners and no log line says `result: fail`.
# Nothing sleeps: `docker wait` blocks until the clients stop.
#
# Each run is followed by the engine's floor, measured the same way: the same
# project with every service's image replaced by busybox doing nothing (the
# server sleeps, each client exits at once), the network, mounts and secrets
# kept. What the contest adds to it is ours; the floor is the engine's, on this
# machine at that moment (it shares the two cores, and moves with them).
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tests.docker.compose import build_images
from tests.support.processes import REPO_ROOT, parse_action
from tools.compose_generator import render
from tools.credentials import CONTAINER_UID, ensure_credentials

#: The course data: winners per agency (../shared/data/README.md).
DATASET_WINNERS = {1: 2, 2: 3, 3: 3, 4: 2, 5: 0}
DATASET_ZIPS = (REPO_ROOT / ".data" / "dataset.zip", REPO_ROOT.parent / "shared" / "data" / "dataset.zip")
DEFAULT_RUNS = 5
#: Bounds for one docker command and for one whole contest (seconds).
DOCKER_TIMEOUT_S = 120.0
CONTEST_TIMEOUT_S = 300.0
#: What the engine's floor runs instead of our images (the Docker sandbox provides it).
FLOOR_IMAGE = "busybox:latest"


def _docker(*args: str, timeout: float = DOCKER_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def _stamp(text: str) -> float:
    """The engine's RFC 3339 time (nanoseconds, maybe cut) as a Unix time."""
    date, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{date}.{(fraction + '000000')[:6]}+00:00").timestamp()


def _project_dir(root: Path, archive: Path) -> Path:
    """A project directory: the compose file, both config files and the course data."""
    for source in ("lottery_gevent/config.ini", "client_gevent/config.yaml"):
        target = root / source
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / source, target)
        target.chmod(0o644)
    data = root / ".data"
    data.mkdir(mode=0o755)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(data)
    for path in data.iterdir():
        path.chmod(0o644)
    data.chmod(0o755)
    (root / "docker-compose.yaml").write_text(render(len(DATASET_WINNERS)), encoding="utf-8")
    # The Compose file mounts the contest's credentials as secrets (TLS on, as in `make docker-compose-up`).
    ensure_credentials(root / ".secrets", len(DATASET_WINNERS), uid=CONTAINER_UID, durable=False)
    return root


def _check(container: str, agency: int | None) -> list[str]:
    """Problems with one finished container: its exit code, fail lines, its winners."""
    state = json.loads(_docker("inspect", "-f", "{{json .State}}", container).stdout)
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S)
    lines = (logs.stdout + logs.stderr).splitlines()
    problems = [f"{container}: {line}" for line in lines if "result: fail" in line]
    if agency is None:
        return problems
    if state["ExitCode"] != 0:
        problems.append(f"{container} exited {state['ExitCode']}")
    answers = [f for f in map(parse_action, lines) if f and f["action"] == "consulta_ganadores"]
    got = [int(f["cant_ganadores"]) for f in answers if f["result"] == "success"]
    if got != [DATASET_WINNERS[agency]]:
        problems.append(f"{container} reported winners {got}, expected [{DATASET_WINNERS[agency]}]")
    return problems


def floor_project(compose_text: str) -> str:
    """The same Compose project with services that do nothing (see the header)."""
    project = yaml.safe_load(compose_text)
    for name, service in project["services"].items():
        service["image"] = FLOOR_IMAGE
        service["entrypoint"] = ["sleep", str(int(CONTEST_TIMEOUT_S))] if name == "server" else ["true"]
        service.pop("healthcheck", None)
    text: str = yaml.safe_dump(project, sort_keys=False)
    return text


def floor_run(compose_file: Path, project: str) -> float:
    """`up -d` of the do-nothing project to its last client's exit, once (seconds)."""
    compose = ["compose", "-p", project, "-f", str(compose_file)]
    clients = [f"client{k}" for k in DATASET_WINNERS]
    try:
        began_wall = time.time()
        _docker(*compose, "up", "-d")
        _docker("wait", *clients, timeout=CONTEST_TIMEOUT_S)
        return (
            max(
                _stamp(json.loads(_docker("inspect", "-f", "{{json .State}}", c).stdout)["FinishedAt"]) for c in clients
            )
            - began_wall
        )
    finally:
        _docker(*compose, "down", "-v", "-t", "0", check=False)


def one_run(directory: Path, project: str) -> dict[str, Any]:
    """`up -d` to the last client exit, once; the project is taken down afterwards."""
    compose = ["compose", "-p", project, "-f", str(directory / "docker-compose.yaml")]
    clients = [f"client{k}" for k in DATASET_WINNERS]
    try:
        began_wall = time.time()
        began = time.monotonic()
        _docker(*compose, "up", "-d")
        up_returned = time.monotonic() - began
        _docker("wait", *clients, timeout=CONTEST_TIMEOUT_S)
        waited = time.monotonic() - began
        finished = max(
            _stamp(json.loads(_docker("inspect", "-f", "{{json .State}}", c).stdout)["FinishedAt"]) for c in clients
        )
        server_started = _stamp(json.loads(_docker("inspect", "-f", "{{json .State}}", "server").stdout)["StartedAt"])
        _docker("stop", "-t", "5", "server")
        problems = [p for agency, name in [(None, "server"), *enumerate(clients, 1)] for p in _check(name, agency)]
    finally:
        _docker(*compose, "down", "-v", "-t", "1", check=False)
    return {
        "up_to_last_exit_s": finished - began_wall,
        "up_to_wait_returned_s": waited,
        "up_command_s": up_returned,
        "up_to_server_started_s": server_started - began_wall,
        "server_started_to_last_exit_s": finished - server_started,
        "problems": problems,
    }


def run(runs: int = DEFAULT_RUNS) -> dict[str, Any]:
    """Measure `runs` Compose contests on the course data.

    Returns:
        {"runs": [per-run dicts], "median_s", "min_s", "max_s" (up -> last client exit),
        "median_server_start_s", "median_engine_floor_s" (the do-nothing project, right after each run;
        absent if no run measured it: each such run says why in "engine_floor_error"),
        "correct": every run exact and without fail lines}.

    Raises:
        FileNotFoundError: no course dataset.zip.
        RuntimeError: a docker command failed.
    """
    archive = next((path for path in DATASET_ZIPS if path.exists()), None)
    if archive is None:
        raise FileNotFoundError(f"no dataset.zip at {' or '.join(map(str, DATASET_ZIPS))}")
    build_images()
    results = []
    with tempfile.TemporaryDirectory(prefix="compose-start-") as temporary:
        directory = _project_dir(Path(temporary), archive)
        floor_file = directory / "engine-floor.yaml"
        floor_file.write_text(floor_project((directory / "docker-compose.yaml").read_text(encoding="utf-8")))
        # No pull can happen here: without the image there is no floor, and the contest figures still count.
        floor_ready = _docker("image", "inspect", FLOOR_IMAGE, check=False).returncode == 0
        for number in range(runs):
            result = one_run(directory, f"bench{os.getpid()}n{number}")
            if not floor_ready:
                result["engine_floor_error"] = f"no {FLOOR_IMAGE} image on this engine"
            else:
                try:
                    result["engine_floor_s"] = floor_run(floor_file, f"bench{os.getpid()}f{number}")
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    result["engine_floor_error"] = f"{type(exc).__name__}: {exc}"
            results.append(result)
    totals = [result["up_to_last_exit_s"] for result in results]
    floors = [result["engine_floor_s"] for result in results if "engine_floor_s" in result]
    return {
        "runs": results,
        "median_s": statistics.median(totals),
        "min_s": min(totals),
        "max_s": max(totals),
        "median_server_start_s": statistics.median(result["up_to_server_started_s"] for result in results),
        **({"median_engine_floor_s": statistics.median(floors)} if floors else {}),
        "correct": all(not result["problems"] for result in results),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.compose_start", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    args = parser.parse_args(argv)
    figures = run(args.runs)
    json.dump(figures, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if figures["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
