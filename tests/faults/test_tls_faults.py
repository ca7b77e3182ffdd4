"""Faults under TLS: SIGKILLs of the server, and connections reset at random byte
offsets (which cut TLS records, and the frames inside them, at arbitrary points).
Every case ends exactly as a clean run does."""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import (
    CLIENT_RETRY,
    after_batches,
    check_exact_result,
    dataset_paths,
    free_port,
)
from tests.proxy import FaultProxy
from tests.support.processes import ClientProcess, ServerProcess
from tests.support.tls import Contest

SEED = 10_2026
WAIT_S = 60.0
#: Connections (in accept order) that the proxy resets, and the byte range of the cut.
RESET_CONNECTIONS = 20
RESET_RANGE = (1, 400_000)


@pytest.fixture(scope="module")
def contest(tmp_path_factory: pytest.TempPathFactory) -> Contest:
    return Contest.make(tmp_path_factory.mktemp("contest"))


def _tls_clients(workdir: Path, contest: Contest, paths: dict[int, Path], port: int) -> dict[int, ClientProcess]:
    return {
        agency: ClientProcess(workdir, agency, port, path, env={**CLIENT_RETRY, **contest.client_env(agency)})
        for agency, path in paths.items()
    }


def test_tls_connections_reset_mid_record_resume_exactly(contest: Contest, real_dataset: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    cuts = [rng.randint(*RESET_RANGE) for _ in range(RESET_CONNECTIONS)]
    workdir = tmp_path / "server"
    workdir.mkdir()
    server = ServerProcess(workdir, agencies=5, env=contest.server_env()).wait_listening()
    paths = dataset_paths(real_dataset)
    try:
        with FaultProxy(server.port, reset_after=lambda n: cuts[n] if n < len(cuts) else None) as proxy:
            clients = _tls_clients(tmp_path, contest, paths, proxy.port)
            check_exact_result(server, clients, paths)
            resets = proxy.resets
    finally:
        server.kill()
    print(f"{resets} TLS connections reset")
    assert resets >= 10, f"only {resets} resets happened"


def test_server_sigkill_under_tls_loses_and_repeats_nothing(
    contest: Contest, real_dataset: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    points: list[Callable[[str], bool] | str] = [after_batches(n) for n in sorted(rng.sample(range(20, 140), 2))]
    points += [r"action: agency_done \| result: success", r"action: winners_sent \| result: success"]
    workdir = tmp_path / "server"
    workdir.mkdir()
    port = free_port()
    paths = dataset_paths(real_dataset)

    def start() -> ServerProcess:
        return ServerProcess(workdir, agencies=5, port=port, env=contest.server_env()).wait_listening()

    server = start()
    clients = _tls_clients(tmp_path, contest, paths, port)
    kills = 0
    try:
        for point in points:
            if server.wait_for_line_or_ended(point, list(clients.values()), WAIT_S) is None:
                break  # every client finished first
            server.signal(signal.SIGKILL)
            assert server.wait(10) == -signal.SIGKILL
            kills += 1
            server = start()
        check_exact_result(server, clients, paths)
    finally:
        server.kill()
    assert kills >= 3, kills
