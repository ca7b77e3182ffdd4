"""Compose start to finish on the course data, beside the engine's own floor.

A run: `docker compose up -d` of the 5-agency project generar-compose.sh writes (images built
beforehand, the course data and TLS secrets mounted) to the last client's exit, and the floor: the
same project with every image replaced by busybox doing nothing, network, mounts and secrets kept.
Guarantees: the end is the engine's own FinishedAt stamp (same host clock as the start); nothing
sleeps (`docker wait` blocks); every contest is checked (each client exits 0 with its course
winners, no `result: fail` line); every project is taken down.
"""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import yaml

from bench.data import COURSE_WINNERS, COURSE_ZIP
from bench.runs import Record, alternate, section
from tests.docker.compose import ComposeProject, actions_of, build_images, docker, parse_stamp
from tools.credentials import CONTAINER_UID, ensure_credentials

WINNERS = dict(enumerate(COURSE_WINNERS, start=1))
CLIENTS = [f"client{agency}" for agency in WINNERS]
CONTEST_TIMEOUT_S = 300.0
FLOOR_IMAGE = "busybox:latest"


def floor_project(compose_text: str) -> str:
    """The same Compose project with services that do nothing (the server sleeps, each client exits at once)."""
    project = yaml.safe_load(compose_text)
    for name, service in project["services"].items():
        service["image"] = FLOOR_IMAGE
        service["entrypoint"] = ["sleep", str(int(CONTEST_TIMEOUT_S))] if name == "server" else ["true"]
        service.pop("healthcheck", None)
    text: str = yaml.safe_dump(project, sort_keys=False)
    return text


def _problems(project: ComposeProject, codes: dict[str, int]) -> list[str]:
    """What is wrong with a finished contest: exit codes, fail lines, each agency's winners."""
    project.stop("server", grace_s=5)
    lines = [(name, line.text) for name in ["server", *CLIENTS] for line in project.logs(name)]
    problems = [f"{name}: {text}" for name, text in lines if "result: fail" in text]
    for agency, name in enumerate(CLIENTS, start=1):
        answers = actions_of(project.logs(name), "consulta_ganadores")
        got = [int(fields["cant_ganadores"]) for _, fields in answers if fields["result"] == "success"]
        if codes[name] != 0 or got != [WINNERS[agency]]:
            problems.append(f"{name} exited {codes[name]} with winners {got}, expected [{WINNERS[agency]}]")
    return problems


def _up(project: ComposeProject, checked: bool) -> Record:
    """`up -d` to the last client's exit, once; the project is taken down afterwards."""
    try:
        began = time.time()
        project.up()
        codes = project.wait_exit(CLIENTS, CONTEST_TIMEOUT_S)
        finished = max(parse_stamp(str(project.state(client)["FinishedAt"])).timestamp() for client in CLIENTS)
        server_started = parse_stamp(str(project.state("server")["StartedAt"])).timestamp()
        problems = _problems(project, codes) if checked else []
    finally:
        project.down()
    figures = {"up_to_last_exit_s": finished - began, "up_to_server_started_s": server_started - began}
    return figures | {"problems": problems, "ok": not problems}


def run(runs: int, log: Callable[[str], None]) -> Record:
    """`runs` Compose contests and floors: the section of results.json.

    Raises:
        FileNotFoundError: no course dataset.zip.
        DockerError: a docker command failed.
    """
    if not COURSE_ZIP.exists():
        raise FileNotFoundError(f"no course data at {COURSE_ZIP}")
    build_images()
    # No pull here: without the image there is no floor, and the contest's figures still count.
    has_floor = docker("image", "inspect", FLOOR_IMAGE, check=False).returncode == 0
    numbers = iter(range(2 * runs))

    def measure(column: str) -> Record:
        project = ComposeProject(root, f"bench{os.getpid()}n{next(numbers)}")
        if column == "contest":
            return _up(project, checked=True)
        project.compose_file = root / "engine-floor.yaml"
        return _up(project, checked=False) if has_floor else {"ok": True}

    with tempfile.TemporaryDirectory(prefix="compose-start-") as tmp:
        root = Path(tmp)
        ComposeProject(root, "bench").generate(len(WINNERS))
        with zipfile.ZipFile(COURSE_ZIP) as zipped:
            zipped.extractall(root / ".data")
        for path in (root / ".data").iterdir():
            path.chmod(0o644)
        (root / "engine-floor.yaml").write_text(floor_project((root / "docker-compose.yaml").read_text()))
        ensure_credentials(root / ".secrets", len(WINNERS), uid=CONTAINER_UID, durable=False)
        return section("compose", {}, alternate("compose", ["contest", "floor"], runs, measure, log))
