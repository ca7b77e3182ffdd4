# Strategy: the repository's user-facing scripts, by path, and one way to run
# the compose generator, shared by the tests that need no Docker (tests/tools/)
# and the ones that do (tests/docker/).
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import REPO_ROOT

GENERATOR_SCRIPT = REPO_ROOT / "generar-compose.sh"
VALIDATOR_SCRIPT = REPO_ROOT / "validar-echo-server.sh"
COMMITTED_COMPOSE = REPO_ROOT / "docker-compose-dev.yaml"
HEALTHCHECK = REPO_ROOT / "docker" / "healthcheck.py"
MAKEFILE = REPO_ROOT / "Makefile"

#: What generar-compose.sh prints first (the course's wording).
GENERATOR_HEADER = "Nombre del archivo de salida: {file}\nCantidad de clientes: {n}\n"
#: Bound on one run of a script (seconds).
SCRIPT_TIMEOUT_S = 120.0


def run_generator(
    directory: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run generar-compose.sh under plain sh, from `directory` (CLIENT_MODE only if `env` sets it)."""
    full_env = {key: value for key, value in os.environ.items() if key != "CLIENT_MODE"}
    return subprocess.run(
        ["sh", str(GENERATOR_SCRIPT), *args],
        cwd=directory,
        env={**full_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
    )


def generate(directory: Path, n: int, *extra: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Generate `directory`/out.yaml for `n` clients; return it parsed (the run must succeed)."""
    done = run_generator(directory, "out.yaml", str(n), *extra, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(GENERATOR_HEADER.format(file="out.yaml", n=n))
    tree: dict[str, Any] = yaml.safe_load((directory / "out.yaml").read_text(encoding="utf-8"))
    return tree


def python_without_yaml(directory: Path) -> Path:
    """Write `directory`/bin/python3: our interpreter without site-packages, so without PyYAML."""
    wrapper = directory / "bin" / "python3"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    check = subprocess.run([str(wrapper), "-c", "import yaml"], capture_output=True, timeout=SCRIPT_TIMEOUT_S)
    assert check.returncode != 0, "python -S still imports yaml; this stand-in cannot fake its absence"
    return wrapper


def python_without_cryptography(directory: Path) -> Path:
    """Write `directory`/bin/python3: our interpreter, except that generar-compose.sh's probe finds no cryptography."""
    wrapper = directory / "bin" / "python3"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(
        f'#!/bin/sh\n[ "$*" = "-c import cryptography" ] && exit 1\nexec "{sys.executable}" "$@"\n', encoding="utf-8"
    )
    wrapper.chmod(0o755)
    return wrapper


def help_text(module: str) -> list[str]:
    """The lines `python -m MODULE --help` prints, run from the repository root; it must exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()
