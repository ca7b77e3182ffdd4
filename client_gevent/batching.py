# Strategy: cut a stream of bets into batches, lazily. A batch holds at most
# `max_amount` bets and never more than one frame (8 KiB): when the next bet
# would overflow the frame, it starts the next batch instead. No bet is ever
# dropped at a boundary, and none is split or truncated; a bet that cannot fit
# in any frame raises BetTooLarge.
from __future__ import annotations

from collections.abc import Iterable, Iterator

from shared.domain import BetFields
from shared.errors import LotteryError
from shared.protocol import BETS_FRAME_OVERHEAD, MAX_FRAME_SIZE, bet_wire_size


class BetTooLarge(LotteryError):
    """A single bet is larger than one frame can carry."""


def batches(
    bets: Iterable[BetFields], max_amount: int, max_frame_size: int = MAX_FRAME_SIZE
) -> Iterator[list[BetFields]]:
    """Yield lists of consecutive bets, each fitting `max_amount` and one frame.

    Raises:
        BetTooLarge: a bet does not fit in a frame even alone.
    """
    if max_amount < 1:
        raise ValueError("max_amount must be at least 1")
    batch: list[BetFields] = []
    size = BETS_FRAME_OVERHEAD
    for bet in bets:
        bet_size = bet_wire_size(bet)
        if BETS_FRAME_OVERHEAD + bet_size > max_frame_size:
            raise BetTooLarge(
                f"bet of document {bet.document!r} needs {BETS_FRAME_OVERHEAD + bet_size} bytes; "
                f"a frame holds at most {max_frame_size}"
            )
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
