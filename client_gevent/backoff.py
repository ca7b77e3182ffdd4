# Strategy: how the client waits between attempts. Capped exponential backoff
# with jitter (each pause is a random fraction between half and all of
# min(cap, base * GROWTH**attempt)), so that agencies restarted together do not
# retry in lockstep. The client gives up only after failing continuously for
# `give_up_after_s`; any progress (`succeeded()`) restarts that window.
from __future__ import annotations

import logging
import random
import time

import gevent

from shared.errors import LotteryError
from shared.logs import Result, log_action

logger = logging.getLogger(__name__)

#: First pause, and the longest one, in seconds. The first is short because agencies
#: start together with the server (no start order in Compose or Swarm): a refused
#: connect is usually a server a few tens of milliseconds from listening.
BASE_DELAY_S = 0.02
MAX_DELAY_S = 2.0
#: How much each pause's ceiling grows per attempt. An agency waiting for a server
#: that is still starting may sleep past its start for up to the current pause;
#: with 1.5 that is about half the time already waited (with 2 it would be all of
#: it). Still a few dozen attempts at most in a 30 s retry window.
GROWTH = 1.5


class GaveUp(LotteryError):
    """Attempts kept failing for longer than the retry window."""


class Backoff:
    """Paces retries and decides when to stop.

    Args:
        give_up_after_s: how long attempts may keep failing before GaveUp.
        client_id: for the log lines.
        rng: source of jitter (a seeded one makes tests repeatable).
    """

    def __init__(self, give_up_after_s: float, client_id: int, rng: random.Random | None = None) -> None:
        self._window = give_up_after_s
        self._client_id = client_id
        self._rng = rng or random.Random()
        self._attempt = 0
        self._failing_since: float | None = None

    def succeeded(self) -> None:
        """Progress was made: the next failure starts a fresh window."""
        self._attempt = 0
        self._failing_since = None

    def failed(self, action: str, error: Exception) -> None:
        """Log the failure as in_progress and pause before the next attempt.

        Raises:
            GaveUp: failures have lasted longer than the window (nothing logged:
                the caller logs the one `fail` line).
        """
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elapsed = now - self._failing_since
        if elapsed >= self._window:
            raise GaveUp(f"{action} kept failing for {elapsed:.1f}s: {error}") from error
        ceiling = min(MAX_DELAY_S, BASE_DELAY_S * GROWTH**self._attempt)
        delay = min(ceiling * self._rng.uniform(0.5, 1.0), self._window - elapsed)
        self._attempt += 1
        log_action(
            logger,
            logging.INFO,
            action,
            Result.IN_PROGRESS,
            client_id=self._client_id,
            retry_in_s=f"{delay:.2f}",
            error=error,
        )
        gevent.sleep(delay)
