# Contract: cut a stream of bets into batches, lazily. A batch holds at most
# `max_amount` bets and never more than one frame (8 KiB) when its bets fit one:
# a bet that would overflow the frame starts the next batch. No bet is ever
# dropped, split or truncated. A bet too large for any frame is the bets
# source's to refuse; here it would travel alone, and the codec would refuse it.
from __future__ import annotations

from collections.abc import Iterable, Iterator

from shared.domain import BetFields
from shared.protocol import BETS_FRAME_OVERHEAD, MAX_FRAME_SIZE, bet_wire_size


def batches(
    bets: Iterable[BetFields], max_amount: int, max_frame_size: int = MAX_FRAME_SIZE
) -> Iterator[list[BetFields]]:
    """Yield lists of consecutive bets, each at most `max_amount` and one frame."""
    if max_amount < 1:
        raise ValueError("max_amount must be at least 1")
    batch: list[BetFields] = []
    size = BETS_FRAME_OVERHEAD
    for bet in bets:
        bet_size = bet_wire_size(bet)
        if batch and size + bet_size > max_frame_size:
            yield batch
            batch, size = [], BETS_FRAME_OVERHEAD
        batch.append(bet)
        size += bet_size
        if len(batch) == max_amount:
            yield batch
            batch, size = [], BETS_FRAME_OVERHEAD
    if batch:
        yield batch
