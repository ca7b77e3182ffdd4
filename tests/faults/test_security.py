"""Issue 18, attacked on a real TLS server on loopback: no agency key and no crowd
of addresses starves the contest, secrets stay out of every output, a revocation
takes effect on SIGHUP.

Floods run in their own process (tests.support.flood), from many source addresses
(127.0.0.x), each bounded in connections and seconds, and are killed at the end
of the test. The honest agencies connect from 127.0.0.1.
"""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.errors import PeerClosed, TlsRejected
from shared.protocol import Done, DoneAck, Error, ErrorCode, Hello, Welcome, encode
from tests.faults.test_deadlines import BioPeer
from tests.support.processes import REPO_ROOT, ClientProcess, ServerProcess, winners_reported
from tests.support.tls import Contest, tls_peer
from tests.support.wire import read_line
from tools.credentials import ensure_credentials, revoke
from tools.generate_agencies import Agency

#: Each honest agency must be done (all bets stored, Done acknowledged) this soon after it starts.
HONEST_WITHIN_S = 15.0
#: Longest a flood runs (it is stopped as soon as the test has seen what it needs).
FLOOD_S = 40.0
WAIT_S = 60.0
ECHO_PROBE_TIMEOUT_S = 5.0
ECHO_PROBES = 5
#: An accept queue that holds the flood's pending connections: a full one drops SYNs, the honest ones too.
FLOOD_BACKLOG = {"SERVER_LISTEN_BACKLOG": "4096"}
#: Descriptors a flood process needs beyond its sockets.
SPARE_FDS = 64


@pytest.fixture(scope="module")
def contest(tmp_path_factory: pytest.TempPathFactory) -> Contest:
    directory = tmp_path_factory.mktemp("contest")
    ensure_credentials(directory, 3)
    return Contest(directory)


@pytest.fixture
def floods() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def flood(port: int, mode: str, first: str, addresses: int, per_address: int, *tls: Path) -> subprocess.Popen[str]:
        if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < addresses * per_address + SPARE_FDS:
            pytest.skip(f"RLIMIT_NOFILE's hard limit is below the {addresses * per_address} sockets of the flood")
        argv = [sys.executable, "-m", "tests.support.flood", str(port), str(FLOOD_S), mode, first]
        argv += [str(addresses), str(per_address), *map(str, tls)]
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "flood started"
        return process

    yield flood
    for process in started:
        process.kill()
        process.communicate(timeout=WAIT_S)


def echo_answered(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=ECHO_PROBE_TIMEOUT_S) as sock:
        sock.sendall(b"ping\n")
        assert read_line(sock) == b"ping\n"


def honest_run(
    tmp_path: Path,
    server: ServerProcess,
    contest: Contest,
    agencies: list[Agency],
    flood: subprocess.Popen[str],
    during: list[int],
) -> None:
    """Agencies `during` start in the flood and must be done within HONEST_WITHIN_S each (the echo
    answered meanwhile); then the flood stops, the others run, and every result is exact."""
    clients: dict[int, ClientProcess] = {}

    def start(agency: int) -> None:
        env = contest.client_env(agency)
        clients[agency] = ClientProcess(tmp_path, agency, server.port, agencies[agency - 1].path, env=env)

    try:
        started = time.monotonic()
        for agency in during:
            start(agency)
        for _ in range(ECHO_PROBES):
            echo_answered(server.port)
        server.wait_for_count(r"action: agency_done \| result: success", len(during), HONEST_WITHIN_S)
        assert time.monotonic() - started <= HONEST_WITHIN_S
        flood.kill()
        flood.communicate(timeout=WAIT_S)
        for agency in range(1, len(agencies) + 1):
            if agency not in clients:
                start(agency)
        for agency, client in clients.items():
            assert client.wait(WAIT_S) == 0, client.output()
            assert winners_reported(client) == len(agencies[agency - 1].winners)
    finally:
        for client in clients.values():
            client.kill()
    assert server.stored_counts() == {agency.agency: agency.bets for agency in agencies}


def test_one_agency_key_cannot_hold_the_pool(
    start_server: Callable[..., ServerProcess],
    make_agencies: Callable[..., list[Agency]],
    contest: Contest,
    floods: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    agencies = make_agencies(3, 300)
    server = start_server(agencies=3, env={**contest.server_env(), **FLOOD_BACKLOG})
    # 17 addresses x 64 = 1,088 connections with agency-2's certificate, reconnecting when refused.
    flood = floods(server.port, "tls", "127.0.0.10", 17, 64, contest.cert(2), contest.key(2), contest.ca)
    server.wait_for_line(r"action: accept_connection \| result: fail .*cert: agency-2 .*already holds 2")
    honest_run(tmp_path, server, contest, agencies, flood, during=[1, 3])
    lines = [line for line in server.output().splitlines() if "already holds 2 connections" in line]
    assert len(lines) <= 2 + FLOOD_S  # a line a second at most, with the count of the rest
    assert any("suppressed: " in line for line in lines)
    assert server.stop() == 0


def test_a_crowd_of_addresses_without_credentials_cannot_starve_the_contest(
    start_server: Callable[..., ServerProcess],
    make_agencies: Callable[..., list[Agency]],
    contest: Contest,
    floods: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    agencies = make_agencies(3, 300)
    server = start_server(agencies=3, env={**contest.server_env(), **FLOOD_BACKLOG})
    # 40 addresses x 64 connections that hold a slot as long as allowed: silent, and half a handshake.
    flood = floods(server.port, "silent", "127.0.1.1", 20, 64)
    slow = floods(server.port, "hello", "127.0.2.1", 20, 64)
    server.wait_for_line(r"close_connection .*gave way to a newer connection")
    honest_run(tmp_path, server, contest, agencies, flood, during=[1, 2, 3])
    slow.kill()
    assert server.stop() == 0


def test_an_echo_flood_writes_less_log_than_it_sends(
    start_server: Callable[..., ServerProcess], floods: Callable[..., subprocess.Popen[str]]
) -> None:
    server = start_server(agencies=1)
    flood = floods(server.port, "echo", "127.0.3.1", 8, 4)
    server.wait_for_count(r"action: receive_message \| result: success", 20)
    before = len(server.output().encode())
    counted = server.wait_for_count(r"action: receive_message \| result: success .*suppressed: ", 3, WAIT_S)
    flood.terminate()  # ends the flood; it reports what it sent
    out, _ = flood.communicate(timeout=WAIT_S)
    sent = int(out.split()[-1])
    logged = len(server.output().encode())
    assert counted and sent > 0
    assert logged < sent, f"{logged} log bytes for {sent} bytes sent"
    assert logged - before < sent
    echo_answered(server.port)
    assert server.stop() == 0


def test_pem_text_in_a_key_setting_never_reaches_any_output(contest: Contest, tmp_path: Path) -> None:
    server_key = (contest.directory / "server.key").read_text(encoding="utf-8")
    agency_key = contest.key(1).read_text(encoding="utf-8")
    server = ServerProcess(tmp_path, env={**contest.server_env(), "SERVER_TLS_KEY": server_key})
    client = ClientProcess(tmp_path, 1, 1, env={**contest.client_env(1), "CLI_TLS_KEY": agency_key})
    try:
        assert server.wait(WAIT_S) == 2 and client.wait(WAIT_S) == 2
    finally:
        server.kill()
        client.kill()
    for process, key in ((server, server_key), (client, agency_key)):
        assert "holds PEM text, not a path" in process.output()
        for line in key.splitlines():
            assert line not in process.output()


def test_bad_tls_files_fail_before_the_data_directory_is_touched(contest: Contest, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**contest.server_env(), "SERVER_TLS_KEY": str(tmp_path / "missing.key"), "SERVER_DATA_DIR": str(data)}
    server = ServerProcess(tmp_path, env=env)
    try:
        assert server.wait(WAIT_S) == 2
    finally:
        server.kill()
    assert server.actions("tls_setup")[0]["result"] == "fail"
    assert not data.exists() and not server.actions("lock_data_dir") and not server.actions("storage_recovery")


def test_a_revoked_agency_is_refused_within_a_second_of_sighup(
    start_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("revocation")
    ensure_credentials(directory, 3)
    contest = Contest(directory)
    server = start_server(agencies=3, env={**contest.server_env(), "SERVER_TLS_CRL": str(directory / "crl.pem")})
    with tls_peer(server.port, contest.context(2)) as revoked, tls_peer(server.port, contest.context(1)) as honest:
        assert isinstance(revoked.exchange(Hello(2)), Welcome)
        assert isinstance(honest.exchange(Hello(1)), Welcome)
        revoke(directory, [2])
        signalled = time.monotonic()
        server.signal(signal.SIGHUP)
        ended = revoked.receive()  # the live session is closed, and told why
        assert isinstance(ended, Error) and ended.code is ErrorCode.NOT_AUTHORISED
        assert server.wait_for_action("reload_crl")["sessions_ended"] == "1"
        with pytest.raises((TlsRejected, PeerClosed)), tls_peer(server.port, contest.context(2)) as again:
            again.exchange(Hello(2))
        assert time.monotonic() - signalled <= 1.0
        assert isinstance(honest.exchange(Done()), DoneAck)  # the other agency's session goes on
    assert server.stop() == 0


def test_a_tls_protocol_violation_is_logged_as_a_failure(
    start_server: Callable[..., ServerProcess], contest: Contest
) -> None:
    server = start_server(agencies=3, env=contest.server_env())
    peer = BioPeer(server.port, contest, 1)
    try:
        peer.handshake()
        peer.sock.sendall(peer.records(encode(Hello(1))))
        peer.sock.sendall(b"\x17\x03\x03\x00\x20" + bytes(32))  # a record that cannot decrypt
        line = server.wait_for_line(r"action: close_connection \| result: fail .*TLS protocol violation")
        assert "cert: agency-1" in line
    finally:
        peer.close()
    assert server.stop() == 0


def test_server_busy_under_tls_reaches_the_agency_as_server_busy(
    start_server: Callable[..., ServerProcess], contest: Contest
) -> None:
    server = start_server(agencies=3, env={**contest.server_env(), "SERVER_MAX_CONNECTIONS": "1"})
    with tls_peer(server.port, contest.context(1)) as first:
        assert isinstance(first.exchange(Hello(1)), Welcome)
        with tls_peer(server.port, contest.context(3)) as second:
            busy = second.exchange(Hello(3))
            assert isinstance(busy, Error) and busy.code is ErrorCode.SERVER_BUSY
    assert server.stop() == 0


def test_a_valid_certificate_refused_is_logged_apart_from_anonymous_noise(
    start_server: Callable[..., ServerProcess], contest: Contest, floods: Callable[..., subprocess.Popen[str]]
) -> None:
    server = start_server(agencies=3, env=contest.server_env())
    floods(server.port, "hello", "127.0.4.1", 10, 64)  # anonymous handshakes that never finish
    server.wait_for_count(r"gave way to a newer connection", 20)  # the anonymous noise has spent its budget
    for _ in range(5):  # agency-2 claims to be agency 3, five times, a little more than a second apart
        with tls_peer(server.port, contest.context(2)) as impostor:
            refused = impostor.exchange(Hello(3))
            assert isinstance(refused, Error) and refused.code is ErrorCode.NOT_AUTHORISED
        threading.Event().wait(1.1)  # the certificate's budget: a line a second
    lines = [line for line in server.output().splitlines() if "action: identify | result: fail" in line]
    assert len(lines) == 5 and all("cert: agency-2" in line for line in lines), lines


def test_a_revocation_list_that_does_not_load_keeps_the_old_one(
    start_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("bad-crl")
    ensure_credentials(directory, 2)
    contest = Contest(directory)
    server = start_server(agencies=2, env={**contest.server_env(), "SERVER_TLS_CRL": str(directory / "crl.pem")})
    (directory / "crl.pem").write_text("not a list\n", encoding="utf-8")
    server.signal(signal.SIGHUP)
    assert server.wait_for_action("reload_crl", outcome="fail")["error"].startswith("cannot load the revocation list")
    with tls_peer(server.port, contest.context(1)) as agency:
        assert isinstance(agency.exchange(Hello(1)), Welcome)
    assert server.stop() == 0
