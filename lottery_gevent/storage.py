# Strategy: BetStore wraps the storage contract (contract.py) in everything that
# makes it safe to share between greenlets and to trust after a crash.
#
# Why a semaphore, when greenlets are cooperative? `store_bets` and `load_bets`
# are "not thread-safe": they assume no one else touches bets.csv meanwhile. A
# greenlet is only switched out where it blocks on gevent I/O, and today
# `store_bets` never does; but the fsync and the draw run on gevent's thread
# pool, and the greenlet that waits for them yields. The semaphore makes the
# rule explicit and keeps it true if the code changes: every touch of the files
# (append, truncate, draw, done log) happens with it held.
#
# Durability is a group commit:
#   1. `append` writes a batch under the semaphore (no yield inside, so a
#      greenlet killed at any point has written all of its batch or none of it)
#      and returns a ticket: the file size after the batch.
#   2. `wait_durable(ticket)` returns once an fsync covering that size has
#      finished. One fsync runs at a time, on the thread pool; batches appended
#      while it runs share the next one. An acknowledgement is sent only after
#      this returns, so an acknowledged bet is on disk.
# If an fsync fails, every batch not yet durable is rolled back (the file is cut
# to its last durable size) and their waiters get StorageFailure.
#
# Each agency's resume digest (shared/protocol/_digest.py) moves with its count:
# updated at append, rolled back with it, rebuilt by recovery. The store also
# holds the contest id (contest.py), read or made when it opens.
from __future__ import annotations

import collections
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore

from lottery_gevent import contract
from lottery_gevent.contest import load_or_create_contest
from lottery_gevent.contract import Bet
from lottery_gevent.recovery import recover_bets, recover_done, stored_form
from shared.errors import LotteryError
from shared.logs import Result, log_action
from shared.protocol import EMPTY_DIGEST, BetsDigest

logger = logging.getLogger(__name__)

#: The done log lives beside bets.csv.
DONE_FILENAME = "agencies-done.txt"


class StorageFailure(LotteryError):
    """A batch or a done mark could not be made durable; nothing of it was kept."""


class OutOfSequence(LotteryError):
    """A batch does not start where the agency's stored bets end."""

    def __init__(self, agency: int, start: int, stored: int) -> None:
        self.stored = stored
        super().__init__(f"agency {agency} batch starts at {start}, but {stored} bets are stored")


@dataclass(frozen=True, slots=True)
class Ticket:
    """Proof of an append: durable once an fsync has covered `size` in `epoch`."""

    size: int
    epoch: int


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BetStore:
    """bets.csv and the done log, shared safely by all connections.

    Args:
        durable: fsync before reporting a batch or a done mark as stored. Off only
            for measuring what durability costs.
    """

    def __init__(self, *, durable: bool = True) -> None:
        self._durable = durable
        self._lock = BoundedSemaphore(1)
        self._path = contract.STORAGE_FILEPATH
        self._done_path = os.path.join(os.path.dirname(self._path), DONE_FILENAME)
        self._fd: int | None = None
        # Appended state, and the part of it an fsync has covered.
        self._counts: dict[int, int] = {}
        #: The resume digest of each agency's appended bets (moves with _counts).
        self._digests: dict[int, BetsDigest] = {}
        self._size = 0
        #: Appends not yet covered by an fsync, oldest first: (file size after it,
        #: agency, the agency's count and digest before it); what a failed fsync undoes.
        self._unsynced: collections.deque[tuple[int, int, int, BetsDigest | None]] = collections.deque()
        self._durable_size = 0
        # Bumped when a failed fsync rolls back; maps each past epoch to the
        # durable size it ended with.
        self._epoch = 0
        self._epoch_end: dict[int, int] = {}
        self._sync_done: Event | None = None
        self._done: set[int] = set()
        #: The contest id (contest.py); set by open().
        self.contest = b""

    # --- life cycle -------------------------------------------------------

    def open(self) -> None:
        """Recover both files, read or make the contest id, keep a descriptor of bets.csv for fsync.

        Raises:
            StorageCorrupt: a file is damaged beyond a torn last record, or the contest id file.
            OSError: the files cannot be read or created.
        """
        with self._lock:
            self.contest = load_or_create_contest(os.path.dirname(self._path) or ".", durable=self._durable)
            bets = recover_bets(self._path)
            done, done_repaired = recover_done(self._done_path)
            created = not (os.path.exists(self._path) and os.path.exists(self._done_path))
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CREAT, 0o644)
            os.close(os.open(self._done_path, os.O_RDONLY | os.O_CREAT, 0o644))
            if created and self._durable:
                _fsync_path(os.path.dirname(self._path) or ".")
        self._counts = dict(bets.counts)
        self._digests = dict(bets.digests)
        self._size = self._durable_size = bets.size
        self._done = done
        log_action(
            logger,
            logging.INFO,
            "storage_recovery",
            Result.SUCCESS,
            rows=bets.rows,
            agencies=len(bets.counts),
            done=len(done),
            repaired_bytes=bets.repaired_bytes + done_repaired,
            contest=self.contest.hex(),
        )

    def close(self) -> None:
        """Make everything appended durable and release the file descriptor."""
        if self._fd is None:
            return
        with self._lock:
            try:
                if self._durable:
                    os.fsync(self._fd)  # only unacknowledged appends are at stake here
            except OSError as exc:
                log_action(logger, logging.ERROR, "close_storage", Result.FAIL, file=self._path, error=exc)
                return
            finally:
                os.close(self._fd)
                self._fd = None
        log_action(logger, logging.INFO, "close_storage", Result.SUCCESS, file=self._path)

    # --- queries ----------------------------------------------------------

    def done_agencies(self) -> frozenset[int]:
        return frozenset(self._done)

    def is_done(self, agency: int) -> bool:
        return agency in self._done

    def durable_count(self, agency: int) -> int:
        """How many of the agency's bets are on disk, after syncing any in flight."""
        self.wait_durable(Ticket(self._size, self._epoch))
        return self._counts.get(agency, 0)

    def durable_resume(self, agency: int) -> tuple[int, bytes]:
        """The agency's stored count and the resume digest of those bets, after syncing any in flight."""
        count = self.durable_count(agency)
        digest = self._digests.get(agency)
        return count, EMPTY_DIGEST if digest is None else digest.digest()

    # --- writes -----------------------------------------------------------

    def append(self, agency: int, start: int, bets: Sequence[Bet]) -> Ticket:
        """Write a batch of the agency's bets, whole or not at all.

        Raises:
            OutOfSequence: `start` is not the agency's stored count.
            StorageFailure: the write failed; the file was cut back to before it.
        """
        with self._lock:
            stored = self._counts.get(agency, 0)
            if start != stored:
                raise OutOfSequence(agency, start, stored)
            try:
                contract.store_bets(bets)
            except (OSError, UnicodeError) as exc:
                self._cut_back(self._size)
                raise StorageFailure(f"writing {len(bets)} bets failed: {exc}") from exc
            self._size = os.fstat(self._require_fd()).st_size
            self._counts[agency] = stored + len(bets)
            before = self._digests.get(agency)
            after = BetsDigest() if before is None else before.copy()
            after.update_many(map(stored_form, bets))
            self._digests[agency] = after
            if self._durable:
                self._unsynced.append((self._size, agency, stored, before))
            return Ticket(self._size, self._epoch)

    def wait_durable(self, ticket: Ticket) -> None:
        """Return once the append behind `ticket` is on disk.

        Raises:
            StorageFailure: the fsync that should have covered it failed, and the
                append was rolled back.
        """
        if not self._durable:
            return
        while True:
            if ticket.epoch != self._epoch:
                if ticket.size <= self._epoch_end[ticket.epoch]:
                    return
                raise StorageFailure("fsync failed; the batch was rolled back")
            if self._durable_size >= ticket.size:
                return
            if self._sync_done is not None:
                self._sync_done.wait()
            else:
                self._sync()

    def mark_done(self, agency: int) -> None:
        """Record, durably, that the agency has sent all its bets. Idempotent.

        Raises:
            StorageFailure: the mark could not be written.
        """
        if agency in self._done:
            return
        with self._lock:
            size = os.path.getsize(self._done_path)
            try:
                with open(self._done_path, "a") as file:
                    file.write(f"{agency}\n")
                    file.flush()
                    if self._durable:
                        gevent.get_hub().threadpool.apply(os.fsync, (file.fileno(),))
            except OSError as exc:
                os.truncate(self._done_path, size)  # a restart must not read a mark we refused
                raise StorageFailure(f"recording agency {agency} as done failed: {exc}") from exc
            self._done.add(agency)

    def find_winners(self) -> dict[int, list[str]]:
        """Run the draw over every stored bet: winning documents by agency.

        Runs `load_bets` on the thread pool so the event loop is not frozen for
        the whole scan (see README, "The GIL").

        Raises:
            OSError, ValueError, csv.Error: the file could not be read back.
        """
        with self._lock:
            winners: dict[int, list[str]] = gevent.get_hub().threadpool.apply(_scan_winners)
            return winners

    # --- internals --------------------------------------------------------

    def _require_fd(self) -> int:
        if self._fd is None:
            raise StorageFailure("the store is not open")
        return self._fd

    def _cut_back(self, size: int) -> None:
        """Truncate bets.csv to `size` bytes (caller holds the lock)."""
        try:
            os.truncate(self._path, size)
        except OSError as exc:  # pragma: no cover - truncating never needs space
            log_action(logger, logging.ERROR, "storage_rollback", Result.FAIL, error=exc)
            raise

    def _sync(self) -> None:
        """Run one fsync covering everything appended so far (one at a time)."""
        done = self._sync_done = Event()
        target_size, epoch = self._size, self._epoch
        try:
            gevent.get_hub().threadpool.apply(os.fsync, (self._require_fd(),))
        except OSError as exc:
            with self._lock:
                self._epoch_end[epoch] = self._durable_size
                self._epoch += 1
                self._cut_back(self._durable_size)
                self._size = self._durable_size
                while self._unsynced:  # newest first, so each agency ends at its durable count
                    _, agency, count, digest = self._unsynced.pop()
                    self._counts[agency] = count
                    if digest is None:
                        self._digests.pop(agency, None)
                    else:
                        self._digests[agency] = digest
            log_action(logger, logging.ERROR, "storage_sync", Result.FAIL, error=exc)
        else:
            if epoch == self._epoch:
                self._durable_size = max(self._durable_size, target_size)
                while self._unsynced and self._unsynced[0][0] <= target_size:
                    self._unsynced.popleft()
        finally:
            self._sync_done = None
            done.set()


def _scan_winners() -> dict[int, list[str]]:
    winners: dict[int, list[str]] = collections.defaultdict(list)
    for bet in contract.load_bets():
        if contract.has_won(bet):
            winners[bet.agency].append(bet.document)
    return dict(winners)
