"""client_gevent.bets_source.batches: max_amount, the 8 KiB cut, no bet lost or repeated at a boundary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client_gevent.bets_source import CsvBets, batches
from client_gevent.config import ClientConfig
from shared.domain import BetFields
from shared.protocol import BETS_FRAME_OVERHEAD, MAX_FRAME_SIZE, Bets, bet_wire_size, encode
from tests.conftest import DATASET_BETS
from tests.unit.properties import deterministic


def bet(n: int, name: str = "Ana") -> BetFields:
    return BetFields(name, "Lorca", str(10_000_000 + n), "2000-01-01", str(n % 10_000))


def sized_bet(n: int, wire_size: int) -> BetFields:
    """Bet number `n`, padded so that it adds exactly `wire_size` bytes to a frame."""
    base = bet(n, name="")
    return base._replace(first_name="x" * (wire_size - bet_wire_size(base)))


def frame_size(batch: list[BetFields]) -> int:
    return BETS_FRAME_OVERHEAD + sum(map(bet_wire_size, batch))


def check(bets: list[BetFields], max_amount: int, max_frame_size: int = MAX_FRAME_SIZE) -> list[list[BetFields]]:
    """Batch `bets` and check every invariant; returns the batches."""
    out = list(batches(bets, max_amount, max_frame_size))
    assert [b for batch in out for b in batch] == bets, "a bet was lost, repeated or reordered"
    assert all(out), "no empty batch"
    for index, batch in enumerate(out):
        assert len(batch) <= max_amount
        assert frame_size(batch) <= max_frame_size
        if index + 1 < len(out) and len(batch) < max_amount:
            # A short batch before the last one: only because the next bet did not fit.
            assert frame_size(batch) + bet_wire_size(out[index + 1][0]) > max_frame_size
    return out


def test_max_amount_is_respected_and_only_the_last_batch_is_short() -> None:
    out = check([bet(n) for n in range(250)], 100)
    assert [len(batch) for batch in out] == [100, 100, 50]


def test_an_exact_multiple_has_no_empty_tail() -> None:
    assert [len(batch) for batch in check([bet(n) for n in range(200)], 100)] == [100, 100]


def test_no_bets_no_batches() -> None:
    assert check([], 100) == []


def test_max_amount_one() -> None:
    assert [len(batch) for batch in check([bet(n) for n in range(3)], 1)] == [1, 1, 1]


@pytest.mark.parametrize("max_amount", [0, -1])
def test_max_amount_must_be_positive(max_amount: int) -> None:
    with pytest.raises(ValueError):
        next(batches([bet(1)], max_amount))


def test_a_bet_that_would_overflow_8_kib_starts_the_next_batch() -> None:
    bets = [sized_bet(n, 1000) for n in range(20)]
    out = check(bets, 100)
    # 11 bytes of overhead + 8 * 1000 fit in 8192; a ninth bet would not.
    assert [len(batch) for batch in out] == [8, 8, 4]
    for batch in out:
        assert len(encode(Bets(0, tuple(batch)))) == frame_size(batch) <= MAX_FRAME_SIZE


def test_a_batch_may_fill_the_frame_to_the_last_byte() -> None:
    filler = MAX_FRAME_SIZE - BETS_FRAME_OVERHEAD - 2 * 100
    bets = [sized_bet(0, 100), sized_bet(1, 100), sized_bet(2, filler), sized_bet(3, 100)]
    out = check(bets, 100)
    assert [len(batch) for batch in out] == [3, 1]
    assert len(encode(Bets(0, tuple(out[0])))) == MAX_FRAME_SIZE


def test_one_byte_over_the_frame_cuts_before_that_bet() -> None:
    filler = MAX_FRAME_SIZE - BETS_FRAME_OVERHEAD - 2 * 100 + 1
    bets = [sized_bet(0, 100), sized_bet(1, 100), sized_bet(2, filler), sized_bet(3, 100)]
    assert [len(batch) for batch in check(bets, 100)] == [2, 2]


def test_a_single_bet_that_fills_a_frame_alone_is_sent() -> None:
    whole = sized_bet(0, MAX_FRAME_SIZE - BETS_FRAME_OVERHEAD)
    assert check([bet(1), whole, bet(2)], 100) == [[bet(1)], [whole], [bet(2)]]


def test_a_bet_too_large_for_any_frame_travels_alone() -> None:
    # The bets source refuses such a row first (test_bets_source); batching never drops one.
    huge = sized_bet(7, MAX_FRAME_SIZE)
    assert list(batches([bet(1), huge, bet(2)], 100)) == [[bet(1)], [huge], [bet(2)]]


def test_batching_is_lazy() -> None:
    def endless() -> Iterator[BetFields]:
        n = 0
        while True:
            yield bet(n)
            n += 1

    first = next(batches(endless(), 3))
    assert first == [bet(0), bet(1), bet(2)]


@deterministic
@given(
    sizes=st.lists(st.integers(min_value=21, max_value=200), max_size=60),
    max_amount=st.integers(min_value=1, max_value=12),
    max_frame_size=st.integers(min_value=BETS_FRAME_OVERHEAD + 200, max_value=900),
)
def test_boundaries_property(sizes: list[int], max_amount: int, max_frame_size: int) -> None:
    check([sized_bet(n, size) for n, size in enumerate(sizes)], max_amount, max_frame_size)


@deterministic
@given(names=st.lists(st.text(min_size=1, max_size=3000), min_size=1, max_size=12))
def test_unicode_names_property_against_the_real_encoder(names: list[str]) -> None:
    bets = [bet(n, name) for n, name in enumerate(names)]
    for batch in check(bets, 100):
        assert len(encode(Bets(0, tuple(batch)))) <= MAX_FRAME_SIZE


def test_default_max_amount_never_hits_8_kib_on_the_real_dataset(real_dataset: Path) -> None:
    max_amount = ClientConfig(client_id=1).batch_max_amount
    total = 0
    files = sorted(real_dataset.glob("agency-*.csv"))
    assert len(files) == 5
    for path in files:
        out = list(batches(CsvBets(path).rows(), max_amount))
        # Never cut early: every batch but the last holds exactly max_amount
        # bets (the longest real bet takes 65 bytes, and 125 of them fit).
        assert all(len(batch) == max_amount for batch in out[:-1]), f"{path.name}: an early 8 KiB cut"
        assert max(frame_size(batch) for batch in out) <= MAX_FRAME_SIZE
        total += sum(map(len, out))
    assert total == DATASET_BETS
