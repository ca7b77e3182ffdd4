# The draw barrier: one gevent AsyncResult stands for the draw's result.
# Guarantees: the draw runs once, when every configured agency is done or at
# the sales close (`close_sales`: over every stored bet, logged once), in a
# greenlet of its own (no connection's fate interrupts it), over the complete
# store; the result is set only after it finished (or carries its
# StorageFailure), so no answer is built from partial data. While agencies are
# missing it logs every WAIT_LOG_S who it waits for (`draw_wait`).
# Never: polls, or touches a connection (waiters pass what may interrupt them).
from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Mapping

import gevent
from gevent.event import AsyncResult

from lottery_gevent.storage import BetStore, StorageFailure
from shared.logs import Result, log_action

logger = logging.getLogger(__name__)

#: The most pending agency ids one `draw_wait` line lists (the rest are counted).
MAX_PENDING_LISTED = 20
#: Seconds between two `draw_wait` lines while agencies are missing.
WAIT_LOG_S = 5.0


class Lottery:
    """Which agencies are done, and the draw once they all are.

    Args:
        store: the bet store, already open (it knows who was done before a restart).
        agencies: how many agencies take part (ids 1..agencies); zero: the draw never runs.
    """

    def __init__(self, store: BetStore, agencies: int) -> None:
        self._store = store
        self._agencies = agencies
        #: Agencies not done yet: the draw starts when this empties.
        self._pending = set(range(1, agencies + 1)) - store.done_agencies()
        self._draw: gevent.Greenlet | None = None
        self._reporter: gevent.Greenlet | None = None
        #: Set to {agency: [winning documents]} by the draw, or to its exception.
        self._barrier: AsyncResult = AsyncResult()
        self.sales_open = True
        #: The total of bets each agency said it has (Hello), for the status page.
        self.totals: dict[int, int] = {}

    def knows(self, agency: int) -> bool:
        return 1 <= agency <= self._agencies

    def is_done(self, agency: int) -> bool:
        return self._store.is_done(agency)

    def start(self) -> None:
        """Start the draw now if a previous run already saw every agency done; else report who is missing."""
        self._draw_if_complete()
        if self._draw is None and self._pending:
            self._reporter = gevent.spawn(self._report_pending, WAIT_LOG_S)

    def mark_done(self, agency: int) -> None:
        """Record the agency as done (durably, idempotently); start the draw if it was the last.

        Raises:
            StorageFailure: the done mark could not be written.
        """
        self._store.mark_done(agency)
        self._pending.discard(agency)
        self._draw_if_complete()

    def close_sales(self, by: str, at: str) -> None:
        """Refuse bets from now on (the caller recorded the close) and draw at once; idempotent."""
        if self.sales_open:
            self.sales_open = False
            log_action(logger, logging.INFO, "sales_close", Result.SUCCESS, by=by, at=at, **self.pending_line())
            if self._draw is None:
                self._draw = gevent.spawn(self._run_draw)

    @property
    def state(self) -> str:
        """The draw's state: waiting, running, done or failed."""
        if not self._barrier.ready():
            return "waiting" if self._draw is None else "running"
        return "done" if self._barrier.successful() else "failed"

    def pending(self) -> list[int]:
        return sorted(self._pending)

    @property
    def drawn(self) -> bool:
        """True once the draw is over (it succeeded or failed)."""
        return bool(self._barrier.ready())

    def await_draw(self, watch: Callable[[], bytes]) -> bytes | None:
        """Block, without a deadline, until the draw is over (None) or `watch()` returns first (what it returned).

        `watch` waits on the connection (a peek). The draw interrupts it as gevent.Timeout interrupts a
        wait, by throwing into the waiting greenlet, so a waiting session costs no greenlet of its own.
        """
        if self._barrier.ready():
            return None
        waiter, waiting = gevent.getcurrent(), [True]

        def interrupt(_: object) -> None:
            if waiting[0]:
                waiter.throw(_DrawOver())

        self._barrier.rawlink(interrupt)
        try:
            return watch()
        except _DrawOver:
            return None
        finally:
            waiting[0] = False
            self._barrier.unlink(interrupt)

    def winners(self, agency: int) -> list[str]:
        """The agency's winning documents; the draw must be over (see `await_draw`).

        Raises:
            StorageFailure: the draw could not be run.
        """
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
            if not self._pending or not self.sales_open:
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
            failure = StorageFailure(f"the draw failed: {exc}")
            failure.__cause__ = exc
            self._barrier.set_exception(failure)
            return
        log_action(logger, logging.INFO, "sorteo", Result.SUCCESS)
        self._barrier.set(winners)


class _DrawOver(Exception):
    """Thrown into a greenlet waiting in `Lottery.await_draw` when the draw is over."""
