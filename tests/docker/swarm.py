# Strategy: a single-node swarm on the test engine, made for the tests and undone
# after them, leaving the engine as it was found: `docker swarm init` only if the
# engine is in no swarm, `leave --force` only then, and docker_gwbridge (which
# init creates) removed only if it was not there before.
#
# A stack is deployed from a file generar-compose.sh --swarm wrote in a project
# directory (tests.docker.compose.ComposeProject holds its config copies and
# data). Swarm creates task containers by itself; the tests learn their ids from
# `docker events` (a follower started before the deploy, read line by line with
# a timeout), never by polling `docker ps`. Removing a stack: `docker stack rm`,
# then `docker rm -f` of every container it had (Swarm removes them
# asynchronously; this makes it synchronous), then the stack's volumes.
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.docker.compose import DockerError, docker
from tests.support import processes
from tests.support.scripts import GENERATOR_SCRIPT
from tools.stack_generator import SERVER_PORT

__all__ = ["DATA_VOLUME", "SERVER_PORT", "Stack", "single_node_swarm", "write_stack"]

GWBRIDGE = "docker_gwbridge"
NODE_LABEL = "lottery.role=server"
STACK = "lottery"
#: The stack file's named volume, as Swarm names it (STACK_volume).
DATA_VOLUME = f"{STACK}_server_data"
EVENT_FORMAT = '{{.Action}} {{index .Actor.Attributes "com.docker.swarm.service.name"}} {{.ID}}'


@contextmanager
def single_node_swarm() -> Iterator[str]:
    """A single-node swarm (this engine as manager, labelled to hold the server); yields the node id.

    Raises:
        DockerError: the engine is already in a swarm (it is not ours to change), or init failed.
    """
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if state != "inactive":
        raise DockerError(f"the engine's swarm state is {state!r}; the swarm tests need an engine in no swarm")
    had_gwbridge = docker("network", "inspect", GWBRIDGE, check=False).returncode == 0
    try:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        node = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
        docker("node", "update", "--label-add", NODE_LABEL, node)
        yield node
    finally:
        docker("swarm", "leave", "--force", check=False)
        if not had_gwbridge:
            docker("network", "rm", GWBRIDGE, check=False)
    left = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if left != "inactive" or (not had_gwbridge and docker("network", "inspect", GWBRIDGE, check=False).returncode == 0):
        raise DockerError(f"the swarm was not undone: state {left!r}")


def write_stack(directory: Path, agencies: int, *extra: str) -> Path:
    """Run generar-compose.sh FILE N --swarm in `directory`; returns the stack file."""
    done = subprocess.run(
        ["sh", str(GENERATOR_SCRIPT), "stack.yaml", str(agencies), "--swarm", *extra],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"generar-compose.sh --swarm failed:\n{done.stdout}\n{done.stderr}")
    return directory / "stack.yaml"


class Stack:
    """One deployed stack; use as a context manager: leaving it removes the stack and its volume.

    Args:
        stack_file: the file to deploy.
        directory: where followers run.
    """

    def __init__(self, stack_file: Path, directory: Path) -> None:
        self.stack_file = stack_file
        self.directory = directory
        self._followers: list[processes.LoggedProcess] = []
        self.events = self._follow(
            [
                "docker",
                "events",
                "--format",
                EVENT_FORMAT,
                "--filter",
                "type=container",
                "--filter",
                f"label=com.docker.stack.namespace={STACK}",
                "--filter",
                "event=start",
                "--filter",
                "event=die",
            ]  # fmt: skip
        )

    def __enter__(self) -> Stack:
        docker("stack", "deploy", "-c", str(self.stack_file), STACK)
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()

    def _follow(self, argv: list[str]) -> processes.LoggedProcess:
        follower = processes.LoggedProcess(argv, self.directory, {})
        self._followers.append(follower)
        return follower

    def started(self, service: str, count: int = 1, timeout: float = 120.0) -> str:
        """Wait until `count` containers of `service` (e.g. "server") have started; the last one's id."""
        line = self.events.wait_for_count(rf"^start {STACK}_{service} ", count, timeout)
        return line.split()[-1]

    def follow_logs(self, container: str) -> processes.LoggedProcess:
        """``docker logs -f`` of a task container (killed when the stack is removed)."""
        return self._follow(["docker", "logs", "-f", container])

    def containers(self) -> list[str]:
        listed = docker("ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.stack.namespace={STACK}")
        return listed.stdout.split()

    def remove(self) -> None:
        """Remove the stack, its containers and its volume; raises if any is left."""
        before = self.containers()
        docker("stack", "rm", STACK, check=False)
        for follower in self._followers:
            follower.kill()
        leftovers = sorted(set(before) | set(self.containers()))
        if leftovers:
            docker("rm", "-f", *leftovers, check=False)
        if docker("volume", "inspect", DATA_VOLUME, check=False).returncode == 0:
            docker("volume", "rm", DATA_VOLUME)
        if self.containers():
            raise DockerError(f"stack {STACK} left containers {self.containers()}")
