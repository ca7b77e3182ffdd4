"""The resume digest: its canonical form, and that client and server agree on it.

The client hashes the rows of its CSV file (client_gevent.bets_source); the
server hashes the bets it appends (lottery_gevent.storage), and rebuilds the
same digests from bets.csv at recovery. The three must agree for every bet the
contract can store, including names whose line breaks the contract's file
changes ("\\r\\n" reads back as "\\n").
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from client_gevent.bets_source import CsvBets, SingleBet
from lottery_gevent.contract import Bet
from lottery_gevent.storage import BetStore, StorageFailure
from shared.domain import BetFields
from shared.protocol import CONTEST_ID_SIZE, DIGEST_SIZE, EMPTY_DIGEST, BetsDigest, Welcome
from tests.unit.test_storage import FsyncSpy

#: Bets that stress the stored form: quoting, line breaks in names, accents, leading zeros.
ROWS = [
    BetFields("Ana", "Lorca", "123", "2000-01-31", "7574"),
    BetFields("Juan, Pablo", 'Martín "Tincho"', "30904465", "1999-03-17", "0042"),
    BetFields("Line\r\nBreak", "Carriage\rReturn", "1", "1980-12-01", "0"),
    BetFields("Zoë", "Núñez|Ibáñez; D'Angelo", "22", "2001-02-03", "999999999"),
    BetFields("new\nline", "  spaced  ", "000777", "1970-01-01", "1"),
]


def digest_of(rows: list[BetFields]) -> bytes:
    digest = BetsDigest()
    digest.update_many(rows)
    return digest.digest()


def write_csv(path: Path, rows: list[BetFields]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file, lineterminator="\r\n").writerows(rows)


# --- the canonical form ---------------------------------------------------------------


def test_the_hashed_form_is_length_prefixed_text_in_utf8() -> None:
    # Lengths count characters ("Zoë" is 3), the number loses its leading zeros.
    hashed = hashlib.sha256(b"3:Zo\xc3\xab2:Li1:710:2000-01-312:74").digest()
    one = BetsDigest()
    one.update(BetFields("Zoë", "Li", "7", "2000-01-31", "0074"))
    assert one.digest() == digest_of([BetFields("Zoë", "Li", "7", "2000-01-31", "0074")]) == hashed


def test_a_number_of_zeros_is_zero() -> None:
    assert digest_of([BetFields("A", "B", "1", "2000-01-31", "000")]) == digest_of(
        [BetFields("A", "B", "1", "2000-01-31", "0")]
    )


def test_the_digest_of_no_bets_is_sha256_of_nothing() -> None:
    assert EMPTY_DIGEST == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert len(EMPTY_DIGEST) == DIGEST_SIZE


@pytest.mark.parametrize("name", ["a\r\nb", "a\rb", "a\nb"])
def test_name_line_breaks_are_normalised_as_the_stored_file_reads_them(name: str) -> None:
    assert digest_of([BetFields(name, name, "1", "2000-01-01", "1")]) == digest_of(
        [BetFields("a\nb", "a\nb", "1", "2000-01-01", "1")]
    )


def test_field_boundaries_matter() -> None:
    assert digest_of([BetFields("ab", "c", "1", "2000-01-01", "1")]) != digest_of(
        [BetFields("a", "bc", "1", "2000-01-01", "1")]
    )


def test_order_matters_and_digest_does_not_end_the_hash() -> None:
    first = BetsDigest()
    first.update(ROWS[0])
    assert first.digest() == digest_of(ROWS[:1])
    first.update(ROWS[1])
    assert first.digest() == digest_of(ROWS[:2]) != digest_of([ROWS[1], ROWS[0]])


@pytest.mark.parametrize(("contest", "digest"), [(bytes(15), EMPTY_DIGEST), (bytes(16), bytes(31)), (b"", b"")])
def test_welcome_refuses_a_contest_id_or_digest_of_the_wrong_size(contest: bytes, digest: bytes) -> None:
    with pytest.raises(ValueError):
        Welcome(0, False, contest, digest)


# --- client and server agree -----------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BetStore]:
    monkeypatch.chdir(tmp_path)
    store = BetStore()
    store.open()
    yield store
    store.close()


def stored(agency: int, rows: list[BetFields]) -> list[Bet]:
    return [Bet(agency, *row) for row in rows]


def test_client_file_store_and_recovery_give_one_digest(
    store: BetStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_file = tmp_path / "agency-3.csv"
    write_csv(client_file, ROWS)
    store.wait_durable(store.append(3, 0, stored(3, ROWS[:2])))
    store.wait_durable(store.append(9, 0, stored(9, ROWS[:1])))  # another agency in between
    store.wait_durable(store.append(3, 2, stored(3, ROWS[2:])))
    count, served = store.durable_resume(3)
    contest = store.contest
    store.close()

    reopened = BetStore()
    reopened.open()
    try:
        assert reopened.contest == contest and len(contest) == CONTEST_ID_SIZE
        assert reopened.durable_resume(3) == (count, served) == (len(ROWS), digest_of(ROWS))
        assert reopened.durable_resume(9) == (1, digest_of(ROWS[:1]))
        assert reopened.durable_resume(4) == (0, EMPTY_DIGEST)
    finally:
        reopened.close()
    for prefix in range(len(ROWS) + 1):
        assert CsvBets(client_file).prefix(prefix) == (digest_of(ROWS[:prefix]), prefix)
    assert CsvBets(client_file).prefix(2, to_end=True) == (digest_of(ROWS[:2]), len(ROWS))
    assert CsvBets(client_file).prefix(len(ROWS) + 3) == (digest_of(ROWS), len(ROWS))


def test_the_single_bet_source_has_the_same_digest() -> None:
    source = SingleBet(ROWS[1])
    assert source.prefix(1) == (digest_of(ROWS[1:2]), 1)
    assert source.prefix(0) == (EMPTY_DIGEST, 0)
    assert source.prefix(0, to_end=True) == (EMPTY_DIGEST, 1)


def test_after_a_failed_fsync_the_digest_comes_from_what_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spy = FsyncSpy()
    monkeypatch.setattr(os, "fsync", spy)
    store = BetStore()
    store.open()
    store.wait_durable(store.append(1, 0, stored(1, ROWS[:2])))
    spy.fail_with = OSError(errno.EIO, "Input/output error")
    with pytest.raises(StorageFailure):
        store.wait_durable(store.append(1, 2, stored(1, ROWS[2:3])))
    with pytest.raises(StorageFailure):  # never a count or digest that no fsync covered
        store.durable_resume(1)
    store.close()
    os.truncate("bets.csv", os.path.getsize("bets.csv") - 1)  # the crash tore the unsynced row
    spy.fail_with = None
    restarted = BetStore()
    restarted.open()
    try:
        assert restarted.durable_resume(1) == (2, digest_of(ROWS[:2]))
        restarted.wait_durable(restarted.append(1, 2, stored(1, ROWS[2:])))
        assert restarted.durable_resume(1) == (len(ROWS), digest_of(ROWS))
    finally:
        restarted.close()
