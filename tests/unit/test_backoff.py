"""client_gevent.backoff: capped exponential pauses with jitter, a retry window, in_progress lines.

A fake clock stands in for time.monotonic and a recorder for gevent.sleep: the
pauses are checked, never taken.
"""

from __future__ import annotations

import logging
import random
import types

import pytest

from client_gevent import backoff
from client_gevent.backoff import BASE_DELAY_S, GROWTH, MAX_DELAY_S, Backoff
from shared.errors import ConnectFailed
from tests.support.processes import parse_action


class FakeClock:
    """time.monotonic and gevent.sleep in one: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(backoff, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.setattr(backoff, "gevent", types.SimpleNamespace(sleep=fake.sleep))
    return fake


ERROR = ConnectFailed("cannot connect to server:12345: refused")


def test_pauses_grow_exponentially_with_jitter_up_to_the_cap(clock: FakeClock) -> None:
    pacer = Backoff(give_up_after_s=1000, client_id=1, rng=random.Random(7))
    for _ in range(20):
        pacer.failed("connect", ERROR)
    for attempt, pause in enumerate(clock.sleeps):
        ceiling = min(MAX_DELAY_S, BASE_DELAY_S * GROWTH**attempt)
        assert ceiling / 2 <= pause <= ceiling
    assert max(clock.sleeps) <= MAX_DELAY_S


def test_the_same_seed_gives_the_same_pauses(clock: FakeClock) -> None:
    for _ in range(2):
        pacer = Backoff(give_up_after_s=1000, client_id=1, rng=random.Random(3))
        for _ in range(5):
            pacer.failed("connect", ERROR)
    assert clock.sleeps[:5] == clock.sleeps[5:]


def test_gives_up_once_failures_outlast_the_window(clock: FakeClock) -> None:
    pacer = Backoff(give_up_after_s=5, client_id=1, rng=random.Random(1))
    results = [pacer.failed("connect", ERROR) for _ in range(100)]
    assert False in results
    gave_up_at = results.index(False)
    assert all(results[:gave_up_at])
    assert len(clock.sleeps) == gave_up_at  # no pause once it gives up
    assert sum(clock.sleeps) == pytest.approx(5)  # the last pause is cut to end with the window


def test_success_restarts_the_window_and_the_ladder(clock: FakeClock) -> None:
    pacer = Backoff(give_up_after_s=3, client_id=1, rng=random.Random(1))
    # Each round of three failures pauses at least (1 + GROWTH + GROWTH**2) * BASE_DELAY_S / 2 in all.
    rounds = int(2 * 3 / ((1 + GROWTH + GROWTH**2) * BASE_DELAY_S / 2)) + 1
    for _ in range(rounds):
        for _ in range(3):
            pacer.failed("connect", ERROR)
        pacer.succeeded()
    assert clock.sleeps[3] <= BASE_DELAY_S  # back to the first rung
    assert sum(clock.sleeps) > 3  # far longer than one window in all, without giving up


def test_the_first_retry_comes_within_tens_of_milliseconds(clock: FakeClock) -> None:
    # Agencies start with the server, not after it: the first refused connect is retried quickly.
    Backoff(give_up_after_s=30, client_id=1, rng=random.Random(5)).failed("connect", ERROR)
    assert clock.sleeps[0] <= 0.05


def test_each_retry_is_logged_in_progress(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=backoff.logger.name)
    Backoff(give_up_after_s=10, client_id=4, rng=random.Random(0)).failed("connect", ERROR)
    (record,) = caplog.records
    fields = parse_action(record.getMessage())
    assert fields is not None
    assert (fields["action"], fields["result"], fields["client_id"]) == ("connect", "in_progress", "4")
    assert float(fields["retry_in_s"]) == pytest.approx(clock.sleeps[0], abs=0.005)
    assert "refused" in fields["error"]
