"""lottery_gevent.session over fake sockets: the limits its policy sets.

Fairness (a session yields after every frame), the misbehaviour budget, the
deadline that refused frames never move, the per-agency quota, and the log
budget. Clocks are fake; nothing waits on wall-clock time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from lottery_gevent import policy
from lottery_gevent.config import ServerConfig
from lottery_gevent.lottery import Lottery
from lottery_gevent.policy import ConnectionPolicy, server_log_limiter
from lottery_gevent.registry import AgencyRegistry
from lottery_gevent.server import STOP_TIMEOUT_S
from lottery_gevent.session import AgencySession
from lottery_gevent.storage import BetStore
from shared.protocol import (
    EMPTY_DIGEST,
    Bets,
    BetsAck,
    Done,
    DoneAck,
    Error,
    ErrorCode,
    Hello,
    Welcome,
    WinnersQuery,
    encode,
)
from shared.transport import Stream
from tests.unit.fakes import BlockingFakeSocket, FakeSocket
from tests.unit.frames import ANA
from tests.unit.test_session import Parts, replies


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Parts]:
    monkeypatch.chdir(tmp_path)
    store = BetStore(durable=False)
    store.open()
    config = ServerConfig(ip="127.0.0.1", port=0, agencies=2, max_bets_per_agency=5)
    yield Parts(config, store, Lottery(store, 2), AgencyRegistry(STOP_TIMEOUT_S))
    store.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_session(parts: Parts, sock: FakeSocket, clock: FakeClock | None = None) -> gevent.Greenlet:
    def handle() -> None:
        stream = Stream(sock)
        rules = ConnectionPolicy(
            parts.config,
            lambda: stream.bytes_received,
            server_log_limiter(clock or FakeClock()),
            clock=clock or FakeClock(),
        )
        AgencySession(
            stream,
            "192.0.2.1",
            store=parts.store,
            lottery=parts.lottery,
            registry=parts.registry,
            config=parts.config,
            policy=rules,
        ).run()

    return gevent.spawn(handle)


def error_codes(sock: FakeSocket) -> list[ErrorCode]:
    return [reply.code for reply in replies(sock) if isinstance(reply, Error)]


def test_the_eighth_refused_frame_closes_the_connection(parts: Parts) -> None:
    sock = FakeSocket(encode(Done()) * 20)  # Done before Hello, pipelined
    session = run_session(parts, sock)
    session.join(timeout=10)
    assert session.successful()
    assert error_codes(sock) == [ErrorCode.UNEXPECTED_MESSAGE] * 8 + [ErrorCode.TOO_MANY_REFUSALS]
    assert len(sock.unread) == 12 * len(encode(Done()))  # nothing more was read


def test_a_storage_failure_does_not_count_as_the_peers_refusal(parts: Parts) -> None:
    # Only the peer's own mistakes count: seven, then an accepted batch, and the session goes on.
    frames = encode(Hello(1)) + encode(Bets(3, (ANA,))) * 7 + encode(Bets(0, (ANA,)))
    sock = FakeSocket(frames)
    session = run_session(parts, sock)
    session.join(timeout=10)
    assert error_codes(sock) == [ErrorCode.OUT_OF_SEQUENCE] * 7
    assert replies(sock)[-1] == BetsAck(1)


class TickingSocket(BlockingFakeSocket):
    """The peer's next frame comes `tick` seconds (of the fake clock) after the last."""

    def __init__(self, clock: FakeClock, tick: float, *script: bytes) -> None:
        super().__init__(*script, recv_limit=None)
        self._clock = clock
        self._tick = tick

    def recv(self, size: int, flags: int = 0, /) -> bytes:
        if size == 5:  # a header: the peer's next frame
            self._clock.now += self._tick
        return super().recv(size, flags)


def test_refused_frames_do_not_keep_a_connection_alive(parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    # A refused frame every second must not keep a connection past its idle timeout.
    parts.config = dataclasses.replace(parts.config, idle_timeout_s=4.0)
    monkeypatch.setattr(policy, "MAX_REFUSALS", 1000)
    clock = FakeClock()
    sock = TickingSocket(clock, 1.0, encode(Hello(1)) + encode(WinnersQuery()) * 100)
    session = run_session(parts, sock, clock)
    session.join(timeout=10)
    assert session.successful()
    codes = error_codes(sock)
    assert codes[-1] is ErrorCode.TOO_SLOW
    assert codes[:-1] == [ErrorCode.UNEXPECTED_MESSAGE] * 4  # at t=2, 3, 4, 5; then the deadline (t=5) has passed
    last = replies(sock)[-1]
    assert isinstance(last, Error) and "idle for 4.0s" in last.detail


def test_accepted_frames_do_keep_it_alive(parts: Parts) -> None:
    parts.config = dataclasses.replace(parts.config, idle_timeout_s=4.0)
    clock = FakeClock()
    sock = TickingSocket(clock, 1.0, encode(Hello(1)) + encode(Done()) * 30)
    session = run_session(parts, sock, clock)
    gevent.idle()
    assert sock.blocked == 1 and not session.ready()  # 30 s later, still served
    assert replies(sock) == [Welcome(0, False, parts.store.contest, EMPTY_DIGEST), *[DoneAck()] * 30]
    session.kill(block=True, timeout=10)


def test_hello_must_come_within_the_hello_timeout(parts: Parts) -> None:
    clock = FakeClock()
    sock = TickingSocket(clock, 1.0, encode(Done()) * 100)  # refused frames, one a second
    session = run_session(parts, sock, clock)
    session.join(timeout=10)
    assert error_codes(sock) == [ErrorCode.UNEXPECTED_MESSAGE] * 5 + [ErrorCode.TOO_SLOW]  # t=1..5, then late
    last = replies(sock)[-1]
    assert isinstance(last, Error) and "no Hello within" in last.detail


def test_a_batch_past_the_quota_is_refused_whole(parts: Parts) -> None:
    bets = tuple(ANA._replace(document=str(n)) for n in range(5))
    sock = FakeSocket(
        encode(Hello(1)) + encode(Bets(0, bets[:3])) + encode(Bets(3, bets[:3])) + encode(Bets(3, bets[:2]))
    )
    session = run_session(parts, sock)
    session.join(timeout=10)
    welcome, first, refusal, last = replies(sock)
    assert (welcome, first, last) == (Welcome(0, False, parts.store.contest, EMPTY_DIGEST), BetsAck(3), BetsAck(5))
    assert isinstance(refusal, Error) and refusal.code is ErrorCode.QUOTA_EXCEEDED
    assert "quota of 5 bets" in refusal.detail and "bets #3..#5" in refusal.detail
    assert parts.store.durable_count(1) == 5


class SharedLog:
    """Which connection each frame sent belongs to, in order."""

    def __init__(self) -> None:
        self.order: list[str] = []


class RecordingSocket(BlockingFakeSocket):
    def __init__(self, name: str, log: SharedLog, *script: bytes) -> None:
        super().__init__(*script)
        self._name = name
        self._log = log

    def send(self, data: bytes | memoryview, /) -> int:
        self._log.order.append(self._name)
        return super().send(data)


def test_a_session_yields_after_every_frame(parts: Parts) -> None:
    # Finding 1: with its frames always ready, one session never let another run.
    log = SharedLog()
    frames = encode(Hello(1)) + encode(Done()) * 50
    first = run_session(parts, RecordingSocket("a", log, frames))
    second = run_session(parts, RecordingSocket("b", log, encode(Hello(2)) + encode(Done()) * 50))
    gevent.idle()
    assert sorted(log.order) == ["a"] * 51 + ["b"] * 51
    assert log.order[:6] == ["a", "b", "a", "b", "a", "b"]
    gevent.killall([first, second], block=True, timeout=10)


def test_warnings_stay_within_twice_the_bytes_received(parts: Parts, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lottery_gevent.session")
    frames = encode(Done()) * 8
    sock = FakeSocket(frames)
    run_session(parts, sock).join(timeout=10)
    warnings = [record.getMessage() for record in caplog.records if "unexpected_message" in record.getMessage()]
    assert warnings == []  # 40 bytes received: not one 100-byte line is earned
    summary = [record.getMessage() for record in caplog.records if "suppressed_warnings" in record.getMessage()]
    assert summary == ["action: suppressed_warnings | result: fail | ip: 192.0.2.1 | agency: None | count: 8"]


def test_the_first_few_warnings_of_large_frames_are_logged(parts: Parts, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lottery_gevent.session")
    bets = tuple(ANA._replace(first_name="A" * 100, document=str(n)) for n in range(60))
    sock = FakeSocket(encode(Hello(1)) + encode(Bets(7, bets)) * 8)  # out of sequence, 8 KB each
    run_session(parts, sock).join(timeout=10)
    logged = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert sum("apuesta_recibida | result: fail" in line for line in logged) == 3
    assert any("suppressed_warnings" in line and "count: 5" in line for line in logged)
    assert any("8 refused frames" in line for line in logged)
