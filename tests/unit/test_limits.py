"""lottery_gevent.limits: the rate limiter, the per-connection log budget, the
per-address counter and a session's deadline, each with a fake clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from lottery_gevent.config import ServerConfig
from lottery_gevent.limits import AddressCounter, ConnectionLimits, LogBudget, RateLimiter
from shared.errors import Timeout
from shared.logs import LINE_OVERHEAD_BYTES, Result, format_action
from shared.protocol import Done, FrameDecoder, encode
from shared.transport import Stream
from tests.unit.fakes import FakeSocket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> Iterator[logging.Logger]:
    caplog.set_level(logging.INFO, logger="tests.unit.limits")
    yield logging.getLogger("tests.unit.limits")


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= level]


def test_the_rate_limiter_lets_a_burst_through_then_one_line_per_period() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.allow() for _ in range(5)] == [True, True, True, False, False]
    assert limiter.suppressed == 2
    clock.now += 0.5  # one token
    assert [limiter.allow(), limiter.allow()] == [True, False]
    clock.now += 3600  # never more than the burst
    assert sum(limiter.allow() for _ in range(10)) == 3


def test_a_line_after_dropped_ones_says_how_many(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=clock)
    for _ in range(4):
        limiter.log(logger, logging.INFO, "accept_connection", Result.FAIL, ip="192.0.2.1")
    clock.now += 1
    limiter.log(logger, logging.INFO, "accept_connection", Result.FAIL, ip="192.0.2.1")
    assert messages(caplog) == [
        "action: accept_connection | result: fail | ip: 192.0.2.1",
        "action: accept_connection | result: fail | ip: 192.0.2.1 | suppressed: 3",
    ]


def test_dropped_lines_still_show_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tests.unit.limits.debug")
    logger = logging.getLogger("tests.unit.limits.debug")
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=FakeClock())
    for _ in range(3):
        limiter.log(logger, logging.WARNING, "close_connection", Result.FAIL)
    assert [record.levelno for record in caplog.records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_the_log_budget_is_twice_the_bytes_received(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    received = [0]
    budget = LogBudget(lambda: received[0], max_lines=100)
    line_size = len(format_action("unexpected_message", Result.FAIL, error="x")) + LINE_OVERHEAD_BYTES
    budget.log(logger, logging.WARNING, "unexpected_message", Result.FAIL, error="x")
    assert messages(caplog) == [] and budget.suppressed == 1  # nothing received, nothing logged
    received[0] = line_size // 2 + 1  # enough for one line
    budget.log(logger, logging.WARNING, "unexpected_message", Result.FAIL, error="x")
    budget.log(logger, logging.WARNING, "unexpected_message", Result.FAIL, error="x")
    assert len(messages(caplog)) == 1 and budget.suppressed == 2
    received[0] = 1_000_000
    for _ in range(10):
        budget.log(logger, logging.WARNING, "unexpected_message", Result.FAIL, error="x")
    assert len(messages(caplog)) == 11


def test_the_log_budget_stops_after_a_few_lines(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    budget = LogBudget(lambda: 10**9, max_lines=3)
    for _ in range(10):
        budget.log(logger, logging.WARNING, "apuesta_recibida", Result.FAIL, cantidad=1)
    assert len(messages(caplog)) == 3 and budget.suppressed == 7


def test_the_address_counter_caps_each_address() -> None:
    counter = AddressCounter(cap=2)
    assert [counter.enter("a"), counter.enter("a"), counter.enter("a"), counter.enter("b")] == [True, True, False, True]
    counter.leave("a")
    assert counter.enter("a") and counter.live("a") == 2
    counter.leave("a")
    counter.leave("a")
    counter.leave("b")
    assert counter.live("a") == counter.live("b") == 0


def test_an_address_cap_of_zero_means_no_cap() -> None:
    counter = AddressCounter(cap=0)
    assert all(counter.enter("a") for _ in range(10_000))


CONFIG = ServerConfig(hello_timeout_s=5, idle_timeout_s=60, frame_timeout_s=10)


def test_the_deadline_is_hello_then_idle_and_refusals_never_move_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lottery_gevent.limits.MAX_REFUSALS", 3, raising=False)
    clock = FakeClock()
    limits = ConnectionLimits(CONFIG, lambda: 0, accepted_at=clock.now - 1, clock=clock)
    assert limits.remaining_s() == 4  # the Hello timeout counts from the accept
    clock.now += 2
    limits.frame_handled()  # Hello, accepted
    assert limits.remaining_s() == 60
    clock.now += 50
    assert not limits.refused()
    limits.frame_handled()  # a refused frame does not count as activity
    assert limits.remaining_s() == 10
    assert not limits.refused()
    assert limits.refused()  # the third: the budget is spent
    assert limits.refusals == 3


def test_receiving_past_the_deadline_is_too_slow_and_names_it() -> None:
    clock = FakeClock()
    sock = FakeSocket(encode(Done()))
    limits = ConnectionLimits(CONFIG, lambda: 0, clock=clock)
    assert limits.receive(Stream(sock), FrameDecoder(), before_hello=True) == Done()
    assert sock.timeout == 5  # what is left of the deadline bounds the wait
    clock.now += 5
    with pytest.raises(Timeout, match=r"no Hello within 5(\.0)?s"):
        limits.receive(Stream(sock), FrameDecoder(), before_hello=True)
    limits.frame_handled()
    clock.now += 60
    with pytest.raises(Timeout, match=r"idle for 60(\.0)?s \(refused frames do not count\)"):
        limits.receive(Stream(sock), FrameDecoder(), before_hello=False)


def test_a_timeout_that_ends_at_the_deadline_is_reported_as_the_deadline() -> None:
    clock = FakeClock()

    class LateSocket(FakeSocket):
        def recv(self, size: int, flags: int = 0, /) -> bytes:
            clock.now += 5  # the wait used up the deadline
            raise TimeoutError

    limits = ConnectionLimits(CONFIG, lambda: 0, clock=clock)
    with pytest.raises(Timeout, match="no Hello within"):
        limits.receive(Stream(LateSocket()), FrameDecoder(), before_hello=True)
