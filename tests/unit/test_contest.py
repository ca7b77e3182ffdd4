"""lottery_gevent.contest: the data directory's lock, its contest id, and archiving a contest.

Plus Lottery.pending_line, what the `draw_wait` line says.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lottery_gevent.contest import (
    CONTEST_FILENAME,
    LOCK_FILENAME,
    archive_contest,
    load_or_create_contest,
    lock_data_dir,
    read_contest,
)
from lottery_gevent.lottery import MAX_PENDING_LISTED, Lottery
from lottery_gevent.storage import BetStore, StorageFailure
from shared.errors import ConfigError
from shared.protocol import CONTEST_ID_SIZE


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    fd = lock_data_dir(tmp_path)
    try:
        assert (tmp_path / LOCK_FILENAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(ConfigError) as caught:
            lock_data_dir(tmp_path)  # flock locks are per open file: a second open conflicts
        assert str(caught.value) == f"data directory {tmp_path} is in use by process {os.getpid()}"
    finally:
        os.close(fd)
    os.close(lock_data_dir(tmp_path))  # released with its descriptor


def test_a_contest_id_is_made_once_and_kept(tmp_path: Path) -> None:
    assert read_contest(tmp_path) is None
    contest = load_or_create_contest(tmp_path)
    assert len(contest) == CONTEST_ID_SIZE
    assert (tmp_path / CONTEST_FILENAME).read_text() == contest.hex() + "\n"
    assert load_or_create_contest(tmp_path) == read_contest(tmp_path) == contest
    assert load_or_create_contest(tmp_path / ".." / tmp_path.name) == contest
    other = tmp_path / "other"
    other.mkdir()
    assert load_or_create_contest(other) != contest  # random, per directory


@pytest.mark.parametrize("text", ["", "not hex\n", "abcd\n", "00" * 17 + "\n", "\u00e9" * 32 + "\n"])
def test_a_damaged_contest_id_is_an_error_not_a_new_contest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    (tmp_path / CONTEST_FILENAME).write_text(text)
    with pytest.raises(ValueError):
        load_or_create_contest(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageFailure, match=CONTEST_FILENAME):  # and the store will not open on it
        BetStore(durable=False).open()
    assert (tmp_path / CONTEST_FILENAME).read_text() == text


def test_archiving_moves_the_contest_files_and_deletes_nothing(tmp_path: Path) -> None:
    contest = load_or_create_contest(tmp_path)
    (tmp_path / "bets.csv").write_bytes(b"1,Ana,Lorca,1,2000-01-01,7574\r\n")
    (tmp_path / "agencies-done.txt").write_bytes(b"1\n")
    (tmp_path / "unrelated.txt").write_bytes(b"stays")

    target = archive_contest(tmp_path)

    assert target == tmp_path / "archive" / contest.hex()
    assert sorted(path.name for path in target.iterdir()) == ["agencies-done.txt", "bets.csv", CONTEST_FILENAME]
    assert (target / "bets.csv").read_bytes() == b"1,Ana,Lorca,1,2000-01-01,7574\r\n"
    assert not (tmp_path / "bets.csv").exists() and read_contest(tmp_path) is None
    assert (tmp_path / "unrelated.txt").read_bytes() == b"stays"
    assert archive_contest(tmp_path) is None  # nothing left to archive
    assert load_or_create_contest(tmp_path) != contest


def test_archiving_never_overwrites(tmp_path: Path) -> None:
    contest = load_or_create_contest(tmp_path)
    (tmp_path / "bets.csv").write_bytes(b"new")
    target = tmp_path / "archive" / contest.hex()
    target.mkdir(parents=True)
    (target / "bets.csv").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        archive_contest(tmp_path)
    assert (target / "bets.csv").read_bytes() == b"old"
    assert (tmp_path / "bets.csv").read_bytes() == b"new"
    assert read_contest(tmp_path) == contest


def test_bets_without_a_contest_id_are_archived_too(tmp_path: Path) -> None:
    (tmp_path / "bets.csv").write_bytes(b"old layout")
    target = archive_contest(tmp_path)
    assert target is not None and (target / "bets.csv").read_bytes() == b"old layout"
    assert len(bytes.fromhex(target.name)) == CONTEST_ID_SIZE


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BetStore]:
    monkeypatch.chdir(tmp_path)
    store = BetStore(durable=False)
    store.open()
    yield store
    store.close()


def test_pending_line_lists_the_first_pending_ids_and_counts_the_rest(store: BetStore) -> None:
    agencies = MAX_PENDING_LISTED + 5
    for agency in (1, 3):
        store.mark_done(agency)
    lottery = Lottery(store, agencies)
    lottery.mark_done(2)
    listed = list(range(4, agencies + 1))[:MAX_PENDING_LISTED]
    assert lottery.pending_line() == {
        "done": 3,
        "pending": agencies - 3,
        "waiting_for": ",".join(map(str, listed)),
        "others": agencies - 3 - MAX_PENDING_LISTED,
    }
    small = Lottery(store, 4)
    assert small.pending_line() == {"done": 3, "pending": 1, "waiting_for": "4"}
