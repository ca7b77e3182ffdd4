"""Fixtures for tests that run the real server and clients on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import ServerProcess


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: start a server in tmp_path/server (its working directory) and wait until it listens.

    Every server started is stopped at teardown (SIGTERM, then a kill if needed).
    """
    started: list[ServerProcess] = []
    workdir = tmp_path / "server"
    workdir.mkdir()

    def start(agencies: int = 3, env: dict[str, str] | None = None, port: int = 0) -> ServerProcess:
        server = ServerProcess(workdir, agencies=agencies, env=env, port=port)
        started.append(server)
        return server.wait_listening()

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()
        server.kill()
