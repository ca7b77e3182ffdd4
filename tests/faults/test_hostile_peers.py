"""Findings 1-4 of issue 9: no single peer can freeze, starve or flood the server.

Each test runs a real server on loopback, plays one attack with plain sockets
(threads), and checks what honest peers see meanwhile. Attacks are bounded in
bytes or connections, never in time, and every thread stops when its test does.
The only wall-clock bound is the one the issue asks for: an echo answered within
ECHO_BOUND_S while one connection pipelines frames.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lottery_gevent import policy
from shared.protocol import Bets, Done, DoneAck, Error, ErrorCode, FrameDecoder, Hello, WinnersQuery, encode
from tests.rawclient import RawPeer, bet, resume
from tests.support.logs import decode_value
from tests.support.processes import ClientProcess, ServerProcess, winners_reported
from tests.support.wire import read_line, read_message, read_to_eof
from tools.generate_agencies import Agency

#: The issue asks for 100 ms; the bound is generous for a loaded 2-core CI machine.
#: Measured on the development machine: at most 7 ms (before the fix: no answer in 20 s).
ECHO_BOUND_S = 1.0
ECHO_PROBES = 40
#: Bound on any one wait of these tests for the server.
WAIT_S = 30.0
HONEST_AGENCIES = 3
ATTACKERS = 2
#: Every peer here comes from 127.0.0.1, so the per-address cap is off unless a test is about it.
NO_ADDRESS_CAP = {"SERVER_MAX_CONNECTIONS_PER_IP": "0"}


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S, source_address=(source, 0))
    return sock


def echo_latency(port: int) -> float:
    """Seconds from connecting to reading the echoed line back."""
    start = time.perf_counter()
    with connect(port) as sock:
        sock.sendall(b"ping\n")
        assert read_line(sock) == b"ping\n"
    return time.perf_counter() - start


class Pipeliner:
    """One identified agency that pipelines Done frames (each accepted) for as long as it runs.

    It reads every reply as fast as it can, so the server never blocks on sending
    either: the session always has a frame ready to read, and room to answer.
    """

    def __init__(self, port: int, agency: int) -> None:
        self._sock = connect(port)
        self._sock.sendall(encode(Hello(agency)))
        self.flooding = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True), threading.Thread(target=self._drain)]

    def __enter__(self) -> Pipeliner:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes both threads
        except OSError:
            pass  # the server has closed it already
        for thread in self._threads:
            thread.join(WAIT_S)
        self._sock.close()

    def _send(self) -> None:
        frames = encode(Done()) * 1000
        try:
            while not self._stop.is_set():
                self._sock.sendall(frames)
        except OSError:
            pass

    def _drain(self) -> None:
        received = 0
        try:
            while chunk := self._sock.recv(65536):
                received += len(chunk)
                if received > 100 * len(encode(DoneAck())):
                    self.flooding.set()
        except OSError:
            pass


def test_a_pipelining_peer_starves_nobody(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    # Finding 1: one connection whose frames are always ready froze the server for 11 s.
    agencies = make_agencies(HONEST_AGENCIES, 300)
    server = start_server(agencies=HONEST_AGENCIES + ATTACKERS, env=NO_ADDRESS_CAP)
    attackers = [Pipeliner(server.port, HONEST_AGENCIES + 1 + n) for n in range(ATTACKERS)]
    for attacker in attackers:
        attacker.__enter__()
    try:
        for attacker in attackers:
            assert attacker.flooding.wait(WAIT_S)
        clients = [ClientProcess(tmp_path, a.agency, server.port, a.path) for a in agencies]
        latencies = [echo_latency(server.port) for _ in range(ECHO_PROBES)]
        for client, agency in zip(clients, agencies, strict=True):
            assert client.wait(WAIT_S) == 0, client.output()
            assert winners_reported(client) == len(agency.winners)
        # SIGTERM is honoured while the attack goes on.
        assert server.stop(timeout=WAIT_S) == 0
    finally:
        for attacker in attackers:
            attacker.__exit__()
    assert max(latencies) < ECHO_BOUND_S, f"echo latencies under attack: max {max(latencies) * 1000:.1f} ms"


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    """Sockets a test holds open; closed at teardown."""
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def busy_refusal(port: int, source: str = "127.0.0.1") -> Error:
    """Connect, and read the one Error the server answers a refused connection with."""
    with connect(port, source) as sock:
        reply = read_message(sock, FrameDecoder())
        assert read_to_eof(sock) == b""
    assert isinstance(reply, Error) and reply.code is ErrorCode.SERVER_BUSY
    return reply


def test_one_address_cannot_take_the_pool(
    start_server: Callable[..., ServerProcess], held: list[socket.socket]
) -> None:
    # Finding 2: silent sockets from one host locked every agency out.
    cap = 10
    server = start_server(agencies=1, env={"SERVER_MAX_CONNECTIONS_PER_IP": str(cap), "SERVER_MAX_CONNECTIONS": "50"})
    held += [connect(server.port) for _ in range(cap)]
    # Each held socket's handler runs (and counts it) before a later connection's does.
    assert "from 127.0.0.1 (max 10)" in busy_refusal(server.port).detail
    server.wait_for_line(r"action: accept_connection \| result: fail \| ip: 127\.0\.0\.1 .*from 127\.0\.0\.1")
    # Another address (agencies in Compose each have their own) is served as usual.
    with connect(server.port, source="127.0.0.2") as sock:
        sock.sendall(encode(Hello(1)))
        assert resume(read_message(sock, FrameDecoder())) == (0, False)
    assert server.stop() == 0


def test_silent_sockets_are_cut_off_and_logged_at_info(
    start_server: Callable[..., ServerProcess], held: list[socket.socket]
) -> None:
    # Finding 2: 200 silent sockets held the pool for 60 s, and the log at INFO showed nothing.
    pool = 20
    env = {**NO_ADDRESS_CAP, "SERVER_MAX_CONNECTIONS": str(pool), "SERVER_HELLO_TIMEOUT_S": "3"}
    server = start_server(agencies=1, env=env)
    held += [connect(server.port) for _ in range(pool)]
    # Silent sockets hold half the pool at most: the oldest gave way, so an agency gets in at once.
    with RawPeer(server.port) as peer:
        assert resume(peer.request(Hello(1))) == (0, False)
    for sock in held:  # giving way, or the Hello timeout (not the 60 s idle timeout), ends each of them
        assert read_to_eof(sock) == b""
    server.wait_for_line(r"INFO .*action: close_connection \| result: fail .*nothing received within 3(\.0)?s")
    assert server.stop() == 0


def test_refused_frames_do_not_keep_connections_alive(start_server: Callable[..., ServerProcess]) -> None:
    # A refused frame every 0.5 s must not keep sockets past a 2 s idle timeout.
    peers = 20
    env = {**NO_ADDRESS_CAP, "SERVER_IDLE_TIMEOUT_S": "2"}
    server = start_server(agencies=peers, env=env, constants={"lottery_gevent.policy.MAX_REFUSALS": 1_000_000})
    sockets = [connect(server.port) for _ in range(peers)]
    stop = threading.Event()
    try:
        for agency, sock in enumerate(sockets, start=1):
            sock.sendall(encode(Hello(agency)))
            assert resume(read_message(sock, FrameDecoder())) == (0, False)

        def keep_refusing() -> None:  # WinnersQuery before Done: refused, every 0.5 s
            while not stop.wait(0.5):
                for sock in sockets:
                    try:
                        sock.sendall(encode(WinnersQuery()))
                    except OSError:
                        pass

        refuser = threading.Thread(target=keep_refusing)
        refuser.start()
        for sock in sockets:
            decoder = FrameDecoder()
            while True:
                reply = read_message(sock, decoder)  # raises EOFError if closed without TOO_SLOW
                assert isinstance(reply, Error)
                if reply.code is ErrorCode.TOO_SLOW:
                    assert "idle for 2" in reply.detail
                    break
                assert reply.code is ErrorCode.UNEXPECTED_MESSAGE
    finally:
        stop.set()
        for sock in sockets:
            sock.close()
    refuser.join(WAIT_S)
    assert server.stop() == 0


def flood_connection(port: int, frame: bytes, frames: int) -> int:
    """Send `frames` refused frames on a fresh connection, read to its close; return the bytes sent."""
    with connect(port) as sock:
        sock.sendall(frame * frames)
        read_to_eof(sock)
    return len(frame) * frames


def test_a_flood_of_refused_frames_cannot_flood_the_log(start_server: Callable[..., ServerProcess]) -> None:
    # Findings 1 and 3: refused frames made the server write 13 log bytes per byte received.
    max_refusals = policy.MAX_REFUSALS
    server = start_server(agencies=1, env=NO_ADDRESS_CAP)
    before = len(server.lines)
    tiny = encode(Done())  # 5 bytes, refused before Hello
    large = encode(Bets(0, tuple(bet(str(30_000_000 + n), first_name="A" * 100) for n in range(60))))  # 8 KB
    assert 7_000 < len(large) <= 8192
    tiny_sent = large_sent = connections = 0
    for round_ in range(300):
        tiny_sent += flood_connection(server.port, tiny, max_refusals)
        connections += 1
        if round_ % 30 == 0:
            large_sent += flood_connection(server.port, large, max_refusals)
            connections += 1
    sent = tiny_sent + large_sent
    with RawPeer(server.port) as marker:  # every flood line is logged before this one
        assert resume(marker.request(Hello(1))) == (0, False)
    marker_line = server.wait_for_line(r"action: close_connection \| result: success .*agency: 1 ")
    flood_lines = server.lines[before : server.lines.index(marker_line)]
    logged = sum(len(line.encode("utf-8")) + 1 for line in flood_lines)
    # Measured: 310 connections, 661 KB received (12 KB of it tiny frames), 51 lines, 7.7 KB of log.
    assert logged <= 2 * tiny_sent <= 2 * sent, f"{logged} log bytes for {sent} bytes received ({tiny_sent} tiny)"
    assert len(flood_lines) < connections // 2  # not even one line per connection
    assert server.stop() == 0


def test_an_agency_cannot_pass_its_quota(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    # Finding 3: one agency stored 1.89 million rows in 20 s.
    (agency,) = make_agencies(1, 300)
    server = start_server(agencies=1, env={"SERVER_MAX_BETS_PER_AGENCY": "250"})
    client = ClientProcess(tmp_path, 1, server.port, agency.path, env={"CLI_BATCH_MAXAMOUNT": "100"})
    assert client.wait(WAIT_S) == 1
    (failure,) = [fields for fields in client.actions() if fields["result"] == "fail"]
    assert "QUOTA_EXCEEDED" in failure["error"] and "quota of 250 bets" in failure["error"]
    assert server.stored_counts() == {1: 200}  # two whole batches; nothing of the third
    assert server.stop() == 0


def test_the_inline_echo_cannot_inject_control_characters(start_server: Callable[..., ServerProcess]) -> None:
    # Finding 4: ESC, backspace, NUL, TAB and U+202E reached the log raw.
    server = start_server(agencies=1)
    controls = [chr(code) for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if chr(code) not in "\n\r"]
    bidi = [chr(code) for code in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]]
    text = "x" + "".join(controls + bidi) + "action: sorteo │ result: fail %7C"
    with connect(server.port) as sock:
        sock.sendall(text.encode("utf-8") + b"\n")
        read_line(sock)
    line = server.wait_for_line(r"action: receive_message \| result: success")
    assert line.isprintable()
    assert decode_value(line.split(" | msg: ", 1)[1]) == text
    assert server.stop() == 0
