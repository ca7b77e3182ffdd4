# Strategy: whether a Welcome's `stored` may be trusted. The server says how many
# of this agency's bets its contest holds, and their resume digest
# (shared/protocol/_digest.py); the agency computes the digest of the same
# number of rows of its own file. Equal digests mean the server holds exactly
# this file's first rows, so skipping them skips nothing and repeats nothing.
# Anything else (other bets, more bets than the file has, or "done" while the
# file holds bets the server never got) is a ResumeMismatch: the run ends with
# nothing sent, and the server's files are left as they are.
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from shared.errors import LotteryError
from shared.protocol import Welcome

#: What the refusal tells the user to do.
WHAT_TO_DO = (
    "run this agency with the file it uploaded to that contest, "
    "or start a new contest on the server (python -m lottery_gevent --new-contest)"
)


class ResumeMismatch(LotteryError):
    """The server's contest holds bets for this agency that are not its file's first rows.

    Attributes:
        contest: the server's contest id.
    """

    def __init__(self, contest: bytes, reason: str) -> None:
        self.contest = contest
        super().__init__(f"{reason}; {WHAT_TO_DO}")


class _Prefixed(Protocol):
    path: Path

    def prefix(self, count: int, *, to_end: bool = False) -> tuple[bytes, int]: ...


def check_resume(welcome: Welcome, source: _Prefixed, agency: int) -> None:
    """Check that the Welcome's stored bets are the first rows of `source`.

    Raises:
        ResumeMismatch: they are not (see the module header).
        BetsFileError: the file cannot be read, or a row of the prefix is bad.
    """
    stored, contest = welcome.stored, welcome.contest
    where = f"agency {agency}: contest {contest.hex()}"
    digest, rows = source.prefix(stored, to_end=welcome.done)
    if rows < stored:
        raise ResumeMismatch(contest, f"{where} holds {stored} bets of this agency, but {source.path} has only {rows}")
    if welcome.done and rows > stored:
        raise ResumeMismatch(
            contest,
            f"{where} has this agency done with {stored} bets, but {source.path} has {rows}",
        )
    if digest != welcome.digest:
        raise ResumeMismatch(
            contest,
            f"{where} holds {stored} bets of this agency that are not the first {stored} rows of {source.path}",
        )
