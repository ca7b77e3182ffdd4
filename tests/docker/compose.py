# Strategy: drive one Compose project per test the way a user would from the
# shell. Each project lives in a throwaway directory holding its own copies of
# lottery_gevent/config.ini, client_gevent/config.yaml and .data/, plus a
# compose file made by generar-compose.sh (or the committed one): the compose
# file's bind mounts are relative, so they resolve inside that directory and a
# test can change config and data without touching the repository.
#
# Nothing here sleeps. Container exits are awaited with `docker wait` (it blocks
# until the containers stop) under a subprocess timeout; log lines with
# `docker logs -f` followed through tests.support.processes' wait_for_line. Exit codes are
# read with `docker inspect`, never inferred from log lines.
from __future__ import annotations

import configparser
import itertools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from tests.support import processes
from tests.support.processes import REPO_ROOT
from tests.support.scripts import COMMITTED_COMPOSE, GENERATOR_SCRIPT

#: The network generar-compose.sh declares; with project tp0 its full name is tp0_testing_net.
ECHO_NETWORK = "tp0_testing_net"

#: Bounds for docker CLI calls (seconds). Generous: the CI machine has 2 cores.
DOCKER_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10

_project_numbers = itertools.count(1)


class DockerError(AssertionError):
    """A docker command failed; carries its output for the test report."""


def docker(*args: str, timeout: float = DOCKER_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` and capture its output.

    Raises:
        DockerError: the command exited non-zero (when `check`).
        subprocess.TimeoutExpired: it ran longer than `timeout`.
    """
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout
    )
    if check and done.returncode != 0:
        raise DockerError(f"docker {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


#: The sandbox's base image (docker-sandbox.sh): Python 3.11 with requirements.txt preinstalled.
LOCAL_BASE_IMAGE = "local/python-base:3.11"
PUBLIC_BASE_IMAGE = "python:3.11-slim"
IMAGES = {"server:latest": "docker/server.Dockerfile", "client:latest": "docker/client.Dockerfile"}
BUILD_TIMEOUT_S = 900.0


def base_image() -> str:
    """BASE_IMAGE from the environment, else the sandbox's base if present, else the public one."""
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    if docker("image", "inspect", LOCAL_BASE_IMAGE, check=False).returncode == 0:
        return LOCAL_BASE_IMAGE
    return PUBLIC_BASE_IMAGE


def build_images() -> dict[str, str]:
    """Build server:latest and client:latest from BASE_IMAGE (cached layers make it quick); their image ids."""
    base = base_image()
    ids = {}
    for tag, dockerfile in IMAGES.items():
        docker(
            "build",
            "-q",
            "-f",
            dockerfile,
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            tag,
            str(REPO_ROOT),
            timeout=BUILD_TIMEOUT_S,
        )
        ids[tag] = docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
    return ids


def unique_project_name() -> str:
    """A Compose project name no earlier test of this session used."""
    return f"e2e{os.getpid()}n{next(_project_numbers)}"


@dataclass(frozen=True)
class LogLine:
    """One container log line with the engine's receive time (nanosecond precision)."""

    stamp: datetime
    text: str

    @property
    def fields(self) -> dict[str, str] | None:
        return processes.parse_action(self.text)


def parse_stamp(text: str) -> datetime:
    """Parse the engine's RFC 3339 timestamps (trailing zeros of the fraction may be cut)."""
    # RFC 3339 with nanoseconds ("2026-11-27T11:40:00.123456789Z"): keep microseconds.
    date, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{date}.{(fraction + '000000')[:6]}+00:00")


def actions_of(lines: list[LogLine], name: str | None = None) -> list[tuple[LogLine, dict[str, str]]]:
    """The action lines (with their parsed fields), optionally only action `name`."""
    found = []
    for line in lines:
        fields = line.fields
        if fields is not None and (name is None or fields["action"] == name):
            found.append((line, fields))
    return found


class ComposeProject:
    """A Compose project in its own directory.

    Args:
        directory: the project directory (created; holds the compose file and mounts).
        name: the Compose project name (`-p`).
    """

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.compose_file = directory / "docker-compose.yaml"
        self.server_config = directory / "lottery_gevent" / "config.ini"
        self.client_config = directory / "client_gevent" / "config.yaml"
        self.data_dir = directory / ".data"
        self.extra_containers: list[str] = []
        self.extra_networks: list[str] = []
        self._followers: list[processes.LoggedProcess] = []
        for source, target in (
            (REPO_ROOT / "lottery_gevent" / "config.ini", self.server_config),
            (REPO_ROOT / "client_gevent" / "config.yaml", self.client_config),
        ):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            target.chmod(0o644)  # the images run as a non-root user
        self.data_dir.mkdir(exist_ok=True)
        self.data_dir.chmod(0o755)

    # --- the project's files ----------------------------------------------

    def generate(self, agencies: int, mode: str = "lottery") -> subprocess.CompletedProcess[str]:
        """Write the compose file with generar-compose.sh (run from the project directory)."""
        done = subprocess.run(
            ["sh", str(GENERATOR_SCRIPT), self.compose_file.name, str(agencies), "--mode", mode],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=DOCKER_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise AssertionError(f"generar-compose.sh failed:\n{done.stdout}\n{done.stderr}")
        return done

    def use_committed_compose_file(self) -> None:
        """Copy the committed compose file, with the credentials it mounts (as `make secrets` makes them)."""
        shutil.copyfile(COMMITTED_COMPOSE, self.compose_file)
        credentials = [sys.executable, "-m", "tools.credentials", str(self.directory / ".secrets"), "--agencies", "5"]
        subprocess.run(credentials, cwd=REPO_ROOT, check=True, capture_output=True, timeout=DOCKER_TIMEOUT_S)

    def set_server_config(self, **keys: str) -> None:
        """Set [DEFAULT] keys of the project's config.ini (others kept)."""
        parser = configparser.ConfigParser()
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the keys' case
        parser.read(self.server_config, encoding="utf-8")
        for key, value in keys.items():
            parser["DEFAULT"][key] = value
        with open(self.server_config, "w", encoding="utf-8") as file:
            parser.write(file)

    def set_client_config(self, **paths: object) -> None:
        """Set keys of the project's config.yaml, written as dotted paths with '__' (log__level='DEBUG')."""
        tree = yaml.safe_load(self.client_config.read_text(encoding="utf-8")) or {}
        for dotted, value in paths.items():
            *parents, leaf = dotted.split("__")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        self.client_config.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")

    def services(self) -> list[str]:
        tree = yaml.safe_load(self.compose_file.read_text(encoding="utf-8"))
        return list(tree["services"])

    def clients(self) -> list[str]:
        return [service for service in self.services() if service != "server"]

    # --- running it ---------------------------------------------------------

    def compose(
        self, *args: str, timeout: float = DOCKER_TIMEOUT_S, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return docker("compose", "-p", self.name, "-f", str(self.compose_file), *args, timeout=timeout, check=check)

    def up(self, *extra: str) -> None:
        """``docker compose up -d``: returns once every container started (clients retry until the server listens)."""
        self.compose("up", "-d", *extra)

    def wait_exit(self, containers: list[str], timeout: float) -> dict[str, int]:
        """Block until every container has stopped; returns exit codes read with docker inspect."""
        if containers:
            docker("wait", *containers, timeout=timeout)
        return {name: self.exit_code(name) for name in containers}

    def state(self, container: str) -> dict[str, object]:
        state: dict[str, object] = json.loads(docker("inspect", "-f", "{{json .State}}", container).stdout)
        return state

    def exit_code(self, container: str) -> int:
        state = self.state(container)
        if state["Status"] != "exited":
            raise AssertionError(f"{container} is {state['Status']}, not exited")
        return int(str(state["ExitCode"]))

    def stop(self, *containers: str, grace_s: int = STOP_TIMEOUT_S) -> None:
        """``docker stop -t GRACE`` (SIGTERM, then SIGKILL after GRACE seconds)."""
        docker("stop", "-t", str(grace_s), *containers, timeout=grace_s + DOCKER_TIMEOUT_S)

    def containers(self) -> dict[str, dict[str, object]]:
        """Every container of the project (running or not), by service, from ``compose ps -a``."""
        output = self.compose("ps", "-a", "--format", "json").stdout.strip()
        if not output:
            return {}
        rows = json.loads(output) if output.startswith("[") else [json.loads(line) for line in output.splitlines()]
        return {str(row["Service"]): row for row in rows}

    def logs(self, container: str) -> list[LogLine]:
        """The container's whole log so far, each line with the engine's timestamp."""
        # The services log to stderr, which `docker logs` writes to its own stderr: read both,
        # and put them back in the engine's order.
        done = subprocess.run(
            ["docker", "logs", "--timestamps", container],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=DOCKER_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise DockerError(f"docker logs {container} exited {done.returncode}:\n{done.stdout}")
        lines = []
        for raw in done.stdout.splitlines():
            stamp, _, text = raw.partition(" ")
            lines.append(LogLine(parse_stamp(stamp), text))
        return sorted(lines, key=lambda line: line.stamp)

    def follow(self, container: str, since: float | None = None) -> processes.LoggedProcess:
        """Follow the container's log (``docker logs -f``) to wait for lines; killed on down().

        Args:
            container: the container's name.
            since: a Unix time (time.time()); only lines logged after it. A restarted
                container keeps the log of its earlier runs.
        """
        window = ["--since", f"{since:.6f}"] if since is not None else []
        follower = processes.LoggedProcess(["docker", "logs", "-f", *window, container], self.directory, {})
        self._followers.append(follower)
        return follower

    def down(self) -> None:
        """Remove everything the project (and the test, through extra_*) created."""
        for follower in self._followers:
            follower.kill()
        self._followers.clear()
        if self.extra_containers:
            docker("rm", "-f", *self.extra_containers, check=False)
        if self.compose_file.exists():
            self.compose("down", "-v", "--remove-orphans", "-t", "1", check=False)
        for network in self.extra_networks:
            if docker("network", "inspect", network, check=False).returncode == 0:
                docker("network", "rm", network)
        left = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={self.name}").stdout.split()
        networks = docker("network", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.name}")
        if left or networks.stdout.split():
            raise AssertionError(f"project {self.name} left containers {left} / networks {networks.stdout.split()}")
