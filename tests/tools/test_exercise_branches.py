"""tools/exercise_branches.py on a scratch repository: the branches, their files and
Compose files, and a repository left as it was. No Docker engine needed."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import REPO_ROOT

EXERCISES = [f"ej{k}" for k in range(1, 9)]
SKELETON = ["server/Dockerfile", "client/Dockerfile", "server/config.ini", "client/config.yaml", "generar-compose.sh"]
#: What the tool reads from the base commit (and the package it runs as).
NEEDED = [
    "tools/__init__.py",
    "tools/compose_generator.py",
    "tools/exercise_branches.py",
    "docker/server.Dockerfile",
    "docker/client.Dockerfile",
    "lottery_gevent/config.ini",
    "client_gevent/config.yaml",
    "validar-echo-server.sh",
    "generar-compose.sh",
]
GIT_TIMEOUT_S = 60.0
IDENTITY = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env, timeout=GIT_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_tool(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.exercise_branches", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose main holds the files the tool needs, with uncommitted work."""
    root = tmp_path / "repo"
    for path in NEEDED:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / path, root / path)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    (root / "lottery_gevent/config.ini").write_text("[DEFAULT]\nSERVER_PORT = 1\n")  # dirty, unstaged
    (root / "client_gevent/config.yaml").write_text("log:\n  level: DEBUG\n")
    git(root, "add", "client_gevent/config.yaml")  # dirty, staged
    (root / "notes.txt").write_text("untracked\n")
    return root


def checkout(repo: Path, branch: str, into: Path) -> Path:
    """The branch's files in `into`, without touching the repository's own checkout."""
    archive = subprocess.run(["git", "archive", branch], cwd=repo, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="tar")
    return into


def generated_compose(tree: Path, agencies: int) -> dict[str, Any]:
    """Run the branch's generar-compose.sh as the course does and read the YAML it writes."""
    env = {**os.environ, "PYTHON": sys.executable, "DOCKER": "false"}
    result = subprocess.run(
        ["bash", "generar-compose.sh", "docker-compose-dev.yaml", str(agencies)],
        cwd=tree,
        capture_output=True,
        text=True,
        env=env,
        timeout=GIT_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = yaml.safe_load((tree / "docker-compose-dev.yaml").read_text())
    return document


def test_branches_are_one_commit_on_main_with_the_skeleton_paths(repo: Path) -> None:
    result = run_tool(repo)
    assert result.returncode == 0, result.stderr
    main = git(repo, "rev-parse", "main").strip()
    for exercise in EXERCISES:
        assert git(repo, "rev-parse", f"{exercise}^").strip() == main
        files = git(repo, "ls-tree", "-r", "--name-only", exercise).split()
        assert set(SKELETON) <= set(files)
        # Made from main's files, not from the dirty working tree.
        assert git(repo, "show", f"{exercise}:server/config.ini") == git(repo, "show", "main:lottery_gevent/config.ini")
        assert git(repo, "show", f"{exercise}:server/Dockerfile") == git(repo, "show", "main:docker/server.Dockerfile")
        assert "CONFIG=server/config.ini\n" in git(repo, "show", f"{exercise}:validar-echo-server.sh")


def test_working_tree_index_and_head_are_left_as_they_were(repo: Path) -> None:
    status, head = git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD")
    staged = git(repo, "diff", "--cached")
    assert run_tool(repo).returncode == 0
    assert git(repo, "status", "--porcelain") == status
    assert git(repo, "diff", "--cached") == staged
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"


def test_existing_branches_are_refused_without_force(repo: Path) -> None:
    assert run_tool(repo).returncode == 0
    before = {exercise: git(repo, "rev-parse", exercise) for exercise in EXERCISES}
    refused = run_tool(repo)
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert {exercise: git(repo, "rev-parse", exercise) for exercise in EXERCISES} == before
    # main moves on (plumbing, so the staged file stays staged); --force rebuilds on it.
    newer = git(repo, "commit-tree", "main^{tree}", "-p", "main", "-m", "next").strip()
    git(repo, "update-ref", "refs/heads/main", newer)
    forced = run_tool(repo, "--force")
    assert forced.returncode == 0, forced.stderr
    for exercise in EXERCISES:
        assert git(repo, "rev-parse", f"{exercise}^").strip() == newer


def test_the_checked_out_exercise_branch_is_never_replaced(repo: Path) -> None:
    assert run_tool(repo).returncode == 0
    git(repo, "stash", "-q", "--include-untracked")
    git(repo, "switch", "-q", "ej3")
    before = git(repo, "rev-parse", "ej3")
    refused = run_tool(repo, "--force")
    assert refused.returncode == 1
    assert "ej3 is checked out" in refused.stderr
    assert git(repo, "rev-parse", "ej3") == before


def _service_checks(document: dict[str, Any], agencies: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    services = document["services"]
    assert set(services) == {"server", *(f"client{k}" for k in range(1, agencies + 1))}
    assert "secrets" not in document
    server = services["server"]
    assert "./server/config.ini:/opt/lottery/lottery_gevent/config.ini:ro" in server["volumes"]
    clients = [services[f"client{k}"] for k in range(1, agencies + 1)]
    for service in [server, *clients]:
        assert "secrets" not in service
        assert not [item for item in service["environment"] if "_TLS_" in item]
    for client in clients:
        assert "./client/config.yaml:/opt/lottery/client_gevent/config.yaml:ro" in client["volumes"]
    return server, clients


@pytest.mark.parametrize("exercise", EXERCISES)
def test_each_branch_generates_the_compose_file_of_its_exercise(repo: Path, tmp_path: Path, exercise: str) -> None:
    assert run_tool(repo).returncode == 0
    tree = checkout(repo, exercise, tmp_path / exercise)
    agencies = 3
    server, clients = _service_checks(generated_compose(tree, agencies), agencies)
    echo = exercise in ("ej1", "ej2", "ej3", "ej4")
    assert ("SERVER_AGENCIES=0" if echo else f"SERVER_AGENCIES={agencies}") in server["environment"]
    for k, client in enumerate(clients, start=1):
        environment = dict(item.split("=", 1) for item in client["environment"])
        assert environment["CLI_ID"] == str(k)
        assert environment.get("CLI_MODE", "lottery") == ("echo" if echo else "lottery")
        bet_keys = {"NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO"}
        if exercise == "ej5":
            assert bet_keys <= set(environment)
        else:
            assert not bet_keys & set(environment)
        if not echo:
            assert environment["CLI_BETS_FILE"] == f"/data/agency-{k}.csv"
            assert "./.data:/data:ro" in client["volumes"]


def test_a_server_alone_for_the_echo_check(repo: Path, tmp_path: Path) -> None:
    assert run_tool(repo).returncode == 0
    tree = checkout(repo, "ej3", tmp_path / "ej3")
    server, clients = _service_checks(generated_compose(tree, 0), 0)
    assert clients == []
    assert "SERVER_AGENCIES=0" in server["environment"]


def test_branches_are_made_without_a_configured_git_identity(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    bare = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env = {**bare, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "PYTHONPATH": str(repo)}
    result = subprocess.run(
        [sys.executable, "-m", "tools.exercise_branches"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert git(repo, "rev-parse", "ej8^").strip() == git(repo, "rev-parse", "main").strip()


def test_a_base_without_the_skeleton_sources_is_refused_and_nothing_is_made(repo: Path) -> None:
    git(repo, "stash", "-q", "--include-untracked")
    git(repo, "rm", "-q", "docker/client.Dockerfile")
    git(repo, "commit", "-q", "-m", "no client image")
    refused = run_tool(repo)
    assert refused.returncode == 1
    assert "docker/client.Dockerfile" in refused.stderr
    assert git(repo, "branch", "--list", "ej*") == ""
