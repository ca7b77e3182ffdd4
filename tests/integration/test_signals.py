"""SIGTERM at every stage ends each process cleanly: logged, sockets closed, exit code 0."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from client_gevent.lottery_mode import UPLOAD_WINDOW
from shared.protocol import (
    CONTEST_ID_SIZE,
    EMPTY_DIGEST,
    Bets,
    BetsAck,
    Done,
    DoneAck,
    Error,
    ErrorCode,
    FrameDecoder,
    Hello,
    Welcome,
    WinnersQuery,
)
from tests.rawclient import RawPeer, batch, resume
from tests.support.processes import ClientProcess, ServerProcess
from tests.support.wire import read_message, read_to_eof, send_message
from tools.generate_agencies import Agency

STOP_BOUND_S = 10.0


def _assert_clean_server_stop(server: ServerProcess) -> None:
    assert server.stop(STOP_BOUND_S) == 0
    names = [fields["action"] for fields in server.actions()]
    assert "close_listener" in names and "close_storage" in names
    assert names[-1] == "shutdown"


def test_server_stops_when_idle(start_server: Callable[..., ServerProcess]) -> None:
    _assert_clean_server_stop(start_server(agencies=2))


def test_stop_signals_during_start_up_are_not_lost(tmp_path: Path) -> None:
    """A SIGTERM as soon as the config is logged (before recovery and listening) still stops cleanly."""
    server = ServerProcess(tmp_path, agencies=1)
    server.wait_for_line(r"action: config \| result: success")
    assert server.stop(STOP_BOUND_S) == 0
    assert [fields["action"] for fields in server.actions()][-1] == "shutdown"
    bets = tmp_path / "one.csv"  # valid: the client checks its file before it connects
    bets.write_text("Ana,Lorca,30904465,1999-03-17,7574\n", encoding="utf-8")
    client = ClientProcess(tmp_path, 1, 9, bets)  # nothing listens on port 9
    client.wait_for_line(r"action: config \| result: success")
    client.signal(signal.SIGTERM)
    assert client.wait(STOP_BOUND_S) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_server_stops_mid_upload(start_server: Callable[..., ServerProcess], signum: int) -> None:
    server = start_server(agencies=2)
    with RawPeer(server.port) as peer:
        peer.request(Hello(1))
        assert peer.request(batch(0, 10)) == BetsAck(10)
        server.signal(signum)
        assert server.wait(STOP_BOUND_S) == 0
        assert peer.last_words() == [Error(ErrorCode.SHUTTING_DOWN, "server shutting down")]
    server.wait_for_line(r"close_connection \| result: success .*agency: 1 .*shutting down")
    assert len(server.stored_rows()) == 10


def test_server_stops_while_agencies_wait_for_the_draw(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(agencies=3)
    peers = [RawPeer(server.port) for _ in range(2)]
    try:
        for agency, peer in enumerate(peers, start=1):
            assert resume(peer.request(Hello(agency))) == (0, False)
            assert peer.request(Done()) == DoneAck()
            peer.send(WinnersQuery())
        _assert_clean_server_stop(server)
        for peer in peers:
            assert peer.last_words() == [Error(ErrorCode.SHUTTING_DOWN, "server shutting down")]
        closes = [fields for fields in server.actions("close_connection") if "shutting down" in fields["reason"]]
        assert len(closes) == 2
    finally:
        for peer in peers:
            peer.close()


def test_client_stops_mid_upload(make_agencies: Callable[..., list[Agency]], tmp_path: Path) -> None:
    """A stand-in server takes the first batches (as many as the client sends ahead) and acknowledges none."""
    (agency,) = make_agencies(1, 300, [0])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(STOP_BOUND_S)
        client = ClientProcess(tmp_path, 1, listener.getsockname()[1], agency.path)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(STOP_BOUND_S)
            decoder = FrameDecoder()
            assert read_message(conn, decoder) == Hello(1, 300)
            send_message(conn, Welcome(0, False, bytes(CONTEST_ID_SIZE), EMPTY_DIGEST))
            start = 0
            for _ in range(UPLOAD_WINDOW):
                sent = read_message(conn, decoder)
                assert isinstance(sent, Bets) and sent.start == start
                start += len(sent.bets)
            client.signal(signal.SIGTERM)
            assert client.wait(STOP_BOUND_S) == 0
            assert read_to_eof(conn) == b""  # the client closed its socket, with nothing more to say
    names = [fields["action"] for fields in client.actions()]
    assert names[-2:] == ["close_connection", "shutdown"]


def test_client_stops_while_waiting_for_winners(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (first, _) = make_agencies(2, 120, [1, 0])
    server = start_server(agencies=2)
    client = ClientProcess(tmp_path, 1, server.port, first.path)
    server.wait_for_line(r"action: agency_done \| result: success \| agency: 1$")
    client.signal(signal.SIGTERM)
    assert client.wait(STOP_BOUND_S) == 0
    server.wait_for_line(r"close_connection \| result: success .*agency: 1 .*peer closed")
    assert not client.actions("consulta_ganadores")


def test_client_stops_during_the_echo_loop_pause(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = start_server(agencies=0)
    env = {"CLI_MODE": "echo", "CLI_LOOP_AMOUNT": "5", "CLI_LOOP_PERIOD": "10m"}
    client = ClientProcess(tmp_path, 4, server.port, env=env)
    client.wait_for_line(r"action: receive_message \| result: success")
    client.signal(signal.SIGTERM)
    assert client.wait(STOP_BOUND_S) == 0
    assert not client.actions("loop_finished")
    assert [fields["action"] for fields in client.actions()][-1] == "shutdown"
