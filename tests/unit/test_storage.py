"""lottery_gevent.storage.BetStore: append, sequence check, failed writes, group commit, a failed fsync.

STORAGE_FILEPATH is "./bets.csv", so every test runs in its own tmp_path. fsync
runs on gevent's thread pool; the tests count and fail it through a wrapper
around os.fsync. Greenlets are synchronised on events, never on sleeps.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import gevent
import gevent.monkey
import pytest

from lottery_gevent import contract
from lottery_gevent.contract import Bet
from lottery_gevent.recovery import recover_bets
from lottery_gevent.storage import DONE_FILENAME, BetStore, StorageFailure
from shared.errors import ServerRefused
from shared.protocol import ErrorCode
from tests.support.processes import parse_action

# fsync runs in a real OS thread: synchronise with it through real threading
# primitives even if some other test has monkey-patched threading.
ThreadEvent = gevent.monkey.get_original("threading", "Event")
ThreadLock = gevent.monkey.get_original("threading", "Lock")


def bets(agency: int, start: int, count: int, winner_every: int = 0) -> list[Bet]:
    return [
        Bet(
            agency,
            f"Nombre {agency}-{n}",
            'Pérez, "el" Ñandú',
            str(agency * 1_000_000 + n),
            "2000-01-01",
            contract.LOTTERY_WINNER_NUMBER if winner_every and n % winner_every == 0 else n,
        )
        for n in range(start, start + count)
    ]


class FsyncSpy:
    """Wraps os.fsync: counts calls, can fail them, and can hold the first one until released."""

    def __init__(self) -> None:
        self._real = os.fsync
        self._lock = ThreadLock()
        self.calls = 0
        self.fail_with: OSError | None = None
        self.hold_first = False
        self.started = ThreadEvent()
        self.release = ThreadEvent()

    def __call__(self, fd: int) -> None:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first and self.hold_first:
            self.started.set()
            assert self.release.wait(10), "the test never released the held fsync"
        if self.fail_with is not None:
            raise self.fail_with
        self._real(fd)


@pytest.fixture
def fsync(monkeypatch: pytest.MonkeyPatch) -> FsyncSpy:
    spy = FsyncSpy()
    monkeypatch.setattr(os, "fsync", spy)
    return spy


@pytest.fixture(autouse=True)
def nothing_written_outside_tmp_path() -> Iterator[None]:
    """Fail a test that wrote the storage files into the directory pytest started in."""
    where = [Path.cwd() / "bets.csv", Path.cwd() / DONE_FILENAME]
    before = [path.stat().st_mtime_ns if path.exists() else None for path in where]
    yield
    after = [path.stat().st_mtime_ns if path.exists() else None for path in where]
    assert after == before, "a test wrote storage files outside its tmp_path"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: FsyncSpy) -> Iterator[BetStore]:
    monkeypatch.chdir(tmp_path)
    store = BetStore()
    store.open()
    fsync.calls = 0  # count only what the test itself causes
    yield store
    fsync.fail_with = None
    store.close()


def outcome(function: Callable[..., object], *args: object) -> Callable[[], BaseException | None]:
    """A greenlet body that returns the exception `function(*args)` raised (None if none).

    Returned rather than raised, so that gevent does not report an expected failure.
    """

    def run() -> BaseException | None:
        try:
            function(*args)
        except StorageFailure as exc:
            return exc
        return None

    return run


def size() -> int:
    return os.path.getsize(contract.STORAGE_FILEPATH)


def stored_documents() -> list[str]:
    return [bet.document for bet in contract.load_bets()]


def run_all(*functions: Callable[[], object]) -> list[gevent.Greenlet]:
    """Run each function in its own greenlet and wait for all (exceptions stay on the greenlets)."""
    greenlets = [gevent.spawn(function) for function in functions]
    gevent.joinall(greenlets, timeout=10)
    assert all(greenlet.ready() for greenlet in greenlets), "a greenlet hung"
    return greenlets


# --- basics --------------------------------------------------------------------------


def test_open_creates_both_files(store: BetStore, tmp_path: Path) -> None:
    assert (tmp_path / "bets.csv").exists()
    assert (tmp_path / DONE_FILENAME).exists()
    assert store.durable_count(1) == 0
    assert store.done_agencies() == frozenset()


def test_append_then_wait_durable(store: BetStore, fsync: FsyncSpy) -> None:
    ticket = store.append(1, 0, bets(1, 0, 3))
    assert ticket == size()
    store.wait_durable(ticket)
    assert fsync.calls == 1
    store.wait_durable(ticket)  # already durable: no second fsync
    assert fsync.calls == 1
    assert store.durable_count(1) == 3
    assert stored_documents() == ["1000000", "1000001", "1000002"]


def test_batches_of_several_agencies_are_counted_apart(store: BetStore) -> None:
    store.wait_durable(store.append(1, 0, bets(1, 0, 2)))
    store.wait_durable(store.append(2, 0, bets(2, 0, 5)))
    store.wait_durable(store.append(1, 2, bets(1, 2, 1)))
    assert (store.durable_count(1), store.durable_count(2), store.durable_count(3)) == (3, 5, 0)


@pytest.mark.parametrize("start", [0, 2, 4, -1])
def test_out_of_sequence_is_refused_and_writes_nothing(store: BetStore, start: int) -> None:
    store.wait_durable(store.append(1, 0, bets(1, 0, 3)))
    before = size()
    with pytest.raises(ServerRefused) as caught:
        store.append(1, start, bets(1, start, 2))
    assert caught.value.code == ErrorCode.OUT_OF_SEQUENCE
    assert size() == before
    assert store.durable_count(1) == 3


def test_a_retried_batch_cannot_be_stored_twice(store: BetStore) -> None:
    batch = bets(1, 0, 2)
    store.wait_durable(store.append(1, 0, batch))
    with pytest.raises(ServerRefused):
        store.append(1, 0, batch)
    assert stored_documents() == ["1000000", "1000001"]


def test_reopening_recovers_the_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: FsyncSpy) -> None:
    monkeypatch.chdir(tmp_path)
    first = BetStore()
    first.open()
    first.wait_durable(first.append(1, 0, bets(1, 0, 4)))
    first.wait_durable(first.append(2, 0, bets(2, 0, 1)))
    first.mark_done(2)
    first.close()
    with open(contract.STORAGE_FILEPATH, "a") as file:
        file.write("1,torn")  # a crash in the middle of a later write
    second = BetStore()
    second.open()
    try:
        assert (second.durable_count(1), second.durable_count(2)) == (4, 1)
        assert second.done_agencies() == {2}
        second.wait_durable(second.append(1, 4, bets(1, 4, 1)))
        assert recover_bets(contract.STORAGE_FILEPATH).counts == {1: 5, 2: 1}
    finally:
        second.close()


def test_not_durable_never_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: FsyncSpy) -> None:
    monkeypatch.chdir(tmp_path)
    store = BetStore(durable=False)
    store.open()
    store.wait_durable(store.append(1, 0, bets(1, 0, 2)))
    store.mark_done(1)
    store.close()
    assert fsync.calls == 0


# --- a failing write -------------------------------------------------------------


def half_then_enospc(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make contract.store_bets write half its rows (really) and then fail as on a full disk.

    Restore it with monkeypatch.setattr, never monkeypatch.undo(): that would
    also undo the chdir into tmp_path.
    """
    real = contract.store_bets
    calls: list[int] = []

    def store_bets(batch: Iterable[Bet]) -> None:
        batch = list(batch)
        calls.append(len(batch))
        real(batch[: len(batch) // 2])
        with open(contract.STORAGE_FILEPATH, "a") as file:
            file.write("1,half a ro")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(contract, "store_bets", store_bets)
    return calls


def test_a_failing_store_rolls_back_to_the_previous_size(store: BetStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real_store_bets = contract.store_bets
    store.wait_durable(store.append(1, 0, bets(1, 0, 3)))
    before = size()
    calls = half_then_enospc(monkeypatch)
    with pytest.raises(StorageFailure) as caught:
        store.append(1, 3, bets(1, 3, 10))
    assert calls == [10]
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert size() == before
    assert store.durable_count(1) == 3
    monkeypatch.setattr(contract, "store_bets", real_store_bets)
    store.wait_durable(store.append(1, 3, bets(1, 3, 2)))  # the same start is accepted again
    assert stored_documents() == [str(1_000_000 + n) for n in range(5)]


def test_a_failing_store_keeps_earlier_unsynced_batches(store: BetStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.append(1, 0, bets(1, 0, 2))  # appended, not yet synced
    before = size()
    half_then_enospc(monkeypatch)
    with pytest.raises(StorageFailure):
        store.append(2, 0, bets(2, 0, 4))
    assert size() == before
    store.wait_durable(first)
    assert stored_documents() == ["1000000", "1000001"]


# --- group commit ----------------------------------------------------------------


def test_concurrent_appends_share_fsyncs(store: BetStore, fsync: FsyncSpy) -> None:
    agencies = range(1, 9)

    def upload(agency: int) -> None:
        store.wait_durable(store.append(agency, 0, bets(agency, 0, 3)))

    greenlets = run_all(*(lambda agency=agency: upload(agency) for agency in agencies))
    assert all(greenlet.successful() for greenlet in greenlets)
    assert 1 <= fsync.calls < len(agencies)
    assert recover_bets(contract.STORAGE_FILEPATH).counts == dict.fromkeys(agencies, 3)


def test_batches_appended_during_an_fsync_share_the_next_one(store: BetStore, fsync: FsyncSpy) -> None:
    fsync.hold_first = True
    first = store.append(1, 0, bets(1, 0, 1))
    waiter = gevent.spawn(store.wait_durable, first)
    gevent.idle()  # let it start the fsync
    assert fsync.started.wait(10)  # the first fsync is running, and held
    tickets = [store.append(agency, 0, bets(agency, 0, 2)) for agency in range(2, 7)]
    others = [gevent.spawn(store.wait_durable, ticket) for ticket in tickets]
    gevent.idle()  # every waiter is now blocked on the running fsync
    fsync.release.set()
    gevent.joinall([waiter, *others], timeout=10, raise_error=True)
    assert all(greenlet.successful() for greenlet in [waiter, *others])
    assert fsync.calls == 2  # 6 batches, 2 fsyncs: one held, one for everything after it


def test_durable_count_waits_for_batches_in_flight(store: BetStore, fsync: FsyncSpy) -> None:
    store.append(1, 0, bets(1, 0, 3))
    assert store.durable_count(1) == 3
    assert fsync.calls == 1


# --- mutual exclusion ----------------------------------------------------------------


def test_batches_never_interleave_even_if_the_contract_yields(
    store: BetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`store_bets` is "not thread-safe": if it ever yields mid-batch, the lock alone keeps batches whole."""
    real_store_bets = contract.store_bets

    def yielding_store_bets(rows: Iterable[Bet]) -> None:
        for row in rows:
            real_store_bets([row])
            gevent.sleep(0)  # let any other greenlet in, between two rows of one batch

    monkeypatch.setattr(contract, "store_bets", yielding_store_bets)
    batch, batches = 20, 3

    def upload(agency: int) -> None:
        for start in range(0, batch * batches, batch):
            store.append(agency, start, bets(agency, start, batch))

    greenlets = run_all(lambda: upload(1), lambda: upload(2))
    assert all(greenlet.successful() for greenlet in greenlets)
    agencies = [bet.agency for bet in contract.load_bets()]
    assert sorted(agencies) == [1] * (batch * batches) + [2] * (batch * batches)
    runs = [len(list(run)) for _, run in itertools.groupby(agencies)]
    assert all(length % batch == 0 for length in runs), f"batches interleaved: runs of {runs} rows"


# --- a failed fsync ends the store --------------------------------------------------

EIO = OSError(errno.EIO, "Input/output error")


def sync_failures(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    parsed = [parse_action(record.getMessage()) for record in caplog.records]
    return [fields for fields in parsed if fields is not None and fields["result"] == "fail"]


def test_a_failed_fsync_fails_every_waiter_and_all_later_work(
    store: BetStore, fsync: FsyncSpy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    durable = store.append(1, 0, bets(1, 0, 2))
    store.wait_durable(durable)
    fsync.fail_with = EIO
    doomed = [store.append(1, 2, bets(1, 2, 3)), store.append(2, 0, bets(2, 0, 4))]
    with caplog.at_level(logging.INFO, logger="lottery_gevent.storage"):
        waiters = run_all(*(outcome(store.wait_durable, ticket) for ticket in doomed))
        fsync.fail_with = None  # even a disk that works again is not trusted
        assert [type(waiter.value) for waiter in waiters] == [StorageFailure, StorageFailure]
        assert isinstance(store.failed.exception, StorageFailure)
        store.wait_durable(durable)  # an earlier fsync covered this one: it stays durable
        calls = fsync.calls
        for refused in (
            lambda: store.append(1, 5, bets(1, 5, 1)),
            lambda: store.wait_durable(doomed[0]),
            lambda: store.durable_resume(1),
            lambda: store.mark_done(1),
            store.find_winners,
        ):
            with pytest.raises(StorageFailure):
                refused()
        store.close()
    assert fsync.calls == calls  # nothing after the failure asked the disk again
    assert sync_failures(caplog) == [
        {
            "action": "storage_sync",
            "result": "fail",
            "data_dir": str(tmp_path),
            "file": "bets.csv",
            "error": "fsync failed: [Errno 5] Input/output error; "
                "stopping: a restart recovers from what is on disk",
        }
    ]
    assert not [record for record in caplog.records if "close_storage" in record.getMessage()]
    assert store.done_agencies() == frozenset()


def test_waiters_of_a_failed_fsync_learn_it_without_another(store: BetStore, fsync: FsyncSpy) -> None:
    fsync.hold_first = True
    fsync.fail_with = EIO
    waiters = [gevent.spawn(outcome(store.wait_durable, store.append(1, 0, bets(1, 0, 1))))]
    gevent.idle()
    assert fsync.started.wait(10)
    waiters += [gevent.spawn(outcome(store.wait_durable, store.append(2, 0, bets(2, 0, 1))))]
    gevent.idle()
    fsync.release.set()
    gevent.joinall(waiters, timeout=10)
    assert [type(waiter.value) for waiter in waiters] == [StorageFailure, StorageFailure]
    assert fsync.calls == 1
    assert store.failed.ready()


def test_a_restart_after_a_failed_fsync_recovers_what_is_on_disk(
    store: BetStore, fsync: FsyncSpy, tmp_path: Path
) -> None:
    store.wait_durable(store.append(1, 0, bets(1, 0, 2)))
    fsync.fail_with = EIO
    with pytest.raises(StorageFailure):
        store.wait_durable(store.append(1, 2, bets(1, 2, 3)))
    store.close()
    with open(contract.STORAGE_FILEPATH, "a") as file:
        file.write("1,torn")  # as if the crash had cut the last row short
    fsync.fail_with = None
    restarted = BetStore()
    restarted.open()
    try:  # the file is the truth: what the page cache kept counts, the torn row does not
        on_disk = recover_bets(contract.STORAGE_FILEPATH).counts[1]
        assert restarted.durable_count(1) == on_disk == 5
        restarted.wait_durable(restarted.append(1, on_disk, bets(1, on_disk, 1)))
        assert stored_documents() == [str(1_000_000 + n) for n in range(6)]
    finally:
        restarted.close()


def test_a_failed_done_mark_fsync_fails_the_store(
    store: BetStore, fsync: FsyncSpy, caplog: pytest.LogCaptureFixture
) -> None:
    fsync.fail_with = EIO
    with caplog.at_level(logging.INFO, logger="lottery_gevent.storage"), pytest.raises(StorageFailure):
        store.mark_done(1)
    assert not store.is_done(1)
    assert [fields["file"] for fields in sync_failures(caplog)] == [DONE_FILENAME]
    with pytest.raises(StorageFailure):
        store.append(1, 0, bets(1, 0, 1))


def raise_eio(*_: object) -> None:
    raise EIO


def test_a_failed_cut_back_fails_the_store(store: BetStore, monkeypatch: pytest.MonkeyPatch) -> None:
    half_then_enospc(monkeypatch)
    monkeypatch.setattr(os, "truncate", raise_eio)
    with pytest.raises(StorageFailure):
        store.append(1, 0, bets(1, 0, 4))
    assert store.failed.ready()  # a half batch is left in the file: nothing may follow it


# --- done marks and the draw ---------------------------------------------------------


def test_mark_done_is_durable_and_idempotent(store: BetStore, fsync: FsyncSpy, tmp_path: Path) -> None:
    store.mark_done(3)
    store.mark_done(3)
    store.mark_done(1)
    assert store.done_agencies() == {1, 3}
    assert (tmp_path / DONE_FILENAME).read_text() == "3\n1\n"
    assert fsync.calls == 2


def test_a_done_mark_that_cannot_be_written_leaves_nothing_behind(
    store: BetStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:1]))  # a short write
    with pytest.raises(StorageFailure):
        store.mark_done(12)
    assert (tmp_path / DONE_FILENAME).read_text() == ""
    assert not store.is_done(12) and not store.failed.ready()
    monkeypatch.setattr(os, "write", real_write)
    store.mark_done(12)
    assert (tmp_path / DONE_FILENAME).read_text() == "12\n"


def test_find_winners_groups_documents_by_agency(store: BetStore) -> None:
    store.wait_durable(store.append(1, 0, bets(1, 0, 10, winner_every=4)))
    store.wait_durable(store.append(2, 0, bets(2, 0, 3)))
    store.wait_durable(store.append(3, 0, bets(3, 0, 1, winner_every=1)))
    assert store.find_winners() == {1: ["1000000", "1000004", "1000008"], 3: ["3000000"]}
