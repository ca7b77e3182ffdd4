"""Mutual TLS on loopback: only agency K's certificate can act as agency K, the
echo stays plaintext, and no DNI crosses the wire in clear."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client_gevent.bets_source import CsvBets
from shared.errors import PeerClosed, TlsRejected
from shared.protocol import Bets, BetsAck, Done, DoneAck, Error, ErrorCode, Hello, WinnersQuery
from shared.tls import client_tls_context
from tests.conftest import DATASET_BETS, DATASET_WINNERS
from tests.proxy import FaultProxy
from tests.rawclient import RawPeer, batch, resume
from tests.support.processes import ClientProcess, ServerProcess, winners_reported
from tests.support.tls import EXPIRED_AGENCY, Contest, tls_peer
from tests.support.wire import read_line
from tools.generate_agencies import Agency

#: Digit runs of a DNI's length, anywhere in the captured bytes.
DIGIT_RUN = re.compile(rb"[0-9]{7,8}")


@pytest.fixture(scope="module")
def contest(tmp_path_factory: pytest.TempPathFactory) -> Contest:
    return Contest.make(tmp_path_factory.mktemp("contest"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Contest:
    """Another contest: another CA, whose certificates our server must refuse."""
    return Contest.make(tmp_path_factory.mktemp("other"))


@pytest.fixture
def tls_server(start_server: Callable[..., ServerProcess], contest: Contest) -> Iterator[ServerProcess]:
    server = start_server(agencies=3, env=contest.server_env())
    yield server
    assert "Traceback" not in server.output()


def test_tls_on_says_so(tls_server: ServerProcess) -> None:
    assert tls_server.actions("config")[0]["tls"] == "on"
    assert "not authenticated" not in tls_server.output()


def test_tls_off_warns_once_without_a_failure(start_server: Callable[..., ServerProcess]) -> None:
    plain = start_server(agencies=3)
    assert plain.actions("config")[0]["tls"] == "off"
    warnings = [line for line in plain.lines if "not authenticated" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "action:" not in warnings[0]


def test_a_certificate_speaks_only_for_its_own_agency(tls_server: ServerProcess, contest: Contest) -> None:
    with tls_peer(tls_server.port, contest.context(2)) as forger:
        reply = forger.exchange(Hello(3))
        assert isinstance(reply, Error) and reply.code == ErrorCode.NOT_AUTHORISED
        assert "agency-2" in reply.detail
        with pytest.raises(PeerClosed):
            forger.exchange(Bets(0, batch(0, 5).bets))
    refused = tls_server.wait_for_action("identify", outcome="fail")
    assert refused["agency"] == "3"
    with tls_peer(tls_server.port, contest.context(3)) as honest:
        assert resume(honest.exchange(Hello(3))) == (0, False)  # nothing was stored for 3
    assert tls_server.stored_rows() == []


@pytest.mark.parametrize(
    ("credentials", "reason"),
    [
        ("none", "did not return a certificate"),
        ("other CA", "unable to get local issuer certificate"),
        ("expired", "certificate has expired"),
    ],
)
def test_the_server_refuses_a_handshake_without_a_valid_agency_certificate(
    tls_server: ServerProcess, contest: Contest, other: Contest, credentials: str, reason: str
) -> None:
    context = {
        "none": contest.context(None),
        "other CA": client_tls_context(contest.ca, other.cert(1), other.key(1)),  # trusts our server, though
        "expired": contest.context(EXPIRED_AGENCY),
    }
    with pytest.raises((TlsRejected, PeerClosed)):  # TLS 1.3: the refusal may come after the client's handshake
        with tls_peer(tls_server.port, context[credentials]) as peer:
            peer.exchange(Hello(1))
    line = tls_server.wait_for_line(r"action: tls_handshake \| result: fail")
    assert reason in line and "WARNING" in line
    assert len([line for line in tls_server.lines if "tls_handshake" in line]) == 1  # logged once


def test_a_stalled_handshake_is_bounded_by_the_hello_timeout(
    start_server: Callable[..., ServerProcess], contest: Contest
) -> None:
    server = start_server(agencies=1, env={**contest.server_env(), "SERVER_HELLO_TIMEOUT_S": "0.5"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as stalled:
        stalled.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and then nothing
        line = server.wait_for_line(r"action: tls_handshake \| result: fail")
        assert "0.5s" in line
        assert stalled.recv(1) == b""  # closed


def test_plaintext_protocol_is_refused_with_tls_required(tls_server: ServerProcess) -> None:
    with RawPeer(tls_server.port) as peer:
        reply = peer.request(Hello(1))
        assert isinstance(reply, Error) and reply.code == ErrorCode.TLS_REQUIRED
        assert peer.closed_by_server()


def test_the_inline_echo_stays_plaintext(tls_server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as sock:
        sock.sendall(b"hola\n")
        assert read_line(sock) == b"hola\n"


def test_a_takeover_needs_the_agency_certificate_and_works_with_it(
    tls_server: ServerProcess, contest: Contest
) -> None:
    with tls_peer(tls_server.port, contest.context(1)) as first, tls_peer(tls_server.port, contest.context(1)) as again:
        assert resume(first.exchange(Hello(1))) == (0, False)
        assert first.exchange(batch(0, 10)) == BetsAck(10)
        assert resume(again.exchange(Hello(1))) == (10, False)
        superseded = first.receive()
        assert isinstance(superseded, Error) and superseded.code == ErrorCode.SUPERSEDED
        assert again.exchange(batch(10, 5)) == BetsAck(15)


def test_waiting_for_the_draw_over_tls_notices_a_message_and_a_close(
    tls_server: ServerProcess, contest: Contest
) -> None:
    """The draw-time wait watches a TLS stream: readable means decrypted data, or EOF."""
    with tls_peer(tls_server.port, contest.context(1)) as early:
        assert resume(early.exchange(Hello(1))) == (0, False)
        assert early.exchange(Done()) == DoneAck()
        early.send_message(WinnersQuery())
        early.send_message(Done())  # not allowed while the query waits
        reply = early.receive()
        assert isinstance(reply, Error) and reply.code == ErrorCode.UNEXPECTED_MESSAGE
    with tls_peer(tls_server.port, contest.context(2)) as leaving:
        assert resume(leaving.exchange(Hello(2))) == (0, False)
        assert leaving.exchange(Done()) == DoneAck()
        leaving.send_message(WinnersQuery())
    tls_server.wait_for_line(r"action: close_connection \| result: success .*agency: 2 \| reason: peer closed")


def test_tls_agencies_get_exactly_their_winners(
    tls_server: ServerProcess, contest: Contest, make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    files = make_agencies(3, 300, [2, 1, 0])
    clients = [
        ClientProcess(tmp_path, a.agency, tls_server.port, a.path, env=contest.client_env(a.agency)) for a in files
    ]
    assert [client.wait(60) for client in clients] == [0, 0, 0]
    assert [winners_reported(client) for client in clients] == [2, 1, 0]
    assert all(client.actions("config")[0]["tls"] == "on" for client in clients)
    assert len(tls_server.stored_rows()) == 900


#: A single bet (the client's NOMBRE..NUMERO), so that these clients need no file.
SINGLE_BET = {"NOMBRE": "Ana", "APELLIDO": "Lorca", "DOCUMENTO": "30904465", "NACIMIENTO": "1999-03-17", "NUMERO": "7"}


@pytest.mark.parametrize(
    ("case", "reason"),
    [("other CA", "self-signed certificate in certificate chain"), ("wrong host", "IP address mismatch")],
)
def test_the_client_refuses_a_server_it_cannot_verify_once_and_for_all(
    start_server: Callable[..., ServerProcess], contest: Contest, other: Contest, tmp_path: Path, case: str, reason: str
) -> None:
    """The server's certificate names 127.0.0.1, not 127.0.0.2 (where this server listens)."""
    host = "127.0.0.2" if case == "wrong host" else "127.0.0.1"
    server = start_server(agencies=1, env={**contest.server_env(), "SERVER_IP": host})
    env = {
        **(other.client_env(1) if case == "other CA" else contest.client_env(1)),
        **SINGLE_BET,
        "CLI_SERVER_ADDRESS": f"{host}:{server.port}",
        "CLI_CONNECTION_RETRYTIMEOUT": "60s",
    }
    client = ClientProcess(tmp_path, 1, server.port, env=env)

    assert client.wait(30) == 1
    failures = [line for line in client.lines if "result: fail" in line]
    assert len(failures) == 1 and reason in failures[0] and "action: connect" in failures[0], client.output()
    assert "result: in_progress" not in client.output()  # no retry loop
    assert server.stored_rows() == []


def test_an_agency_set_up_for_tls_stops_at_once_at_a_server_with_tls_off(
    start_server: Callable[..., ServerProcess], contest: Contest, tmp_path: Path
) -> None:
    server = start_server(agencies=1)  # TLS off
    env = {**contest.client_env(1), **SINGLE_BET, "CLI_CONNECTION_RETRYTIMEOUT": "60s"}
    client = ClientProcess(tmp_path, 1, server.port, env=env)

    assert client.wait(30) == 1
    failures = [line for line in client.lines if "result: fail" in line]
    assert len(failures) == 1 and "refused the TLS handshake" in failures[0], client.output()
    assert "result: in_progress" not in client.output()  # no retry loop
    refusals = server.actions("tls_handshake")
    assert len(refusals) == 1 and refusals[0]["result"] == "fail" and "TLS off" in refusals[0]["error"]
    assert server.actions("receive_message") == []  # the ClientHello is no longer taken for an echo line
    assert server.stored_rows() == []


def test_real_dataset_under_tls_and_no_dni_in_clear_on_the_wire(
    start_server: Callable[..., ServerProcess], contest: Contest, real_dataset: Path, tmp_path: Path
) -> None:
    """Every byte between the agencies and the server goes through a recording proxy."""
    server = start_server(agencies=5, env=contest.server_env())
    with FaultProxy(server.port, record=True) as tap:
        clients = {
            agency: ClientProcess(
                tmp_path, agency, tap.port, real_dataset / f"agency-{agency}.csv", env=contest.client_env(agency)
            )
            for agency in DATASET_WINNERS
        }
        assert {agency: client.wait(180) for agency, client in clients.items()} == dict.fromkeys(DATASET_WINNERS, 0)
    assert {agency: winners_reported(client) for agency, client in clients.items()} == DATASET_WINNERS
    assert server.stop() == 0
    assert len(server.stored_rows()) == DATASET_BETS
    files = [real_dataset / f"agency-{agency}.csv" for agency in DATASET_WINNERS]
    documents = {bet.document for path in files for bet in CsvBets(path).rows()}
    captured = bytes(tap.recorded)
    assert len(captured) > DATASET_BETS * 20  # the bets did cross this link
    assert not documents & {run.decode() for run in DIGIT_RUN.findall(captured)}


def test_the_capture_does_see_documents_in_plaintext(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    """The control for the test above: the same recording finds the DNIs of a plaintext run."""
    files = make_agencies(1, 50, [1])
    server = start_server(agencies=1)
    with FaultProxy(server.port, record=True) as tap:
        client = ClientProcess(tmp_path, 1, tap.port, files[0].path)
        assert client.wait(60) == 0
    documents = {bet.document for bet in CsvBets(files[0].path).rows()}
    assert documents <= {run.decode() for run in DIGIT_RUN.findall(bytes(tap.recorded))}
