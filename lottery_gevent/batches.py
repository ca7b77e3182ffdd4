# What makes a batch of bets acceptable, and storing it durably. Guarantees: a
# batch is stored whole or not at all; it is refused (with the ErrorCode the
# peer is told) if a bet is invalid, if it would take its agency past the quota,
# or if it does not start where the agency's stored bets end; `store_batch`
# returns only once the batch is durable. Never: talks to the peer, or logs.
from __future__ import annotations

from lottery_gevent.contract import Bet
from lottery_gevent.storage import BetStore
from shared.domain import validate_bet
from shared.errors import InvalidBet, ServerRefused
from shared.protocol import Bets, ErrorCode


def store_batch(store: BetStore, agency: int, batch: Bets, quota: int) -> list[Bet]:
    """Check the quota, validate every bet, append and wait until durable; the bets stored.

    Raises ServerRefused (QUOTA_EXCEEDED: past bet number `quota`; OUT_OF_SEQUENCE), InvalidBet, StorageFailure.
    """
    end = batch.start + len(batch.bets)
    if end > quota:
        raise ServerRefused(
            ErrorCode.QUOTA_EXCEEDED,
            f"bets #{batch.start}..#{end - 1} would take agency {agency} past its quota of {quota} bets; "
            "nothing of the batch was stored",
        )
    bets = []
    for index, fields in enumerate(batch.bets):
        try:
            validate_bet(fields)
        except InvalidBet as exc:
            raise InvalidBet(exc.field, exc.value, f"{exc.reason} (bet #{batch.start + index})") from exc
        bets.append(Bet(agency, *fields))
    store.wait_durable(store.append(agency, batch.start, bets))
    return bets
