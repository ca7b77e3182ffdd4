"""The course's exercise branches ej1..ej8: each one commit on top of main.

    python3 -m tools.exercise_branches [--base REV] [--force]
    python3 -m tools.exercise_branches compose FILE N --exercise ejN

The first form makes local branches ej1..ej8 so that the course's black-box tests
run against this repository as against a student's fork. Each commit adds the
skeleton's paths, made from the base commit's own files at branch time:
server/Dockerfile and client/Dockerfile (docker/*.Dockerfile), server/config.ini
and client/config.yaml (the packages' config files), a generar-compose.sh that
writes the exercise's Compose file, validar-echo-server.sh reading
server/config.ini, and docker-compose-dev.yaml for one agency.

The second form is what each branch's generar-compose.sh runs: main's Compose
document (tools/compose_generator.py) with the course's config paths mounted,
TLS off (the course's harness brings no credentials) and the exercise's client
mode: ej1-ej4 echo, ej5 one bet from NOMBRE..NUMERO, ej6-ej8 the agency files.

Guarantees: the commits are built with a temporary index and git plumbing, so
the working tree, the index and HEAD stay as they were; existing ejN branches
are replaced only with --force, and never the checked-out one; nothing is pushed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tools import compose_generator

EXERCISES = tuple(f"ej{k}" for k in range(1, 9))
ECHO_EXERCISES = ("ej1", "ej2", "ej3", "ej4")
SINGLE_BET_EXERCISE = "ej5"
#: The one bet each ej5 agency sends; DOCUMENTO gets the agency id added, so that
#: every agency's bet is its own.
SINGLE_BET = {"NOMBRE": "Santiago Lionel", "APELLIDO": "Lorca", "NACIMIENTO": "1999-03-17", "NUMERO": "7574"}
DOCUMENTO_BASE = 30904465
#: Agencies in the branch's committed docker-compose-dev.yaml (the course's tests regenerate it).
COMMITTED_AGENCIES = 1

SERVER_CONFIG = "server/config.ini"
CLIENT_CONFIG = "client/config.yaml"
#: Skeleton path -> the base commit's file it is made from.
COPIED = {
    "server/Dockerfile": "docker/server.Dockerfile",
    "client/Dockerfile": "docker/client.Dockerfile",
    SERVER_CONFIG: "lottery_gevent/config.ini",
    CLIENT_CONFIG: "client_gevent/config.yaml",
}
ECHO_CHECK = "validar-echo-server.sh"
ECHO_CHECK_CONFIG = ("CONFIG=lottery_gevent/config.ini\n", f"CONFIG={SERVER_CONFIG}\n")
COMPOSE_FILE = "docker-compose-dev.yaml"
GENERATOR = "generar-compose.sh"
MOUNTS = {
    compose_generator.SERVER_CONFIG_MOUNT: compose_generator.SERVER_CONFIG_MOUNT.replace(
        "./lottery_gevent/config.ini", f"./{SERVER_CONFIG}"
    ),
    compose_generator.CLIENT_CONFIG_MOUNT: compose_generator.CLIENT_CONFIG_MOUNT.replace(
        "./client_gevent/config.yaml", f"./{CLIENT_CONFIG}"
    ),
}
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "exercise-branches",
    "GIT_AUTHOR_EMAIL": "exercise-branches@localhost",
    "GIT_COMMITTER_NAME": "exercise-branches",
    "GIT_COMMITTER_EMAIL": "exercise-branches@localhost",
}

GENERATOR_SCRIPT = """#!/bin/sh
# {exercise}: writes the Compose file for this exercise (made by tools/exercise_branches.py).
#
#   bash generar-compose.sh FILE N
#
# The document is main's (tools/compose_generator.py) with server/config.ini and
# client/config.yaml mounted, TLS off and the client mode of {exercise}. It runs with
# the host's python3 when it has PyYAML, else inside client:latest (built if missing).
# Environment: PYTHON (default python3), DOCKER (default docker).
set -eu
ROOT=$(cd "$(dirname "$0")" && pwd)
PYTHON=${{PYTHON:-python3}}
DOCKER=${{DOCKER:-docker}}
[ $# -eq 2 ] || {{ echo "usage: bash generar-compose.sh FILE N" >&2; exit 2; }}
FILE=$1
N=$2
echo "Nombre del archivo de salida: $FILE"
echo "Cantidad de clientes: $N"
TMP=$(mktemp "$(dirname "$FILE")/.generar-compose.XXXXXX")
trap 'rm -f "$TMP"' EXIT
if "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
    (cd "$ROOT" && "$PYTHON" -m tools.exercise_branches compose - "$N" --exercise {exercise}) >"$TMP"
else
    "$DOCKER" image inspect client:latest >/dev/null 2>&1 ||
        "$DOCKER" build -q -f "$ROOT/client/Dockerfile" -t client:latest "$ROOT" >&2
    "$DOCKER" run --rm --network none -v "$ROOT:/src:ro" -w /src -e PYTHONPATH=/src --entrypoint python3 \\
        client:latest -m tools.exercise_branches compose - "$N" --exercise {exercise} >"$TMP"
fi
chmod 644 "$TMP"
mv -f "$TMP" "$FILE"
"""


class BranchError(Exception):
    """The branches cannot be made as asked (the message says why)."""


def exercise_compose(exercise: str, agencies: int) -> dict[str, Any]:
    """The Compose document of `exercise` with `agencies` clients.

    Raises:
        ValueError: unknown exercise, or `agencies` out of the generator's range.
    """
    if exercise not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise!r}; use one of {', '.join(EXERCISES)}")
    mode = "echo" if exercise in ECHO_EXERCISES else "lottery"
    document = compose_generator.build_compose(agencies, mode)
    document.pop("secrets", None)
    for name, service in document["services"].items():
        service.pop("secrets", None)
        service["volumes"] = [MOUNTS.get(volume, volume) for volume in service["volumes"]]
        environment = [item for item in service["environment"] if "_TLS_" not in item]
        if name == "server" and mode == "echo":
            environment = ["SERVER_AGENCIES=0" if item.startswith("SERVER_AGENCIES=") else item for item in environment]
        if name != "server" and exercise == SINGLE_BET_EXERCISE:
            agency = int(name.removeprefix("client"))
            bet = dict(SINGLE_BET, DOCUMENTO=str(DOCUMENTO_BASE + agency))
            environment += [f"{key}={value}" for key, value in bet.items()]
        service["environment"] = environment
    return document


def render(exercise: str, agencies: int) -> str:
    text = yaml.safe_dump(exercise_compose(exercise, agencies), sort_keys=False)
    return f"# Generated by generar-compose.sh ({agencies} agencies, {exercise}); regenerate it, don't edit it.\n{text}"


def _git(repo: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo, input=stdin, capture_output=True, env={**os.environ, **(env or {})}, check=False
    )
    if result.returncode != 0:
        raise BranchError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode().strip()


def _branch_files(repo: Path, base: str, exercise: str) -> dict[str, tuple[str, bytes]]:
    """Path -> (mode, content) of what the exercise's commit adds or replaces."""

    def show(path: str) -> bytes:
        result = subprocess.run(["git", "show", f"{base}:{path}"], cwd=repo, capture_output=True, check=False)
        if result.returncode != 0:
            raise BranchError(f"{base} has no {path}, which the exercise branches are made from")
        return result.stdout

    files = {target: ("100644", show(source)) for target, source in COPIED.items()}
    echo_check = show(ECHO_CHECK).decode()
    old, new = ECHO_CHECK_CONFIG
    if echo_check.count(old) != 1:
        raise BranchError(f"{ECHO_CHECK} at {base} has no single line {old.strip()!r} to point at {SERVER_CONFIG}")
    files[ECHO_CHECK] = ("100755", echo_check.replace(old, new).encode())
    files[GENERATOR] = ("100755", GENERATOR_SCRIPT.format(exercise=exercise).encode())
    files[COMPOSE_FILE] = ("100644", render(exercise, COMMITTED_AGENCIES).encode())
    return files


def _identity(repo: Path) -> dict[str, str]:
    """The commit identity's environment: git's own when configured, else a fixed one."""
    try:
        _git(repo, "var", "GIT_COMMITTER_IDENT")
        _git(repo, "var", "GIT_AUTHOR_IDENT")
    except BranchError:
        return dict(FALLBACK_IDENTITY)
    return {}


def make_commit(repo: Path, base: str, exercise: str) -> str:
    """The exercise's commit on top of `base`, built in a temporary index; returns its id."""
    with tempfile.TemporaryDirectory(prefix="exercise-branches-") as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(repo, "read-tree", base, env=index)
        for path, (mode, content) in _branch_files(repo, base, exercise).items():
            blob = _git(repo, "hash-object", "-w", "--stdin", stdin=content)
            _git(repo, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=index)
        tree = _git(repo, "write-tree", env=index)
    message = f"{exercise}: the course's skeleton paths and Compose file for this exercise (tools/exercise_branches.py)"
    return _git(repo, "commit-tree", tree, "-p", base, "-m", message, env=_identity(repo))


def default_base(repo: Path) -> str:
    """main when the repository has that branch, else the checked-out commit."""
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", "refs/heads/main")
    except BranchError:
        return "HEAD"
    return "main"


def make_branches(repo: Path, base: str, force: bool = False) -> dict[str, str]:
    """Make (or with `force` replace) ej1..ej8 on top of `base`; returns branch -> commit.

    Raises:
        BranchError: a branch exists and `force` is false (then nothing changes), the
            checked-out branch is one of them, or git fails.
    """
    base_commit = _git(repo, "rev-parse", "--verify", f"{base}^{{commit}}")
    existing = {}
    for exercise in EXERCISES:
        try:
            existing[exercise] = _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{exercise}")
        except BranchError:
            continue
    if existing and not force:
        raise BranchError(f"branches {', '.join(existing)} exist; --force replaces them")
    try:
        current = _git(repo, "symbolic-ref", "--quiet", "--short", "HEAD")
    except BranchError:
        current = ""
    if current in EXERCISES:
        raise BranchError(f"{current} is checked out; switch to another branch first")
    # Every commit first, then the refs: a failure while building leaves no branch half made.
    made = {exercise: make_commit(repo, base_commit, exercise) for exercise in EXERCISES}
    zero = "0" * len(base_commit)
    for exercise, commit in made.items():
        # The old value makes each update atomic: it fails if the branch moved meanwhile.
        _git(repo, "update-ref", f"refs/heads/{exercise}", commit, existing.get(exercise, zero))
    return made


def _compose_main(argv: list[str]) -> int:
    parser = compose_generator.generator_arguments(
        "python3 -m tools.exercise_branches compose", "The Compose file of one exercise.", "compose"
    )
    parser.add_argument("--exercise", required=True, choices=EXERCISES)
    args = parser.parse_args(argv)
    if args.mode != compose_generator.DEFAULT_MODE:
        parser.error("--mode follows from --exercise")
    return compose_generator.generate(parser, args.file, lambda: render(args.exercise, args.clients))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compose"]:
        return _compose_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python3 -m tools.exercise_branches", description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the commit to build on (default: main, else HEAD)")
    parser.add_argument("--force", action="store_true", help="replace existing ej1..ej8 branches")
    args = parser.parse_args(argv)
    try:
        repo = Path(_git(Path.cwd(), "rev-parse", "--show-toplevel"))
        made = make_branches(repo, args.base or default_base(repo), args.force)
    except BranchError as exc:
        print(f"exercise-branches: {exc}", file=sys.stderr)
        return 1
    for exercise, commit in made.items():
        print(f"{exercise} {commit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
