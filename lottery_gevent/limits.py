# Strategy: the small bookkeeping objects behind the server's limits, kept out
# of the session and the server so each can be tested alone, with a fake clock:
#
#   - RateLimiter: a token bucket for log lines that any number of peers can
#     cause (refused and timed-out connections). Past its burst it lets one line
#     through per 1/rate seconds; the next line that passes carries the count of
#     those dropped meanwhile, and the dropped ones go to DEBUG.
#   - LogBudget: one connection's warnings. The first few are logged, and only
#     while the connection's log bytes stay within twice the bytes it sent; the
#     rest are counted, and the count is given once, when the connection closes.
#   - AddressCounter: live connections per peer address, for the per-address cap.
#   - ConnectionLimits: one session's deadline (Hello, then idle), refusal
#     count and LogBudget.
#
# They keep their state on the instance (one per server or session), and only
# ConnectionLimits.receive does I/O, through shared.transport.
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from lottery_gevent.config import ServerConfig
from shared.errors import Timeout
from shared.logs import LINE_OVERHEAD_BYTES, Result, format_action
from shared.protocol import FrameDecoder, Message
from shared.transport import Stream, receive_message

Clock = Callable[[], float]

#: Lines about limits (refused or timed-out connections), server-wide: a burst
#: of this many, then one per 1/LIMIT_LOG_RATE_PER_S seconds.
LIMIT_LOG_BURST = 20
LIMIT_LOG_RATE_PER_S = 1.0
#: Warnings one connection may cause before the rest are only counted.
WARNINGS_PER_CONNECTION = 3
#: Log bytes a connection may cause per byte it sent.
LOG_BYTES_PER_BYTE_RECEIVED = 2


class RateLimiter:
    """A token bucket for log lines.

    Args:
        rate_per_s: tokens added per second.
        burst: the bucket's size (and its content at the start).
        clock: seconds, monotonic (a fake one in tests).
    """

    def __init__(self, rate_per_s: float, burst: int, clock: Clock = time.monotonic) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        #: Lines refused since the last one let through.
        self.suppressed = 0

    def allow(self) -> bool:
        """Take a token if there is one: True means "log this line"."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.suppressed += 1
        return False

    def log(self, logger: logging.Logger, level: int, action: str, outcome: Result, **details: object) -> None:
        """Log the line at `level` if a token is left (with `suppressed: N` if lines were dropped), else at DEBUG."""
        if not logger.isEnabledFor(level):
            return
        if self.allow():
            dropped, self.suppressed = self.suppressed, 0
            if dropped:
                details["suppressed"] = dropped
            logger.log(level, "%s", format_action(action, outcome, **details))
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", format_action(action, outcome, **details))


class LogBudget:
    """What one connection may make the server write at WARNING.

    Args:
        received: the bytes the connection has sent so far (it only grows).
        max_lines: warnings logged before the rest are only counted.
        bytes_per_byte: log bytes allowed per byte received.
    """

    def __init__(
        self,
        received: Callable[[], int],
        max_lines: int = WARNINGS_PER_CONNECTION,
        bytes_per_byte: int = LOG_BYTES_PER_BYTE_RECEIVED,
    ) -> None:
        self._received = received
        self._max_lines = max_lines
        self._bytes_per_byte = bytes_per_byte
        self._spent = 0
        self._lines = 0
        #: Warnings not logged (told once, at close).
        self.suppressed = 0

    def log(self, logger: logging.Logger, level: int, action: str, outcome: Result, **details: object) -> None:
        """Log the line if the budget allows, else count it (and log it at DEBUG)."""
        if not logger.isEnabledFor(level):
            return
        line = format_action(action, outcome, **details)
        size = len(line.encode("utf-8", "replace")) + LINE_OVERHEAD_BYTES
        if self._lines < self._max_lines and self._spent + size <= self._received() * self._bytes_per_byte:
            self._lines += 1
            self._spent += size
            logger.log(level, "%s", line)
            return
        self.suppressed += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", line)


class AddressCounter:
    """Live connections per peer address.

    Args:
        cap: the most connections one address may hold (0: no cap).
    """

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

    def live(self, address: str) -> int:
        return self._live[address]


class ConnectionLimits:
    """One session's limits: its deadline, its refusals, its warnings.

    The deadline is the Hello timeout from `accepted_at`; every frame handled
    without a refusal moves it to the idle timeout from then. Refused frames
    never move it.

    Args:
        config: the timeouts (hello, idle, frame) and max_refusals are read.
        received: the bytes the connection has sent so far.
        limit_log: the server-wide limiter of lines about misbehaving connections.
        accepted_at: when the connection was accepted, by `clock` (None: now).
        clock: seconds, monotonic.
    """

    def __init__(
        self,
        config: ServerConfig,
        received: Callable[[], int],
        limit_log: RateLimiter | None = None,
        accepted_at: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._hello_s = config.hello_timeout_s
        self._idle_s = config.idle_timeout_s
        self._frame_s = config.frame_timeout_s
        self._max_refusals = config.max_refusals
        self._clock = clock
        self._deadline = (clock() if accepted_at is None else accepted_at) + config.hello_timeout_s
        self._refused_this_frame = False
        #: Refused frames so far.
        self.refusals = 0
        #: This connection's warnings (refused frames).
        self.warnings = LogBudget(received)
        #: Lines about the connection ending in failure (server-wide).
        self.limit_log = limit_log or RateLimiter(LIMIT_LOG_RATE_PER_S, LIMIT_LOG_BURST, clock)

    def remaining_s(self) -> float:
        """Seconds left before the deadline (<= 0: past it)."""
        return self._deadline - self._clock()

    def receive(self, stream: Stream, decoder: FrameDecoder, before_hello: bool) -> Message:
        """The next frame, if it starts before the deadline and ends within the frame timeout.

        Raises:
            Timeout: the deadline passed (the reason says which one), or a frame was too slow.
            PeerClosed, ProtocolError: as receive_message.
        """
        if before_hello:
            too_slow = f"no Hello within {self._hello_s}s"
        else:
            too_slow = f"idle for {self._idle_s}s (refused frames do not count)"
        remaining = self.remaining_s()
        if remaining <= 0:
            raise Timeout(too_slow)
        stream.settimeout(remaining)
        try:
            return receive_message(stream, decoder, self._frame_s)
        except Timeout as exc:
            if self.remaining_s() > 0:
                raise  # the frame timeout
            raise Timeout(too_slow) from exc

    def refused(self) -> bool:
        """Count a refused frame; True when that was the last one allowed."""
        self.refusals += 1
        self._refused_this_frame = True
        return self.refusals >= self._max_refusals

    def frame_handled(self) -> None:
        """A frame was handled: if it was not refused, the deadline moves to the idle timeout from now."""
        if not self._refused_this_frame:
            self._deadline = self._clock() + self._idle_s
        self._refused_this_frame = False

    def log_summary(self, logger: logging.Logger, **details: object) -> None:
        """At close: one line with the count of warnings not logged, if any."""
        if self.warnings.suppressed:
            self.limit_log.log(
                logger, logging.WARNING, "suppressed_warnings", Result.FAIL, **details, count=self.warnings.suppressed
            )
