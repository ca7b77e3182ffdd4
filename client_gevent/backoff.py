# Contract: how the client waits between attempts. Capped exponential backoff
# with jitter (each pause between half and all of min(MAX_DELAY_S, BASE_DELAY_S *
# GROWTH**attempt)), so agencies restarted together do not retry in lockstep.
# `failed` answers False, pausing nothing, once attempts have failed for the
# whole window; only `succeeded()` (real progress) restarts that window.
from __future__ import annotations

import logging
import random
import time

import gevent

from shared.logs import Result, log_action

logger = logging.getLogger(__name__)

#: First and longest pause, in seconds: short first, as a refused connect is usually a server about to listen.
BASE_DELAY_S = 0.02
MAX_DELAY_S = 2.0
#: Growth of the ceiling per attempt: an agency sleeps past the server's start by at most half its wait so far.
GROWTH = 1.5


class Backoff:
    """Paces retries for `give_up_after_s` of continuous failure; `rng` makes the jitter repeatable."""

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

    def failed(self, action: str, error: Exception) -> bool:
        """Log the failure as in_progress and pause; False (nothing logged) once the window is over."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elapsed = now - self._failing_since
        if elapsed >= self._window:
            return False
        ceiling = min(MAX_DELAY_S, BASE_DELAY_S * GROWTH**self._attempt)
        delay = min(ceiling * self._rng.uniform(0.5, 1.0), self._window - elapsed)
        self._attempt += 1
        details = {"client_id": self._client_id, "retry_in_s": f"{delay:.2f}", "error": error}
        log_action(logger, logging.INFO, action, Result.IN_PROGRESS, **details)
        gevent.sleep(delay)
        return True
