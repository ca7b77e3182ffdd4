"""lottery_gevent.policy: the log limiter (server-wide and per connection), the
per-address counter and a session's deadlines, each with a fake clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from lottery_gevent import policy
from lottery_gevent.config import ServerConfig
from lottery_gevent.policy import AddressCounter, ConnectionPolicy, LogLimiter, OldestFirst, certificate_log_limiter
from shared.logs import LINE_OVERHEAD_BYTES, Result, format_action


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
    limiter = LogLimiter(3, rate_per_s=2.0, clock=clock)
    assert [limiter.allow() for _ in range(5)] == [True, True, True, False, False]
    assert limiter.suppressed == 2
    clock.now += 0.5  # one token
    assert [limiter.allow(), limiter.allow()] == [True, False]
    clock.now += 3600  # never more than the burst
    assert sum(limiter.allow() for _ in range(10)) == 3


def test_a_line_after_dropped_ones_says_how_many(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = LogLimiter(1, rate_per_s=1.0, clock=clock)
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
    limiter = LogLimiter(1, rate_per_s=1.0, clock=FakeClock())
    for _ in range(3):
        limiter.log(logger, logging.WARNING, "close_connection", Result.FAIL)
    assert [record.levelno for record in caplog.records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_the_log_budget_is_twice_the_bytes_received(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    received = [0]
    budget = LogLimiter(100, received=lambda: received[0])
    told = format_action("unexpected_message", Result.FAIL, error="x", suppressed=1)
    line_size = len(told) + LINE_OVERHEAD_BYTES
    budget.log(logger, logging.WARNING, "unexpected_message", Result.FAIL, error="x")
    assert messages(caplog) == [] and budget.suppressed == 1  # nothing received, nothing logged
    received[0] = line_size // 2 + 1  # enough for one line
    budget.log(logger, logging.WARNING, "unexpected_message", Result.FAIL, error="x")
    budget.log(logger, logging.WARNING, "unexpected_message", Result.FAIL, error="x")
    assert messages(caplog) == [told] and budget.suppressed == 1  # the drop is told by the next line
    received[0] = 1_000_000
    for _ in range(10):
        budget.log(logger, logging.WARNING, "unexpected_message", Result.FAIL, error="x")
    assert len(messages(caplog)) == 11
    assert messages(caplog)[1].endswith("| suppressed: 1")


def test_the_log_budget_stops_after_a_few_lines(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    budget = LogLimiter(3, received=lambda: 10**9)
    for _ in range(10):
        budget.log(logger, logging.WARNING, "apuesta_recibida", Result.FAIL, cantidad=1)
    assert len(messages(caplog)) == 3 and budget.suppressed == 7


def test_the_address_counter_caps_each_address() -> None:
    counter = AddressCounter(cap=2)
    assert [counter.enter("a"), counter.enter("a"), counter.enter("a"), counter.enter("b")] == [True, True, False, True]
    counter.leave("a")
    assert [counter.enter("a"), counter.enter("a")] == [True, False]  # a place was freed, one only
    for _ in range(2):
        counter.leave("a")
    assert [counter.enter("a"), counter.enter("a"), counter.enter("a")] == [True, True, False]  # all freed


def test_an_address_cap_of_zero_means_no_cap() -> None:
    counter = AddressCounter(cap=0)
    assert all(counter.enter("a") for _ in range(10_000))


CONFIG = ServerConfig(hello_timeout_s=5, idle_timeout_s=60, frame_timeout_s=10)


def test_the_deadline_is_hello_then_idle_and_refusals_never_move_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "MAX_REFUSALS", 3)
    clock = FakeClock()
    rules = ConnectionPolicy(CONFIG, lambda: 0, accepted_at=clock.now - 1, clock=clock)
    assert rules.remaining_s() == 4  # the Hello timeout counts from the accept
    assert rules.read_bounds() == (10, 4, 4, "no Hello within 5s")  # first byte and whole frame by then
    clock.now += 2
    rules.identified()
    rules.frame_handled()  # Hello, accepted
    assert rules.remaining_s() == 60
    assert rules.read_bounds() == (10, 60, None, "idle for 60s (refused frames do not count)")
    clock.now += 50
    assert not rules.refused()
    rules.frame_handled()  # a refused frame does not count as activity
    assert rules.remaining_s() == 10
    assert not rules.refused()
    assert rules.refused()  # the third: the budget is spent
    assert rules.refusals == 3


def test_refused_frames_before_hello_never_move_the_hello_deadline() -> None:
    clock = FakeClock()
    rules = ConnectionPolicy(CONFIG, lambda: 0, clock=clock)
    for _ in range(4):
        clock.now += 1
        rules.refused()
        rules.frame_handled()
    assert rules.remaining_s() == 1


# --- issue 18: the unauthenticated share, per-certificate lines ---------------------


def test_oldest_first_gives_the_oldest_member_away_past_its_cap() -> None:
    members: OldestFirst[str] = OldestFirst(2)
    assert members.admit("a") is None and members.admit("b") is None
    assert members.admit("c") == "a"
    members.leave("b")
    assert members.admit("d") is None
    assert members.admit("e") == "c"
    members.leave("nobody")  # no error
    assert members.evict() == "d" and members.evict() == "e" and members.evict() is None


def test_a_certificate_gets_one_line_a_second_then_the_count_of_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = certificate_log_limiter(clock)
    log = logging.getLogger("test.cert")
    with caplog.at_level(logging.INFO, logger="test.cert"):
        for _ in range(5):
            limiter.log(log, logging.INFO, "accept_connection", Result.FAIL, cert="agency-2")
        clock.now += 1.0
        limiter.log(log, logging.INFO, "accept_connection", Result.FAIL, cert="agency-2")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 2 and lines[1].endswith("suppressed: 4")
