# Strategy: what makes a batch of bets acceptable, apart from the store's own
# rule (a batch starts where the agency's stored bets end): every bet valid,
# and the agency's total within the per-agency quota. Each reason a batch is
# refused maps to the ErrorCode the peer is told (`refusal_code`); nothing of a
# refused batch is ever stored.
from __future__ import annotations

from lottery_gevent.contract import Bet
from lottery_gevent.storage import StorageFailure
from shared.domain import validate_bet
from shared.errors import InvalidBet, LotteryError, ServerRefused
from shared.protocol import Bets, ErrorCode


class OverQuota(LotteryError):
    """The batch would take its agency past the per-agency quota (SERVER_MAX_BETS_PER_AGENCY)."""


def build_bets(agency: int, batch: Bets, quota: int) -> list[Bet]:
    """Check the quota and validate every bet of a batch, then build them.

    Raises:
        OverQuota: the batch would end past bet number `quota`.
        InvalidBet: naming the bet.
    """
    end = batch.start + len(batch.bets)
    if end > quota:
        raise OverQuota(
            f"bets #{batch.start}..#{end - 1} would take agency {agency} past its quota of {quota} bets; "
            "nothing of the batch was stored"
        )
    bets = []
    for index, fields in enumerate(batch.bets):
        try:
            validate_bet(fields)
        except InvalidBet as exc:
            raise InvalidBet(exc.field, exc.value, f"{exc.reason} (bet #{batch.start + index})") from exc
        bets.append(Bet(agency, *fields))
    return bets


#: Why a batch was refused -> the code the peer is told.
_REFUSALS: dict[type[LotteryError], ErrorCode] = {
    OverQuota: ErrorCode.QUOTA_EXCEEDED,
    InvalidBet: ErrorCode.INVALID_BET,
    ServerRefused: ErrorCode.OUT_OF_SEQUENCE,  # the store raises it only for a batch out of sequence
    StorageFailure: ErrorCode.STORAGE_FAILURE,
}

#: What `build_bets` and the store's append may raise for a batch.
BATCH_REFUSALS = tuple(_REFUSALS)


def refusal_code(error: LotteryError) -> ErrorCode:
    """The ErrorCode for a batch refused with `error` (one of BATCH_REFUSALS)."""
    return next(code for kind, code in _REFUSALS.items() if isinstance(error, kind))
