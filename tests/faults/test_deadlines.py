"""Deadlines no peer can stretch, and reads that yield however the bytes are cut,
attacked on a real TLS server on loopback.

The attacker speaks TLS through an `ssl.SSLObject` over two MemoryBIOs on a
plain blocking socket, so it controls every raw byte: it trickles a ClientHello,
or an encrypted record, one byte at a time, or cuts a frame into one-byte TLS
records. The trickle is paced by waiting on an Event with a timeout (no sleep).

Not covered: repeated TLS 1.3 KeyUpdates. Python's ssl module has no API to send
one, so no test here can; the trickled-record tests stand for "records that
carry nothing", since a partial record decrypts to nothing either.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from shared.protocol import Bets, Done, Hello, encode
from tests.rawclient import bet
from tests.support.processes import ServerProcess
from tests.support.tls import Contest
from tests.support.wire import read_line
from tools.credentials import ensure_credentials

#: The deadline under test, in seconds (the Hello, frame or idle timeout).
DEADLINE_S = 1.0
#: How late a close may come: generous, for a loaded 2-core machine.
SLACK_S = 1.5
#: Pace of a trickle: well inside the deadline, so a timer re-armed by each byte would never fire.
TRICKLE_S = 0.2
#: Agencies that attack at once with one-byte TLS records.
ATTACKERS = 8
#: Each attacker's batches, and bets per batch (a frame of about 7.6 KB: 7,600 records).
BATCHES = 12
BATCH_BETS = 200
ECHO_BOUND_S = 0.1
ECHO_PROBES = 10
WAIT_S = 30.0


@pytest.fixture(scope="module")
def contest(tmp_path_factory: pytest.TempPathFactory) -> Contest:
    directory = tmp_path_factory.mktemp("contest")
    ensure_credentials(directory, ATTACKERS)
    return Contest(directory)


@pytest.fixture
def tls_server(start_server: Callable[..., ServerProcess], contest: Contest) -> Callable[..., ServerProcess]:
    def start(**env: str) -> ServerProcess:
        settings = {**contest.server_env(), "SERVER_MAX_CONNECTIONS_PER_IP": "0", **env}
        return start_server(agencies=ATTACKERS, env=settings)

    return start


class BioPeer:
    """A TLS client whose every raw byte the test controls."""

    def __init__(self, port: int, contest: Contest, agency: int) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(cafile=contest.ca)
        context.load_cert_chain(contest.cert(agency), contest.key(agency))
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.connected_at = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def client_hello(self) -> bytes:
        with pytest.raises(ssl.SSLWantReadError):
            self.tls.do_handshake()
        return self.outgoing.read()

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                chunk = self.sock.recv(65536)
                assert chunk, "the server closed during the handshake"
                self.incoming.write(chunk)
                continue
            self.sock.sendall(self.outgoing.read())
            return

    def records(self, data: bytes, size: int | None = None) -> bytes:
        """`data` encrypted, as one record, or as records of `size` plaintext bytes each."""
        step = size or len(data)
        for start in range(0, len(data), step):
            self.tls.write(data[start : start + step])
        return self.outgoing.read()


def trickle(sock: socket.socket, data: bytes, closed: threading.Event) -> None:
    """Send `data` one raw byte every TRICKLE_S, until done or the peer has closed."""
    pause = threading.Event()
    for index in range(len(data)):
        if closed.is_set():
            return
        try:
            sock.sendall(data[index : index + 1])
        except OSError:
            return
        pause.wait(TRICKLE_S)


def closed_after(peer: BioPeer, data: bytes, since: float) -> float:
    """Trickle `data` while reading until the server closes; seconds from `since` to that close."""
    closed = threading.Event()
    sender = threading.Thread(target=trickle, args=(peer.sock, data, closed))
    sender.start()
    try:
        while peer.sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    at = time.monotonic()
    closed.set()
    sender.join(WAIT_S)
    return at - since


@pytest.fixture
def peers() -> Iterator[list[BioPeer]]:
    made: list[BioPeer] = []
    yield made
    for peer in made:
        peer.close()


def test_a_trickled_client_hello_is_cut_at_the_hello_deadline(
    tls_server: Callable[..., ServerProcess], contest: Contest, peers: list[BioPeer]
) -> None:
    server = tls_server(SERVER_HELLO_TIMEOUT_S=str(DEADLINE_S))
    peer = BioPeer(server.port, contest, 1)
    peers.append(peer)
    elapsed = closed_after(peer, peer.client_hello(), peer.connected_at)
    assert DEADLINE_S <= elapsed <= DEADLINE_S + SLACK_S, f"closed {elapsed:.2f}s after connecting"
    server.wait_for_line(r"action: tls_handshake \| result: fail .*no Hello within 1(\.0)?s")


def test_a_trickled_record_after_the_handshake_is_cut_at_the_hello_deadline(
    tls_server: Callable[..., ServerProcess], contest: Contest, peers: list[BioPeer]
) -> None:
    server = tls_server(SERVER_HELLO_TIMEOUT_S=str(DEADLINE_S))
    peer = BioPeer(server.port, contest, 2)
    peers.append(peer)
    peer.handshake()
    elapsed = closed_after(peer, peer.records(encode(Hello(2))), peer.connected_at)
    assert DEADLINE_S <= elapsed <= DEADLINE_S + SLACK_S, f"closed {elapsed:.2f}s after connecting"
    line = server.wait_for_line(r"action: close_connection \| result: fail .*no Hello within")
    assert "cert: agency-2" in line


def welcomed(server: ServerProcess, contest: Contest, agency: int) -> BioPeer:
    """A peer past its handshake and Hello (the Welcome is left unread)."""
    peer = BioPeer(server.port, contest, agency)
    peer.handshake()
    peer.sock.sendall(peer.records(encode(Hello(agency))))
    server.wait_for_line(rf"action: identify \| result: success .*agency: {agency} ")
    return peer


def test_the_idle_deadline_holds_while_a_record_trickles(
    tls_server: Callable[..., ServerProcess], contest: Contest, peers: list[BioPeer]
) -> None:
    server = tls_server(SERVER_IDLE_TIMEOUT_S=str(DEADLINE_S))
    peer = welcomed(server, contest, 3)
    peers.append(peer)
    since = time.monotonic()  # after the Welcome: the idle deadline is at least this late
    elapsed = closed_after(peer, peer.records(encode(Done())), since)
    assert elapsed <= DEADLINE_S + SLACK_S, f"closed {elapsed:.2f}s after the Welcome"
    line = server.wait_for_line(r"action: close_connection \| result: fail .*idle for 1(\.0)?s")
    assert "cert: agency-3" in line


def test_a_started_frame_is_cut_at_the_frame_deadline(
    tls_server: Callable[..., ServerProcess], contest: Contest, peers: list[BioPeer]
) -> None:
    server = tls_server(SERVER_FRAME_TIMEOUT_S=str(DEADLINE_S))
    peer = welcomed(server, contest, 4)
    peers.append(peer)
    frame = encode(Bets(0, (bet("30000001"),)))
    peer.sock.sendall(peer.records(frame[:1]))  # the frame has started
    since = time.monotonic()
    elapsed = closed_after(peer, peer.records(frame[1:], size=1), since)
    assert elapsed <= DEADLINE_S + SLACK_S, f"closed {elapsed:.2f}s after the frame's first byte"
    line = server.wait_for_line(r"action: close_connection \| result: fail .*frame not complete within 1(\.0)?s")
    assert "cert: agency-4" in line


def attack_stream(peer: BioPeer, agency: int) -> bytes:
    """Hello, then BATCHES batches, every frame cut into one-byte TLS records (encrypted up front)."""
    data = bytearray(peer.records(encode(Hello(agency)), size=1))
    for start in range(0, BATCHES * BATCH_BETS, BATCH_BETS):
        bets = tuple(bet(str(30_000_000 + agency * 100_000 + start + n)) for n in range(BATCH_BETS))
        data += peer.records(encode(Bets(start, bets)), size=1)
    return bytes(data)


def attack(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    """Send `data` as fast as the server takes it, until it is all sent or `stop`."""
    view = memoryview(data)
    try:
        while view and not stop.is_set():
            sent = sock.send(view[:65536])
            view = view[sent:]
    except OSError:
        pass


def echo_latency(port: int) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(b"ping\n")
        assert read_line(sock) == b"ping\n"
    return time.perf_counter() - started


def test_one_byte_records_cannot_hold_up_the_inline_echo(
    tls_server: Callable[..., ServerProcess], contest: Contest, peers: list[BioPeer]
) -> None:
    server = tls_server()
    stop = threading.Event()
    threads = []
    for agency in range(1, ATTACKERS + 1):
        peer = BioPeer(server.port, contest, agency)
        peers.append(peer)
        peer.handshake()
        threads.append(threading.Thread(target=attack, args=(peer.sock, attack_stream(peer, agency), stop)))
    for thread in threads:
        thread.start()
    try:
        server.wait_for_count(r"action: apuesta_recibida \| result: success", ATTACKERS, WAIT_S)
        pause = threading.Event()
        latencies = []
        for _ in range(ECHO_PROBES):
            latencies.append(echo_latency(server.port))
            pause.wait(0.05)
        stored = len(server.actions("apuesta_recibida"))
    finally:
        stop.set()
        for peer in peers:
            with contextlib.suppress(OSError):  # already closed by the server
                peer.sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(WAIT_S)
    assert stored < ATTACKERS * BATCHES, "the attack was over before the probes were"
    assert max(latencies) < ECHO_BOUND_S, f"echo latencies under attack: {[round(s * 1000) for s in latencies]} ms"
