"""Fixtures for the Docker end-to-end tests: engine detection, images, Compose projects.

Tests marked ``docker`` need a reachable Docker engine with Compose v2. Without
one they are skipped, unless ``REQUIRE_DOCKER=1`` (as in CI), which turns the
missing engine into a failure: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.docker.compose import ECHO_NETWORK, ComposeProject, build_images, docker, unique_project_name

REQUIRE_DOCKER = os.environ.get("REQUIRE_DOCKER") == "1"
#: Container names fixed by the compose file: a running `make docker-compose-up` would clash with them.
FIXED_NAMES = ("server", "client")

#: Wall times measured by the tests, printed in the terminal summary.
MEASURED: dict[str, float] = {}


def _engine_problem() -> str | None:
    """Why the Docker tests cannot run here, or None if they can."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=60
        )
        if info.returncode != 0:
            detail = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
            return f"no Docker engine reachable ({detail})"
        compose = subprocess.run(
            ["docker", "compose", "version", "--short"], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired as exc:
        return f"`{' '.join(map(str, exc.cmd))}` did not answer within {exc.timeout}s"
    if compose.returncode != 0:
        return "the Docker Compose v2 plugin (`docker compose`) is missing"
    return None


def _skip_or_fail(reason: str) -> None:
    if REQUIRE_DOCKER:
        pytest.fail(f"REQUIRE_DOCKER=1, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip (or, with REQUIRE_DOCKER=1, fail) when no Docker engine with Compose v2 is reachable."""
    problem = _engine_problem()
    if problem is not None:
        _skip_or_fail(problem)


@pytest.fixture(autouse=True)
def _docker_tests_need_an_engine(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker") is not None:
        request.getfixturevalue("docker_engine")


@pytest.fixture(scope="session")
def images(docker_engine: None) -> dict[str, str]:
    """Build server:latest and client:latest once per session; returns their image ids."""
    clashing = [
        name
        for name in docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        if name == FIXED_NAMES[0] or (name.startswith(FIXED_NAMES[1]) and name[len(FIXED_NAMES[1]) :].isdigit())
    ]
    if clashing or docker("network", "inspect", ECHO_NETWORK, check=False).returncode == 0:
        pytest.fail(
            f"containers {clashing} or network {ECHO_NETWORK} already exist (a `make docker-compose-up`?); "
            "run `make docker-compose-down` first",
            pytrace=False,
        )
    return build_images()


@pytest.fixture
def compose_project(tmp_path: Path, images: dict[str, str]) -> Iterator[Callable[..., ComposeProject]]:
    """Factory: a new Compose project in tmp_path; every project is taken down after the test.

    Args (of the factory):
        name: the project name; default a unique one. Use "tp0" only for what needs tp0_testing_net.
    """
    made: list[ComposeProject] = []

    def make(name: str | None = None) -> ComposeProject:
        project = ComposeProject(tmp_path / f"project{len(made) + 1}", name or unique_project_name())
        made.append(project)
        return project

    yield make
    for project in reversed(made):
        project.down()


def copy_agencies(source: Path, target: Path) -> None:
    """Copy `source`'s agency-K.csv files into a project's data directory, readable by the containers' user."""
    for path in sorted(source.glob("agency-*.csv")):
        shutil.copyfile(path, target / path.name)
        (target / path.name).chmod(0o644)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for what, seconds in MEASURED.items():
        terminalreporter.write_line(f"measured: {what}: {seconds:.1f} s")
