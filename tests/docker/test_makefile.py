"""The Makefile's contract: the skeleton's Docker targets, `make test`, and `make data`.

No Docker engine needed: recipes are inspected with `make -n`, and `test` and `data`
run in a scratch copy of the Makefile with stand-ins for python and the dataset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.docker.compose import REPO_ROOT

MAKEFILE = REPO_ROOT / "Makefile"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(directory: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if key not in ("REQUIRE_DOCKER", "MAKEFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(directory), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def recipe(*args: str) -> list[str]:
    done = make(REPO_ROOT, "-n", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_compose_down_stops_with_one_second_then_removes() -> None:
    assert recipe("docker-compose-down") == [
        "docker compose -f docker-compose-dev.yaml stop -t 1",
        "docker compose -f docker-compose-dev.yaml down",
    ]


def test_compose_logs_follows() -> None:
    assert recipe("docker-compose-logs") == ["docker compose -f docker-compose-dev.yaml logs -f"]


def test_compose_up_builds_the_images_and_has_data_first() -> None:
    lines = recipe("docker-compose-up", "BASE_IMAGE=local/base")
    up = lines.index("docker compose -f docker-compose-dev.yaml up -d --build")
    builds = [i for i, line in enumerate(lines) if line.startswith("docker build")]
    for index, service in zip(builds, ("server", "client"), strict=True):
        assert lines[index] == (
            f"docker build -f docker/{service}.Dockerfile --build-arg BASE_IMAGE=local/base -t {service}:latest ."
        )
    data = next(i for i, line in enumerate(lines) if "dataset.zip" in line)
    assert data < builds[0] < builds[1] < up == len(lines) - 1


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory with the Makefile, the generator, and stand-in config files."""
    shutil.copyfile(MAKEFILE, tmp_path / "Makefile")
    shutil.copytree(REPO_ROOT / "tools", tmp_path / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    for config in ("lottery_gevent/config.ini", "client_gevent/config.yaml"):
        (tmp_path / config).parent.mkdir()
        (tmp_path / config).write_text("\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """A `python` that records its arguments and REQUIRE_DOCKER, and succeeds."""
    script = tmp_path / "fake-python"
    script.write_text(
        '#!/bin/sh\necho "python $* REQUIRE_DOCKER=${REQUIRE_DOCKER-unset}" >> "$(dirname "$0")/calls"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [((), {}, "unset"), (("REQUIRE_DOCKER=1",), {}, "1"), ((), {"REQUIRE_DOCKER": "1"}, "1")],
    ids=["unset", "command line", "environment"],
)
def test_make_test_runs_deps_then_every_test_passing_require_docker_through(
    scratch: Path, fake_python: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    done = make(scratch, "test", f"PYTHON={fake_python}", "SANDBOX=/nonexistent", *args, env=env)

    assert done.returncode == 0, done.stderr
    calls = (fake_python.parent / "calls").read_text(encoding="utf-8").splitlines()
    assert calls == [
        f"python -m pip install -r requirements-dev.txt REQUIRE_DOCKER={expected}",
        f"python -m pytest REQUIRE_DOCKER={expected}",
    ]


def write_zip(path: Path, agencies: int) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for k in range(1, agencies + 1):
            archive.writestr(f"agency-{k}.csv", f"Ana,Lorca,{k},1990-01-01,7574\r\n")


def test_data_unzips_a_dataset_zip_in_data(scratch: Path) -> None:
    (scratch / ".data").mkdir()
    write_zip(scratch / ".data" / "dataset.zip", 5)

    done = make(scratch, "data", f"PYTHON={sys.executable}", "SHARED_DATASET=/nonexistent.zip")

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (scratch / ".data").glob("agency-*.csv")) == [f"agency-{k}.csv" for k in range(1, 6)]
    assert (scratch / ".data" / "agency-1.csv").stat().st_mode & 0o004


def test_data_copies_the_shared_dataset(scratch: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared.zip"
    write_zip(shared, 5)

    done = make(scratch, "data", f"PYTHON={sys.executable}", f"SHARED_DATASET={shared}")

    assert done.returncode == 0, done.stderr
    assert (scratch / ".data" / "dataset.zip").read_bytes() == shared.read_bytes()
    assert (scratch / ".data" / "agency-5.csv").exists()


def test_data_generates_synthetic_files_once(scratch: Path) -> None:
    args = ("data", f"PYTHON={sys.executable}", "SHARED_DATASET=/nonexistent.zip", "AGENCIES=2")

    first = make(scratch, *args)
    again = make(scratch, *args)

    assert first.returncode == 0, first.stderr
    assert "winners" in first.stdout  # the generator prints each agency's known winners
    assert (scratch / ".data" / "agency-2.csv").exists()
    assert again.returncode == 0, again.stderr
    assert "already" in again.stdout and "winners" not in again.stdout


def test_data_fails_when_the_dataset_has_too_few_agencies(scratch: Path) -> None:
    (scratch / ".data").mkdir()
    write_zip(scratch / ".data" / "dataset.zip", 5)

    done = make(scratch, "data", f"PYTHON={sys.executable}", "AGENCIES=6")

    assert done.returncode != 0
    assert "agency-6.csv" in done.stderr


def test_compose_up_makes_the_tls_credentials_before_up() -> None:
    lines = recipe("docker-compose-up", "BASE_IMAGE=local/base")
    credentials = next(i for i, line in enumerate(lines) if "tools.credentials" in line)
    assert credentials < lines.index("docker compose -f docker-compose-dev.yaml up -d --build")


def test_secrets_makes_the_credentials_the_compose_file_mounts(scratch: Path) -> None:
    shutil.copyfile(REPO_ROOT / "docker-compose-dev.yaml", scratch / "docker-compose-dev.yaml")
    if os.geteuid() != 0:
        pytest.skip("as non-root, `make secrets` runs the tool in the client image")  # CI runs as root

    done = make(scratch, "secrets", f"PYTHON={sys.executable}", env={"PYTHONPATH": str(REPO_ROOT)})

    assert done.returncode == 0, done.stderr
    made = sorted(path.name for path in (scratch / ".secrets").iterdir())
    agencies = [f"agency-{k}.{ext}" for k in range(1, 6) for ext in ("key", "pem")]
    assert made == sorted([*agencies, "ca.key", "ca.pem", "server.key", "server.pem"])
