"""generar-compose.sh with a Docker engine: Compose accepts its output, and without
PyYAML on the host it runs the generator inside the client image.

The tests of the generator that need no engine are in tests/tools/test_compose_generator.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docker.compose import docker
from tests.support.scripts import COMMITTED_COMPOSE, generate, python_without_yaml, run_generator

pytestmark = pytest.mark.docker


def test_without_pyyaml_runs_the_generator_in_the_client_image(tmp_path: Path, images: dict[str, str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    python = python_without_yaml(tmp_path)

    done = run_generator(out, "out.yaml", "5", env={"PYTHON": str(python)})

    assert done.returncode == 0, done.stderr
    assert (out / "out.yaml").read_text(encoding="utf-8") == COMMITTED_COMPOSE.read_text(encoding="utf-8")


@pytest.mark.parametrize(("n", "mode"), [(0, "lottery"), (5, "lottery"), (3, "echo")])
def test_docker_compose_accepts_the_output(tmp_path: Path, n: int, mode: str) -> None:
    generate(tmp_path, n, "--mode", mode)

    docker("compose", "-f", str(tmp_path / "out.yaml"), "config", "-q")
