"""Shared fixtures: temporary working directories, agency data, and process hygiene."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest

from tests.support.processes import REPO_ROOT, ServerProcess, kill_all
from tools.generate_agencies import Agency, generate

#: The course's real data, beside the project root (absent on some machines).
DATASET_ZIP = REPO_ROOT.parent / "shared" / "data" / "dataset.zip"
#: Winners per agency in the real data (see ../shared/data/README.md).
DATASET_WINNERS = {1: 2, 2: 3, 3: 3, 4: 2, 5: 0}
DATASET_BETS = 78_697


@pytest.fixture(autouse=True)
def fresh_loop_clock() -> None:
    """Bring gevent's cached loop clock up to date before each test.

    The loop reads the clock once per turn. Tests that wait on processes with
    plain blocking calls keep it from turning for seconds; a gevent timeout
    started after them would count from that stale time and could expire at once.
    """
    gevent.get_hub().loop.update_now()


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail a test that leaves a server or client process running."""
    yield
    leaked = kill_all()
    assert not leaked, f"test left processes running: {leaked}"


@pytest.fixture
def make_agencies(tmp_path: Path) -> Callable[..., list[Agency]]:
    """Factory: generate agency files (deterministic, known winners) under tmp_path/data."""

    def make(agencies: int = 3, bets: int = 300, winners: list[int] | None = None, seed: int = 7) -> list[Agency]:
        return generate(tmp_path / "data", agencies, bets, winners, seed)

    return make


@pytest.fixture(scope="session")
def real_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real agency files, unzipped into a temporary directory; skips if the zip is absent."""
    if not DATASET_ZIP.exists():
        pytest.skip(f"{DATASET_ZIP} not present")
    target = tmp_path_factory.mktemp("dataset")
    with zipfile.ZipFile(DATASET_ZIP) as archive:
        archive.extractall(target)
    return target


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: start a server in tmp_path/server (its working directory) and wait until it listens.

    Every server started is stopped at teardown (SIGTERM, then a kill if needed).
    """
    started: list[ServerProcess] = []
    workdir = tmp_path / "server"
    workdir.mkdir()

    def start(
        agencies: int = 3, env: dict[str, str] | None = None, port: int = 0, constants: dict[str, object] | None = None
    ) -> ServerProcess:
        server = ServerProcess(workdir, agencies=agencies, env=env, port=port, constants=constants)
        started.append(server)
        return server.wait_listening()

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()
        server.kill()
