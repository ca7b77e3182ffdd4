"""SIGKILL the server again and again during a real upload: nothing acknowledged is lost,
nothing is stored twice, and every agency still gets exactly its winners."""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from pathlib import Path

from client_gevent.bets_source import CsvBets
from shared.protocol import Bets, BetsAck, Done, DoneAck, Hello, Winners, WinnersQuery
from tests.conftest import DATASET_BETS, DATASET_WINNERS
from tests.faults.conftest import (
    after_batches,
    dataset_paths,
    file_bets,
    free_port,
    start_clients,
    stored_bets,
)
from tests.rawclient import RawPeer, resume
from tests.support.processes import ClientProcess, ServerProcess, winners_reported
from tools.generate_agencies import Agency

SEED = 20261127
WAIT_S = 60.0


def _reached(server: ServerProcess, point: Callable[[str], bool] | str, clients: dict[int, ClientProcess]) -> bool:
    """Wait until the server logs `point` (True), or every client has exited (False)."""
    return server.wait_for_line_or_ended(point, list(clients.values()), WAIT_S) is not None


def test_server_sigkill_during_upload_wait_and_answers(real_dataset: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    kill_points: list[tuple[str, Callable[[str], bool] | str]] = [
        (f"after {n} batches", after_batches(n)) for n in sorted(rng.sample(range(20, 140), 3))
    ]
    kill_points += [
        ("after the first agency is done", r"action: agency_done \| result: success"),
        ("at the draw", r"action: sorteo \| result: success"),
        ("after the first answer", r"action: winners_sent \| result: success"),
    ]
    workdir = tmp_path / "server"
    workdir.mkdir()
    port = free_port()
    paths = dataset_paths(real_dataset)
    server = ServerProcess(workdir, agencies=5, port=port).wait_listening()
    clients = start_clients(tmp_path, paths, dict.fromkeys(paths, port))
    kills = []
    try:
        for name, point in kill_points:
            if not _reached(server, point, clients):
                break  # every client finished before this point came
            server.signal(signal.SIGKILL)
            assert server.wait(10) == -signal.SIGKILL
            kills.append(name)
            server = ServerProcess(workdir, agencies=5, port=port).wait_listening()
            recovery = server.actions("storage_recovery")[0]
            assert recovery["result"] == "success"

        print(f"{len(kills)} SIGKILLs: {', '.join(kills)}")
        assert {agency: client.wait(120) for agency, client in clients.items()} == dict.fromkeys(paths, 0)
        assert {agency: winners_reported(client) for agency, client in clients.items()} == DATASET_WINNERS
        assert len(kills) >= 5, kills
        assert server.stop() == 0
    finally:
        server.kill()
    assert len(server.stored_rows()) == DATASET_BETS
    assert stored_bets(server) == file_bets(paths)


def test_restarted_server_does_not_wait_for_agencies_that_already_left(
    tmp_path: Path, make_agencies: Callable[..., list[Agency]]
) -> None:
    """SIGKILL after two agencies got their answers and left while a third had not asked yet."""
    files = make_agencies(3, 150, [2, 1, 1])
    workdir = tmp_path / "server"
    workdir.mkdir()
    port = free_port()
    server = ServerProcess(workdir, agencies=3, port=port).wait_listening()
    try:
        peers = {agency.agency: RawPeer(port) for agency in files}
        for agency in files:
            peer = peers[agency.agency]
            assert resume(peer.request(Hello(agency.agency))) == (0, False)
            bets = tuple(CsvBets(agency.path).rows())
            assert peer.request(Bets(0, bets[:100])) == BetsAck(100)
            assert peer.request(Bets(100, bets[100:])) == BetsAck(150)
            assert peer.request(Done()) == DoneAck()
        for agency in files[:2]:
            reply = peers[agency.agency].request(WinnersQuery())
            assert isinstance(reply, Winners) and list(reply.documents) == agency.winners
            peers[agency.agency].close()  # answered, and gone for good
        server.signal(signal.SIGKILL)
        server.wait(10)
        peers[3].close()

        server = ServerProcess(workdir, agencies=3, port=port).wait_listening()
        assert server.actions("storage_recovery")[0]["done"] == "3"
        with RawPeer(port) as late:
            assert resume(late.request(Hello(3))) == (150, True)
            assert late.request(Done()) == DoneAck()
            reply = late.request(WinnersQuery())
            assert isinstance(reply, Winners) and list(reply.documents) == files[2].winners
        assert server.stop() == 0
    finally:
        server.kill()
    assert len(server.stored_rows()) == 450
