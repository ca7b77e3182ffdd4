# The server's limits as policy: deadlines, refusal counts and log budgets,
# computed from a clock and counters. The session and the server apply them.
# Guarantees: every deadline is absolute (the Hello deadline counts from the
# accept, the idle one from the last frame handled) and refused frames never
# move it; lines any peer can cause pass one LogLimiter (server-wide: a token
# bucket; per connection: a few lines, never more log bytes than twice the
# bytes the connection sent; per certificate: a line a second), and the count
# of dropped lines is told; unauthenticated connections hold at most
# UNAUTHENTICATED_SHARE of the pool, the oldest giving way (OldestFirst).
# Never: does I/O, or sleeps.
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

from lottery_gevent.config import ServerConfig
from shared.logs import LINE_OVERHEAD_BYTES, Result, format_action

Clock = Callable[[], float]

#: Server-wide lines about limits: a burst of this many, then one per 1/LIMIT_LOG_RATE_PER_S seconds.
LIMIT_LOG_BURST = 20
LIMIT_LOG_RATE_PER_S = 1.0
#: Warnings one connection may cause before the rest are only counted.
WARNINGS_PER_CONNECTION = 3
#: Log bytes a connection may cause per byte it sent.
LOG_BYTES_PER_BYTE_RECEIVED = 2
#: Seconds a last word (a refusal, an Error before closing) may take to send.
LAST_WORD_S = 1.0
#: The refused frame that closes a connection (TOO_MANY_REFUSALS).
MAX_REFUSALS = 8
#: Connections one certificate may hold at once: its session, and one taking it over.
CONNECTIONS_PER_IDENTITY = 2
#: The part of the pool that connections without a handshake and Hello done may hold.
UNAUTHENTICATED_SHARE = 0.5
Member = TypeVar("Member", bound=Hashable)


class LogLimiter:
    """A token bucket of `burst` lines refilled at `rate_per_s` (0: `burst` lines in all); given
    `received` (the bytes the peer sent so far), log bytes also stay within LOG_BYTES_PER_BYTE_RECEIVED
    times that. Lines past the budget go to DEBUG and are counted in `suppressed`, which the next
    line let through carries (so each drop is told once: there, or at close).
    """

    def __init__(
        self,
        burst: int,
        rate_per_s: float = 0.0,
        received: Callable[[], int] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._rate = rate_per_s
        self._received = received
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._spent_bytes = 0
        #: Lines dropped since the last one let through.
        self.suppressed = 0

    def allow(self, size: int = 0) -> bool:
        """Take a token (and `size` log bytes) if the budget has them: True means "log this line"."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        over_bytes = (
            self._received is not None and self._spent_bytes + size > self._received() * LOG_BYTES_PER_BYTE_RECEIVED
        )
        if self._tokens < 1.0 or over_bytes:
            self.suppressed += 1
            return False
        self._tokens -= 1.0
        self._spent_bytes += size
        return True

    def log(self, logger: logging.Logger, level: int, action: str, outcome: Result, **details: object) -> None:
        """Log the line at `level` if the budget allows (with `suppressed: N` after drops), else at DEBUG."""
        if not logger.isEnabledFor(level):
            return
        if self.suppressed:
            details["suppressed"] = self.suppressed
        line = format_action(action, outcome, **details)
        if self.allow(len(line.encode("utf-8", "replace")) + LINE_OVERHEAD_BYTES):
            self.suppressed = 0
            logger.log(level, "%s", line)
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", line)


def server_log_limiter(clock: Clock = time.monotonic) -> LogLimiter:
    """The server-wide limiter of lines about refused, silent or misbehaving connections."""
    return LogLimiter(LIMIT_LOG_BURST, LIMIT_LOG_RATE_PER_S, clock=clock)


def certificate_log_limiter(clock: Clock = time.monotonic) -> LogLimiter:
    """Lines about one certificate's refused connections: one a second, apart from anonymous noise."""
    return LogLimiter(1, 1.0, clock=clock)


class OldestFirst(Generic[Member]):
    """Members in arrival order, at most `cap` of them (the unauthenticated connections)."""

    def __init__(self, cap: int) -> None:
        self._cap = max(1, cap)
        self._members: dict[Member, None] = {}

    def admit(self, member: Member) -> Member | None:
        """Add `member`; past the cap, remove and return the oldest, which must give way."""
        self._members[member] = None
        return self.evict() if len(self._members) > self._cap else None

    def evict(self) -> Member | None:
        """Remove and return the oldest member, which must give way (None: there is none)."""
        oldest = next(iter(self._members), None)
        if oldest is not None:
            del self._members[oldest]
        return oldest

    def leave(self, member: Member) -> None:
        """`member` is no longer counted (authenticated, or gone); a no-op if it was not."""
        self._members.pop(member, None)


class AddressCounter:
    """Live connections per peer address; `cap` is the most one address may hold (0: no cap)."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._live: Counter[str] = Counter()

    def enter(self, address: str) -> bool:
        """Count a new connection from `address`; False (and nothing counted) if it is over the cap."""
        if self._cap and self._live[address] >= self._cap:
            return False
        self._live[address] += 1
        return True

    def leave(self, address: str) -> None:
        """A connection counted by `enter` has ended."""
        self._live[address] -= 1
        if self._live[address] <= 0:
            del self._live[address]


class ReadBounds(NamedTuple):
    """shared.transport.receive_message's bounds for the next frame, in seconds from now."""

    frame_s: float
    start_within_s: float
    end_within_s: float | None
    late: str


class ConnectionPolicy:
    """One session's deadlines, refusals and warnings.

    Until Hello, the whole of it (first byte, TLS handshake, Hello frame) must end by the Hello
    deadline, counted from `accepted_at` (None: now); then each frame must start by the idle
    deadline, which every frame handled without a refusal moves, and end within the frame timeout
    of its first byte. `received` gives the bytes the connection sent so far; `limit_log` is the
    server-wide limiter (None: a fresh one); `on_identified` is called once Hello is accepted.
    """

    def __init__(
        self,
        config: ServerConfig,
        received: Callable[[], int],
        limit_log: LogLimiter | None = None,
        accepted_at: float | None = None,
        clock: Clock = time.monotonic,
        on_identified: Callable[[], None] | None = None,
    ) -> None:
        self._on_identified = on_identified
        self._hello_s = config.hello_timeout_s
        self._idle_s = config.idle_timeout_s
        self._frame_s = config.frame_timeout_s
        self._clock = clock
        self._deadline = (clock() if accepted_at is None else accepted_at) + config.hello_timeout_s
        self._identified = False
        self._refused_this_frame = False
        #: Refused frames so far.
        self.refusals = 0
        #: This connection's warnings (refused frames).
        self.warnings = LogLimiter(WARNINGS_PER_CONNECTION, received=received, clock=clock)
        #: Lines about the connection ending in failure (server-wide).
        self.limit_log = limit_log or server_log_limiter(clock)

    def remaining_s(self) -> float:
        """Seconds left before the current deadline (<= 0: past it)."""
        return self._deadline - self._clock()

    def read_bounds(self) -> ReadBounds:
        """The bounds of shared.transport.receive_message for the next frame."""
        remaining = self.remaining_s()
        if not self._identified:
            return ReadBounds(self._frame_s, remaining, remaining, f"no Hello within {self._hello_s}s")
        return ReadBounds(self._frame_s, remaining, None, f"idle for {self._idle_s}s (refused frames do not count)")

    def identified(self) -> None:
        """Hello was accepted: from now on the idle deadline applies."""
        self._identified = True
        if self._on_identified is not None:
            self._on_identified()

    def refused(self) -> bool:
        """Count a refused frame; True when that was the last one allowed (MAX_REFUSALS)."""
        self.refusals += 1
        self._refused_this_frame = True
        return self.refusals >= MAX_REFUSALS

    def frame_handled(self) -> None:
        """A frame was handled: unless refused, the deadline moves to the idle timeout from now."""
        if not self._refused_this_frame:
            self._deadline = self._clock() + self._idle_s
        self._refused_this_frame = False

    def log_summary(self, logger: logging.Logger, **details: object) -> None:
        """At close: one line with the count of warnings not logged, if any."""
        if self.warnings.suppressed:
            self.limit_log.log(
                logger, logging.WARNING, "suppressed_warnings", Result.FAIL, **details, count=self.warnings.suppressed
            )
