# BetStore: the storage contract (contract.py) made safe to share between
# greenlets and to trust after a crash. It guarantees:
#   - a batch is appended whole or not at all, and only where the agency's stored
#     bets end (else ServerRefused(OUT_OF_SEQUENCE));
#   - group commit: `wait_durable(ticket)` returns only once an fsync covering the
#     batch has finished (one fsync at a time; batches appended meanwhile share
#     the next one), so whatever the caller acknowledges next is on disk;
#   - a failed write is cut back in place (StorageFailure; the agency retries);
#   - a failed fsync is final: the kernel may have dropped the dirty pages, so the
#     store logs one fail line, fails every waiter, refuses all later work and sets
#     `failed`; the server then exits and a restart recovers from what is on disk.
# It never reports as stored a byte that no finished fsync covers.
from __future__ import annotations

import collections
import csv
import logging
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import gevent
from gevent.event import AsyncResult, Event
from gevent.lock import BoundedSemaphore

from lottery_gevent import contract
from lottery_gevent.contest import fsync_dir, load_or_create_contest
from lottery_gevent.contract import Bet
from lottery_gevent.recovery import recover_bets, recover_done, stored_form
from shared.errors import LotteryError, ServerRefused
from shared.logs import Result, log_action
from shared.protocol import EMPTY_DIGEST, BetsDigest, ErrorCode

logger = logging.getLogger(__name__)

#: The done log (one agency id per line) lives beside bets.csv.
DONE_FILENAME = "agencies-done.txt"
BETS_FILENAME = os.path.basename(contract.STORAGE_FILEPATH)

#: What `append` returns: the size of bets.csv after the batch, in bytes.
Ticket = int
T = TypeVar("T")


class StorageFailure(LotteryError):
    """The store could not do what was asked; nothing of the request is known to be durable."""


class BetStore:
    """bets.csv and the done log, shared by every connection (`durable=False`, no fsync: in-process tests only)."""

    def __init__(self, *, durable: bool = True) -> None:
        self._durable = durable
        # The contract is "not thread-safe", and greenlets do interleave here: the fsync and the
        # draw run on the thread pool while their greenlet yields. Every use of bets.csv holds this.
        self._bets_csv = BoundedSemaphore(1)
        self._path = contract.STORAGE_FILEPATH
        self._done_path = os.path.join(os.path.dirname(self._path), DONE_FILENAME)
        self._data_dir = ""
        self._fd: int | None = None
        self._counts: dict[int, int] = {}
        #: Each agency's resume digest, moving with its count (rebuilt by recovery).
        self._digests: dict[int, BetsDigest] = {}
        #: bets.csv's size after the last append, and how much of it a finished fsync covers.
        self._size = 0
        self._durable_size = 0
        #: Set when the one fsync of bets.csv in flight finishes.
        self._sync_done: Event | None = None
        self._done: set[int] = set()
        #: Holds the StorageFailure once an fsync failed: the server waits on it to exit.
        self.failed = AsyncResult()
        #: The contest id (contest.py); set by open().
        self.contest = b""

    def open(self) -> None:
        """Recover both files, read or make the contest id, keep a descriptor of bets.csv for fsync.

        Raises:
            StorageFailure: a file is damaged beyond a torn last record, or the contest id is.
            OSError: the files cannot be read or created.
        """
        self._data_dir = os.path.abspath(os.path.dirname(self._path) or ".")
        with self._bets_csv:
            try:
                self.contest = load_or_create_contest(self._data_dir, durable=self._durable)
                bets = recover_bets(self._path)
                done, done_repaired = recover_done(self._done_path)
            except ValueError as exc:
                raise StorageFailure(str(exc)) from exc
            created = not (os.path.exists(self._path) and os.path.exists(self._done_path))
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CREAT, 0o644)
            os.close(os.open(self._done_path, os.O_RDONLY | os.O_CREAT, 0o644))
            if created and self._durable:
                fsync_dir(self._data_dir)
        self._counts = dict(bets.counts)
        self._digests = dict(bets.digests)
        self._size = self._durable_size = bets.size
        self._done = done
        repaired = bets.repaired_bytes + done_repaired
        details = {"rows": bets.rows, "agencies": len(bets.counts), "done": len(done), "repaired_bytes": repaired}
        log_action(logger, logging.INFO, "storage_recovery", Result.SUCCESS, **details, contest=self.contest.hex())

    def close(self) -> None:
        """Make everything appended durable (unless the store failed) and release the descriptor."""
        if self._fd is None:
            return
        with self._bets_csv:
            fd, self._fd = self._fd, None
            try:
                if self._durable and not self.failed.ready():
                    self._fsync(fd, BETS_FILENAME)  # only unacknowledged appends are at stake here
            finally:
                os.close(fd)
        if not self.failed.ready():
            log_action(logger, logging.INFO, "close_storage", Result.SUCCESS, file=self._path)

    def done_agencies(self) -> frozenset[int]:
        return frozenset(self._done)

    def is_done(self, agency: int) -> bool:
        return agency in self._done

    def counts(self) -> dict[int, int]:
        """Each agency's bets written so far (durable or about to be)."""
        return dict(self._counts)

    def durable_count(self, agency: int) -> int:
        """How many of the agency's bets are on disk, after syncing any in flight (StorageFailure: unknown)."""
        self.wait_durable(self._size)
        return self._counts.get(agency, 0)

    def durable_resume(self, agency: int) -> tuple[int, bytes]:
        """`durable_count` and the resume digest of those bets."""
        count = self.durable_count(agency)
        digest = self._digests.get(agency)
        return count, EMPTY_DIGEST if digest is None else digest.digest()

    def append(self, agency: int, start: int, bets: Sequence[Bet]) -> Ticket:
        """Write a batch of the agency's bets, whole or not at all; `wait_durable` takes the ticket.

        Raises:
            ServerRefused: OUT_OF_SEQUENCE, `start` is not the agency's stored count; nothing written.
            StorageFailure: the write failed and was cut back, or the store is closed or failed.
        """
        with self._bets_csv:
            fd = self._usable_fd()
            stored = self._counts.get(agency, 0)
            if start != stored:
                detail = f"agency {agency} batch starts at {start}, but {stored} bets are stored"
                raise ServerRefused(ErrorCode.OUT_OF_SEQUENCE, detail)
            try:
                contract.store_bets(bets)
            except (OSError, UnicodeError) as exc:
                try:
                    os.truncate(self._path, self._size)
                except OSError as cut:  # half a batch stays in the file: nothing may follow it
                    self._fail(BETS_FILENAME, f"cutting back a failed write failed: {cut}")
                raise StorageFailure(f"writing {len(bets)} bets failed: {exc}") from exc
            self._size = os.fstat(fd).st_size
            self._counts[agency] = stored + len(bets)
            self._digests.setdefault(agency, BetsDigest()).update_many(map(stored_form, bets))
            return self._size

    def wait_durable(self, ticket: Ticket) -> None:
        """Return once a finished fsync covers the append behind `ticket` (StorageFailure: the store failed first)."""
        while self._durable and self._durable_size < ticket:
            if self.failed.ready():
                raise StorageFailure(f"not known to be durable: {self.failed.exception}")
            if self._sync_done is not None:
                self._sync_done.wait()
            else:
                self._sync()

    def mark_done(self, agency: int) -> None:
        """Record, durably, that the agency has sent all its bets. Idempotent.

        Two marks of one agency may race across the fsync (a takeover): the done log is read as a set.

        Raises:
            StorageFailure: the mark could not be written (and was cut back), or the store failed.
        """
        if agency in self._done:
            return
        self._usable_fd()
        line = f"{agency}\n".encode("ascii")
        fd = os.open(self._done_path, os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(f"short write to {DONE_FILENAME}")
            except OSError as exc:
                os.ftruncate(fd, size)  # a restart must not read a mark we refused
                raise StorageFailure(f"recording agency {agency} as done failed: {exc}") from exc
            if self._durable and not self._fsync(fd, DONE_FILENAME):
                raise StorageFailure(f"recording agency {agency} as done: {self.failed.exception}")
        finally:
            os.close(fd)
        self._done.add(agency)

    def find_winners(self) -> dict[int, list[str]]:
        """The draw over every stored bet: winning documents by agency (StorageFailure: unreadable, or failed).

        `load_bets` runs on the thread pool, so the event loop is not frozen for the whole scan.
        """
        with self._bets_csv:
            self._usable_fd()
            try:
                winners = _on_thread_pool(_scan_winners)
            except (OSError, ValueError, csv.Error) as exc:
                raise StorageFailure(f"the draw could not read {BETS_FILENAME}: {exc}") from exc
            return winners

    def _usable_fd(self) -> int:
        if self.failed.ready():
            raise StorageFailure(f"refused: {self.failed.exception}")
        if self._fd is None:
            raise StorageFailure("the store is not open")
        return self._fd

    def _sync(self) -> None:
        """Run one fsync of bets.csv covering every append so far."""
        done = self._sync_done = Event()
        target = self._size
        try:
            if self._fsync(self._usable_fd(), BETS_FILENAME):
                self._durable_size = target
        finally:
            self._sync_done = None
            done.set()

    def _fsync(self, fd: int, name: str) -> bool:
        """fsync on the thread pool; False (and the store failed) if it failed."""
        try:
            _on_thread_pool(os.fsync, fd)
        except OSError as exc:
            self._fail(name, f"fsync failed: {exc}")
            return False
        return True

    def _fail(self, name: str, error: str) -> None:
        """Stop the store for good: log it once, wake every waiter, refuse all later work."""
        if self.failed.ready():
            return
        error += "; stopping: a restart recovers from what is on disk"
        log_action(logger, logging.ERROR, "storage_sync", Result.FAIL, data_dir=self._data_dir, file=name, error=error)
        self.failed.set_exception(StorageFailure(f"{name} in {self._data_dir}: {error}"))


def _on_thread_pool(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` on gevent's thread pool; its exception is raised here, not printed there."""
    results: list[T] = []

    def run() -> Exception | None:
        try:
            results.append(function(*args))
        except Exception as exc:
            return exc
        return None

    error = gevent.get_hub().threadpool.apply(run)
    if error is not None:
        raise error
    return results[0]


def _scan_winners() -> dict[int, list[str]]:
    winners: dict[int, list[str]] = collections.defaultdict(list)
    for bet in contract.load_bets():
        if contract.has_won(bet):
            winners[bet.agency].append(bet.document)
    return dict(winners)
