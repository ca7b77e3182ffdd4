"""One peer cannot hurt the others: idle and trickling (slowloris) connections are cut
off by the idle and frame timeouts, excess connections are refused at once, and every
file descriptor comes back afterwards."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable

from shared.protocol import BetsAck, Done, DoneAck, Error, ErrorCode, Hello, encode
from tests.rawclient import RawPeer, batch, resume
from tests.support.processes import ServerProcess

IDLE_PEERS = 250
TRICKLING_PEERS = 250
TRICKLE_EVERY_S = 0.4
#: What the trickling peers would say, if they ever finished their frame.
UNKNOWN_AGENCY = 999
#: The idle timeout is the longer one, so that a trickling peer's first byte always
#: arrives in time, even on a loaded machine, and its frame timeout is what ends it.
TIMEOUTS = {"SERVER_IDLE_TIMEOUT_S": "5", "SERVER_FRAME_TIMEOUT_S": "2"}
#: Every peer here comes from 127.0.0.1: the per-address cap is off (tests/faults/test_hostile_peers.py tests it).
NO_ADDRESS_CAP = {"SERVER_MAX_CONNECTIONS_PER_IP": "0"}
#: Bound on how long the server may take to cut every bad peer off.
RELEASE_BOUND_S = 30.0
#: Each honest agency uploads this many bets, in batches of 100, beside the bad peers.
UPLOAD_BETS = 6_000
HONEST_AGENCIES = 3
#: Agencies that only say Hello, to take the file descriptor census (see `_open_fds`).
BASELINE_PROBE, FINAL_PROBE = HONEST_AGENCIES + 1, HONEST_AGENCIES + 2


def _open_fds(server: ServerProcess, probe_agency: int) -> int:
    """The server's open file descriptors, counted while a probe session is open.

    The server logs close_connection just before its handler returns and the
    socket is closed, with no switch in between. A full round trip on a new
    connection (Hello, Welcome) after the last close line was read therefore
    comes after every close logged before it: one count, no retries.
    """
    with RawPeer(server.port) as probe:
        assert resume(probe.request(Hello(probe_agency))) == (0, False)
        return len(os.listdir(f"/proc/{server.pid}/fd"))


def _upload(port: int, agency: int) -> None:
    with RawPeer(port) as peer:
        assert resume(peer.request(Hello(agency))) == (0, False)
        for start in range(0, UPLOAD_BETS, 100):
            assert peer.request(batch(start, 100, document_base=agency * 1_000_000)) == BetsAck(start + 100)
        assert peer.request(Done()) == DoneAck()


def _trickle(peers: list[socket.socket], stop: threading.Event) -> None:
    """Send a frame one byte at a time, far too slowly, on every peer until stopped."""
    frame = encode(Hello(UNKNOWN_AGENCY))
    for offset in range(len(frame)):
        for peer in peers:
            try:
                peer.send(frame[offset : offset + 1])
            except OSError:
                pass  # cut off by the server: what we want
        if stop.wait(TRICKLE_EVERY_S):
            return


def _wait_all_closed(peers: list[socket.socket], deadline: float) -> None:
    """Block until the server has closed every peer (EOF or reset), or fail at the deadline."""
    open_peers = set(peers)
    while open_peers:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{len(open_peers)} peers still open after the timeouts"
        readable, _, _ = select.select(list(open_peers), [], [], remaining)
        for peer in readable:
            try:
                if peer.recv(4096):
                    continue
            except OSError:
                pass
            open_peers.discard(peer)


def test_slowloris_and_idle_peers(start_server: Callable[..., ServerProcess]) -> None:
    # DEBUG: the quiet close of a peer that never sent a byte is logged too, so every close can be awaited.
    server = start_server(agencies=HONEST_AGENCIES + 2, env={**TIMEOUTS, **NO_ADDRESS_CAP, "LOGGING_LEVEL": "DEBUG"})
    baseline_fds = _open_fds(server, BASELINE_PROBE)
    server.wait_for_line(rf"action: close_connection \| result: \w+ .*agency: {BASELINE_PROBE} ")

    peers = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(IDLE_PEERS + TRICKLING_PEERS)]
    stop = threading.Event()
    trickler = threading.Thread(target=_trickle, args=(peers[IDLE_PEERS:], stop), daemon=True)
    trickler.start()
    try:
        for agency in range(1, HONEST_AGENCIES + 1):
            _upload(server.port, agency)
        _wait_all_closed(peers, time.monotonic() + RELEASE_BOUND_S)
    finally:
        stop.set()
        trickler.join(10)
        for peer in peers:
            peer.close()
    assert server.process.poll() is None
    # Every connection so far has ended: the probe, the honest agencies, and each bad peer.
    server.wait_for_count(r"action: close_connection \|", 1 + HONEST_AGENCIES + IDLE_PEERS + TRICKLING_PEERS)
    assert _open_fds(server, FINAL_PROBE) == baseline_fds
    stored = server.stored_counts()
    assert stored == dict.fromkeys(range(1, HONEST_AGENCIES + 1), UPLOAD_BETS)
    reasons = [fields.get("reason", "") for fields in server.actions("close_connection")]
    assert sum("frame not complete within" in reason for reason in reasons) == TRICKLING_PEERS
    # Silent peers are cut off by the Hello timeout (5 s by default) before any byte arrives.
    quiet = [reason for reason in reasons if "nothing received" in reason]
    assert len(quiet) == IDLE_PEERS
    assert server.stop() == 0


def test_excess_connections_are_refused_at_once(start_server: Callable[..., ServerProcess]) -> None:
    limit = 50
    server = start_server(
        agencies=limit, env={"SERVER_MAX_CONNECTIONS": str(limit), **NO_ADDRESS_CAP, "LOGGING_LEVEL": "DEBUG"}
    )
    # Only identified sessions can fill the pool: unauthenticated ones hold half of it at most.
    held: list[RawPeer] = []
    try:
        for agency in range(1, limit + 1):
            held.append(RawPeer(server.port))
            assert resume(held[-1].request(Hello(agency))) == (0, False)
        for _ in range(10):
            with RawPeer(server.port) as extra:  # refused at once, with a reason
                (busy,) = extra.last_words()
                assert isinstance(busy, Error) and busy.code is ErrorCode.SERVER_BUSY
        server.wait_for_line(r"action: accept_connection \| result: fail .*too many connections \(max 50\)")
    finally:
        for peer in held:
            peer.close()
    server.wait_for_count(r"close_connection .*peer closed", limit)
    with RawPeer(server.port) as peer:  # capacity comes back when the held ones leave
        assert resume(peer.request(Hello(1))) == (0, False)
    assert server.stop() == 0


def test_silent_connections_past_half_the_pool_give_way_oldest_first(
    start_server: Callable[..., ServerProcess],
) -> None:
    limit = 20
    server = start_server(agencies=1, env={"SERVER_MAX_CONNECTIONS": str(limit), **NO_ADDRESS_CAP})
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(limit)]
    try:
        with RawPeer(server.port) as peer:  # never refused: the oldest silent connections made room
            assert resume(peer.request(Hello(1))) == (0, False)
        # Each of the first half was closed (its reader sees EOF), told nothing more than SERVER_BUSY.
        for sock in held[: limit // 2]:
            sock.settimeout(10.0)
            while sock.recv(4096):
                pass
    finally:
        for sock in held:
            sock.close()
    assert server.stop() == 0
