# Strategy: the draw barrier. One gevent AsyncResult stands for "the draw's
# result". Every winners query blocks on it; nobody polls, and no answer is ever
# built from partial data, because the result is set only after the one draw
# over the complete file has finished.
#
# The draw starts when the configured number of agencies are done, in a greenlet
# of its own (so that no connection's fate can interrupt it). If it fails, the
# AsyncResult carries the exception and every waiter receives it.
#
# While agencies are missing, a greenlet logs every `wait_log_s` who the draw
# still waits for (`draw_wait`, never `sorteo`: log readers count that one), so
# an agency that died is named, not waited for in silence.
from __future__ import annotations

import heapq
import logging
from collections.abc import Mapping

import gevent
from gevent.event import AsyncResult

from lottery_gevent.storage import BetStore, StorageFailure
from shared.errors import LotteryError
from shared.logs import Result, log_action
from shared.transport import Stream

logger = logging.getLogger(__name__)

#: The most pending agency ids one `draw_wait` line lists (the rest are counted).
MAX_PENDING_LISTED = 20


class DrawFailed(LotteryError):
    """The draw could not read the stored bets; no winners can be given."""


class Lottery:
    """Which agencies are done, and the draw once they all are.

    Args:
        store: the bet store, already open (it knows who was done before a restart).
        agencies: how many agencies take part, with ids 1..agencies. Zero means
            nobody takes part and the draw never runs.
        wait_log_s: while agencies are missing, log them this often (None: never).
    """

    def __init__(self, store: BetStore, agencies: int, wait_log_s: float | None = None) -> None:
        self._store = store
        self._agencies = agencies
        #: Agencies not done yet: the draw starts when this empties.
        self._pending = set(range(1, agencies + 1)) - store.done_agencies()
        self._draw: gevent.Greenlet | None = None
        self._wait_log_s = wait_log_s
        self._reporter: gevent.Greenlet | None = None
        #: The draw barrier: set to {agency: [winning documents]} by the draw, or to its exception.
        self._barrier: AsyncResult = AsyncResult()

    def knows(self, agency: int) -> bool:
        return 1 <= agency <= self._agencies

    def is_done(self, agency: int) -> bool:
        return self._store.is_done(agency)

    def start(self) -> None:
        """Start the draw now if a previous run already saw every agency done; else report who is missing."""
        self._draw_if_complete()
        if self._draw is None and self._pending and self._wait_log_s is not None:
            self._reporter = gevent.spawn(self._report_pending, self._wait_log_s)

    def mark_done(self, agency: int) -> None:
        """Record the agency as done (durably, idempotently); start the draw if it was the last.

        Raises:
            StorageFailure: the done mark could not be written.
        """
        self._store.mark_done(agency)
        self._pending.discard(agency)
        self._draw_if_complete()

    @property
    def drawn(self) -> bool:
        """True once the draw is over (it succeeded or failed)."""
        return bool(self._barrier.ready())

    def await_draw(self, stream: Stream) -> bool:
        """Block until the draw is over (True), or until `stream` is readable or closed (False).

        The wait has no timeout: waiting for the draw is legitimate however long
        it takes. Watching the stream meanwhile means a peer that sends or
        vanishes is noticed at once.
        """
        if self._barrier.ready():
            return True
        stream.wait_readable(self._barrier)
        return bool(self._barrier.ready())

    def winners(self, agency: int) -> list[str]:
        """The agency's winning documents; the draw must be over (see `await_draw`).

        Raises:
            DrawFailed: the draw could not be run.
        """
        assert self._barrier.ready(), "winners() before the draw is over"
        winners: Mapping[int, list[str]] = self._barrier.get(block=False)
        return winners.get(agency, [])

    def stop(self) -> None:
        """Kill a draw still running, and the pending report (shutdown)."""
        if self._reporter is not None:
            self._reporter.kill(block=False)
        if self._draw is not None:
            self._draw.kill(block=True, timeout=1)

    def pending_line(self) -> dict[str, object]:
        """The fields of a `draw_wait` line: done and pending counts, the first pending ids."""
        listed = heapq.nsmallest(MAX_PENDING_LISTED, self._pending)
        fields: dict[str, object] = {
            "done": self._agencies - len(self._pending),
            "pending": len(self._pending),
            "waiting_for": ",".join(map(str, listed)),
        }
        if len(self._pending) > len(listed):
            fields["others"] = len(self._pending) - len(listed)
        return fields

    def _report_pending(self, interval_s: float) -> None:
        while True:
            gevent.sleep(interval_s)
            if not self._pending:
                return
            log_action(logger, logging.INFO, "draw_wait", Result.IN_PROGRESS, **self.pending_line())

    def _draw_if_complete(self) -> None:
        if self._draw is None and self._agencies and not self._pending:
            self._draw = gevent.spawn(self._run_draw)

    def _run_draw(self) -> None:
        try:
            winners = self._store.find_winners()
        except StorageFailure as exc:
            log_action(logger, logging.ERROR, "sorteo", Result.FAIL, error=exc)
            failure = DrawFailed(f"the draw failed: {exc}")
            failure.__cause__ = exc
            self._barrier.set_exception(failure)
            return
        log_action(logger, logging.INFO, "sorteo", Result.SUCCESS)
        self._barrier.set(winners)
