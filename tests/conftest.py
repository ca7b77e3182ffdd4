"""Shared fixtures: temporary working directories, agency data, and process hygiene."""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest

from tests.support.processes import REPO_ROOT, ServerProcess, kill_all
from tools.generate_agencies import WINNING_NUMBER, Agency, generate

#: Where the course's agency files may be: the project's .data/ (CI, `make data`), then the course's shared folder.
COURSE_ZIPS = (REPO_ROOT / ".data" / "dataset.zip", REPO_ROOT.parent / "shared" / "data" / "dataset.zip")
#: Bets per agency in the course's files; without them the tests run on generated files of this shape.
DATASET_SIZES = {1: 26_936, 2: 25_518, 3: 16_014, 4: 9_238, 5: 991}
#: Winners per agency, in the course's files (../shared/data/README.md) and in the generated ones.
DATASET_WINNERS = {1: 2, 2: 3, 3: 3, 4: 2, 5: 0}
DATASET_BETS = sum(DATASET_SIZES.values())


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


def dataset_shape(directory: Path) -> tuple[dict[int, int], dict[int, int]]:
    """Bets and winning bets per agency, counted in `directory`'s agency-K.csv files (K in DATASET_SIZES)."""
    sizes, winners = {}, {}
    for agency in DATASET_SIZES:
        with open(directory / f"agency-{agency}.csv", newline="", encoding="utf-8") as file:
            numbers = [row[4] for row in csv.reader(file) if row]
        sizes[agency], winners[agency] = len(numbers), numbers.count(str(WINNING_NUMBER))
    return sizes, winners


def write_dataset(target: Path, archive: Path | None) -> None:
    """Unzip the course's `archive` into `target`, or with None generate files of its shape there.

    Raises:
        AssertionError: the files are not of the course's shape (DATASET_SIZES, DATASET_WINNERS).
    """
    if archive is None:
        generate(target, len(DATASET_SIZES), list(DATASET_SIZES.values()), list(DATASET_WINNERS.values()))
    else:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(target)
    shape = dataset_shape(target)
    assert shape == (DATASET_SIZES, DATASET_WINNERS), f"{archive or 'generated files'}: (sizes, winners) {shape}"


@pytest.fixture(scope="session")
def real_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of agency-1.csv … agency-5.csv: the course's if a COURSE_ZIPS file exists, else generated
    ones of the same shape, so no test skips for lack of the zip. Tests expect DATASET_BETS and DATASET_WINNERS."""
    target = tmp_path_factory.mktemp("dataset")
    write_dataset(target, next((path for path in COURSE_ZIPS if path.exists()), None))
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
