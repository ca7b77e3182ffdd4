"""The whole job on loopback: agencies upload, the draw waits for all, each gets its own winners."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import gevent
import pytest

from client_gevent.backoff import Backoff
from client_gevent.bets_source import CsvBets
from client_gevent.config import ClientConfig, Duration
from client_gevent.lottery_mode import LotteryAgency
from lottery_gevent.config import ServerConfig
from lottery_gevent.lottery import Lottery
from lottery_gevent.server import LotteryServer
from lottery_gevent.storage import BetStore
from shared.protocol import Bets, BetsAck, Done, DoneAck, Hello, Winners, WinnersQuery
from tests.rawclient import RawPeer, resume
from tests.support.processes import ClientProcess, ServerProcess, actions, winners_reported
from tests.support.wire import read_line
from tools.generate_agencies import Agency


@pytest.mark.parametrize(("agencies", "winners"), [(3, [2, 1, 0]), (5, [2, 3, 3, 2, 0])])
def test_each_agency_gets_its_winner_count(
    start_server: Callable[..., ServerProcess],
    make_agencies: Callable[..., list[Agency]],
    tmp_path: Path,
    agencies: int,
    winners: list[int],
) -> None:
    files = make_agencies(agencies, 450, winners)
    server = start_server(agencies=agencies)
    clients = [ClientProcess(tmp_path, agency.agency, server.port, agency.path) for agency in files]

    assert [client.wait(60) for client in clients] == [0] * agencies
    assert [winners_reported(client) for client in clients] == winners
    assert len(server.stored_rows()) == agencies * 450
    assert server.stop() == 0
    for client in clients:
        assert not [line for line in client.lines if "result: fail" in line]


def test_each_agency_is_told_exactly_its_own_documents(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]]
) -> None:
    files = make_agencies(3, 250, [3, 1, 0])
    server = start_server(agencies=3)
    peers = []
    for agency in files:
        peer = RawPeer(server.port)
        peers.append(peer)
        assert resume(peer.request(Hello(agency.agency))) == (0, False)
        bets = list(CsvBets(agency.path).rows())
        for start in range(0, len(bets), 100):
            reply = peer.request(Bets(start, tuple(bets[start : start + 100])))
            assert reply == BetsAck(min(start + 100, len(bets)))
        assert peer.request(Done()) == DoneAck()
    for agency, peer in zip(files, peers, strict=True):
        reply = peer.request(WinnersQuery())
        assert isinstance(reply, Winners)
        assert list(reply.documents) == agency.winners
        assert reply.more is False
        peer.close()


def test_winners_wait_until_the_last_agency_is_done(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    files = make_agencies(3, 300, [2, 1, 0])
    server = start_server(agencies=3)
    early = [ClientProcess(tmp_path, agency.agency, server.port, agency.path) for agency in files[:2]]
    for agency in files[:2]:
        server.wait_for_line(rf"action: agency_done \| result: success \| agency: {agency.agency}$")

    # Both early agencies are done and blocked on their winners query: nothing may answer them yet.
    assert all(client.process.poll() is None for client in early)
    assert not server.actions("sorteo")

    last = ClientProcess(tmp_path, files[2].agency, server.port, files[2].path)
    clients = [*early, last]
    assert [client.wait(60) for client in clients] == [0, 0, 0]
    assert [winners_reported(client) for client in clients] == [2, 1, 0]

    names = [fields["action"] for fields in server.actions()]
    draw = names.index("sorteo")
    assert names.count("sorteo") == 1
    assert "apuesta_recibida" not in names[draw:]
    assert "winners_sent" not in names[:draw]
    assert server.stop() == 0


def test_zero_agencies_serve_echo_and_never_draw(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(agencies=0)
    with RawPeer(server.port) as peer:
        peer.send_bytes(b"ping\n")
        assert read_line(peer.sock) == b"ping\n"
    server.wait_for_line(r"action: receive_message \| result: success .*msg: ping$")
    assert server.stop() == 0
    assert not server.actions("sorteo")


def test_in_process_server_with_concurrent_agency_greenlets(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One real StreamServer on port 0 and N client greenlets in this process."""
    files = make_agencies(4, 200, [1, 0, 2, 3])
    monkeypatch.chdir(tmp_path)
    config = ServerConfig(ip="127.0.0.1", port=0, agencies=4)
    store = BetStore()
    store.open()
    lottery = Lottery(store, config.agencies)
    server = LotteryServer(config, store, lottery)
    server.start()
    try:
        results = []
        workers = []
        for agency in files:
            client_config = ClientConfig(
                client_id=agency.agency,
                server_host="127.0.0.1",
                server_port=server.port,
                batch_max_amount=37,
                retry_timeout=Duration("5s", 5.0),
            )
            job = LotteryAgency(client_config, CsvBets(agency.path), Backoff(5.0, agency.agency))
            workers.append(gevent.spawn(job.run))
        gevent.joinall(workers, timeout=60, raise_error=True)
        results = [worker.value for worker in workers]
        assert results == [0, 0, 0, 0]
        # Every agency got its answer, so the draw is over: winners() does not wait.
        assert {agency.agency: lottery.winners(agency.agency) for agency in files} == {
            agency.agency: agency.winners for agency in files
        }
    finally:
        server.stop()
    assert os.path.getsize(tmp_path / "bets.csv") > 0


def test_server_logs_follow_the_grammar(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    files = make_agencies(2, 120, [1, 0])
    server = start_server(agencies=2)
    clients = [ClientProcess(tmp_path, agency.agency, server.port, agency.path) for agency in files]
    assert [client.wait(60) for client in clients] == [0, 0]
    assert server.stop() == 0
    for process in [server, *clients]:
        for line in process.lines:
            if "action:" not in line:
                continue
            fields = actions([line])[0]
            assert fields["result"] in {"success", "fail", "in_progress"}, line
            body = "action: " + line.split("action: ", 1)[1]
            assert all(": " in part for part in body.split(" | ")), line
            assert fields["action"] != "exit", line
    config_line = server.actions("config")[0]
    # The course's keys come first, in this order; settings added later go after them.
    assert list(config_line)[:6] == ["action", "result", "port", "listen_backlog", "logging_level", "agencies"]
    client_config = clients[0].actions("config")[0]
    assert list(client_config)[:4] == ["action", "result", "client_id", "server_address"]
    assert {"mode", "bets_file", "log_level"} <= set(client_config)
