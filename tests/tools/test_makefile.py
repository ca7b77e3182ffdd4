"""The Makefile's contract, checked by what each target does: its exit code, the files
it makes, and the commands it runs.

No Docker engine needed. The targets run in a scratch copy of the Makefile, with
stand-ins for `python` and `docker` on PATH that record their arguments (and, for
docker, whether the agency files exist yet), so the order of the steps shows too.
`make lint` runs for real, over the whole repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT
from tests.support.scripts import COMMITTED_COMPOSE, MAKEFILE

#: Bound on one make run; `lint` type-checks the whole repository, the rest is quick.
MAKE_TIMEOUT_S = 600.0
#: Every target `make help` must list.
TARGETS = (
    "help",
    "python-env",
    "deps",
    "run",
    "test",
    "bench",
    "lint",
    "data",
    "docker-ready",
    "docker-image",
    "secrets",
    "docker-compose-up",
    "docker-compose-down",
    "docker-compose-logs",
    "validate-echo",
)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(directory: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if key not in ("REQUIRE_DOCKER", "MAKEFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(directory), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=MAKE_TIMEOUT_S,
    )


def calls(recorder: Path) -> list[str]:
    """The commands a stand-in recorded, one line each (none if it never ran)."""
    log = recorder.parent / "calls"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory with the Makefile, the tools (and the shared/ they import), the committed compose file,
    and stand-in config files."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copyfile(MAKEFILE, root / "Makefile")
    shutil.copyfile(COMMITTED_COMPOSE, root / "docker-compose-dev.yaml")
    for package in ("tools", "shared"):
        shutil.copytree(REPO_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    for config in ("lottery_gevent/config.ini", "client_gevent/config.yaml"):
        (root / config).parent.mkdir()
        (root / config).write_text("\n", encoding="utf-8")
    return root


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """A `python` that records its arguments and REQUIRE_DOCKER, and succeeds."""
    script = tmp_path / "python-bin" / "fake-python"
    script.parent.mkdir()
    script.write_text(
        '#!/bin/sh\necho "python $* REQUIRE_DOCKER=${REQUIRE_DOCKER-unset}" >> "$(dirname "$0")/calls"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


@pytest.fixture
def fake_docker(tmp_path: Path) -> Path:
    """A `docker` (first on PATH) that records each call and whether .data/agency-1.csv existed then.

    `docker info` and `docker version` succeed (an engine answers); `docker image
    inspect` fails (no local base image), so BASE_IMAGE falls back to the public one.
    """
    bin_dir = tmp_path / "docker-bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(
        "#!/bin/sh\n"
        '[ -f .data/agency-1.csv ] && data=yes || data=no\n'
        'echo "docker $* data=$data" >> "$(dirname "$0")/calls"\n'
        'case "$1 $2" in "image inspect") exit 1 ;; "version -f") echo 99.0 ;; esac\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def docker_env(fake_docker: Path) -> dict[str, str]:
    return {"PATH": f"{fake_docker.parent}{os.pathsep}{os.environ['PATH']}"}


def test_help_is_the_default_and_lists_every_target(scratch: Path) -> None:
    done = make(scratch)

    assert done.returncode == 0, done.stderr
    assert done.stdout == make(scratch, "help").stdout
    listed = [line.split()[0] for line in done.stdout.splitlines()[1:]]
    assert sorted(listed) == sorted(TARGETS)


def test_lint_passes_over_the_whole_repository(tmp_path: Path) -> None:
    caches = {"MYPY_CACHE_DIR": str(tmp_path / "mypy"), "RUFF_CACHE_DIR": str(tmp_path / "ruff")}

    done = make(REPO_ROOT, "lint", f"PYTHON={sys.executable}", env=caches)

    assert done.returncode == 0, done.stdout + done.stderr


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
    assert calls(fake_python) == [
        f"python -m pip install -r requirements-dev.txt REQUIRE_DOCKER={expected}",
        f"python -m pytest REQUIRE_DOCKER={expected}",
    ]


def test_bench_runs_the_benchmark_suite(scratch: Path, fake_python: Path) -> None:
    done = make(scratch, "bench", f"PYTHON={fake_python}")

    assert done.returncode == 0, done.stderr
    assert calls(fake_python) == ["python -m bench REQUIRE_DOCKER=unset"]


def test_compose_down_stops_with_one_second_then_removes(scratch: Path, fake_docker: Path) -> None:
    done = make(scratch, "docker-compose-down", env=docker_env(fake_docker))

    assert done.returncode == 0, done.stderr
    assert calls(fake_docker) == [
        "docker compose -f docker-compose-dev.yaml stop -t 1 data=no",
        "docker compose -f docker-compose-dev.yaml down data=no",
    ]


def test_compose_logs_follows_the_chosen_file(scratch: Path, fake_docker: Path) -> None:
    done = make(scratch, "docker-compose-logs", "COMPOSE_FILE=other.yaml", env=docker_env(fake_docker))

    assert done.returncode == 0, done.stderr
    assert calls(fake_docker) == ["docker compose -f other.yaml logs -f data=no"]


def test_compose_up_makes_the_data_then_builds_both_images_then_starts(scratch: Path, fake_docker: Path) -> None:
    args = ("docker-compose-up", f"PYTHON={sys.executable}", "SHARED_DATASET=/nonexistent.zip", "SANDBOX=/nonexistent")

    done = make(scratch, *args, env=docker_env(fake_docker))

    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in (scratch / ".data").glob("agency-*.csv")) == [
        f"agency-{k}.csv" for k in range(1, 6)
    ]
    steps = [call for call in calls(fake_docker) if not call.startswith(("docker info", "docker image inspect"))]
    assert steps == [
        "docker version -f {{.Server.Version}} data=no",  # docker-ready, before the data
        "docker build -f docker/server.Dockerfile --build-arg BASE_IMAGE=python:3.11-slim -t server:latest . data=yes",
        "docker build -f docker/client.Dockerfile --build-arg BASE_IMAGE=python:3.11-slim -t client:latest . data=yes",
        "docker compose -f docker-compose-dev.yaml up -d --build data=yes",
    ]
    # As root (CI), the host's python3 made the credentials the compose file mounts.
    assert sorted(path.name for path in (scratch / ".secrets").glob("agency-*.key")) == [
        f"agency-{k}.key" for k in range(1, 6)
    ]


def test_secrets_makes_what_the_compose_file_mounts_and_keeps_what_exists(scratch: Path) -> None:
    first = make(scratch, "secrets", f"PYTHON={sys.executable}")
    keys = {path.name: path.read_bytes() for path in (scratch / ".secrets").glob("*.key")}
    again = make(scratch, "secrets", f"PYTHON={sys.executable}")

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert sorted(keys) == sorted(["ca.key", "server.key", *(f"agency-{k}.key" for k in range(1, 6))])
    assert {path.name: path.read_bytes() for path in (scratch / ".secrets").glob("*.key")} == keys
    assert "created" not in again.stdout


def test_secrets_needs_a_generated_compose_file(scratch: Path) -> None:
    (scratch / "hand.yaml").write_text("services: {}\n", encoding="utf-8")

    done = make(scratch, "secrets", "COMPOSE_FILE=hand.yaml", f"PYTHON={sys.executable}")

    assert done.returncode != 0
    assert "header" in done.stderr
    assert not (scratch / ".secrets").exists()


def test_docker_ready_fails_without_an_engine_or_a_sandbox(scratch: Path, tmp_path: Path) -> None:
    no_engine = tmp_path / "no-engine" / "docker"
    no_engine.parent.mkdir()
    no_engine.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    no_engine.chmod(0o755)

    done = make(scratch, "docker-ready", "SANDBOX=/nonexistent", env=docker_env(no_engine))

    assert done.returncode != 0
    assert "no Docker engine answers" in done.stderr


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

    def made() -> dict[str, tuple[int, int, int]]:
        files = (scratch / ".data").glob("agency-*.csv")
        return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns, path.stat().st_size) for path in files}

    first = make(scratch, *args)
    after_first = made()
    again = make(scratch, *args)

    assert first.returncode == 0, first.stderr
    assert sorted(after_first) == ["agency-1.csv", "agency-2.csv"]
    assert all(size > 0 for _, _, size in after_first.values())
    assert again.returncode == 0, again.stderr
    assert made() == after_first  # the second run left the files alone


def test_data_fails_when_the_dataset_has_too_few_agencies(scratch: Path) -> None:
    (scratch / ".data").mkdir()
    write_zip(scratch / ".data" / "dataset.zip", 5)

    done = make(scratch, "data", f"PYTHON={sys.executable}", "AGENCIES=6")

    assert done.returncode != 0
    assert "agency-6.csv" in done.stderr
