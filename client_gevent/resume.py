# Contract: whether a Welcome's `stored` may be trusted. The server says how many
# of this agency's bets its contest holds, and their resume digest; the agency
# digests as many rows of its file. Equal digests mean the server holds exactly
# this file's first rows, so skipping them skips and repeats nothing. Anything
# else (other bets, more than the file has, or "done" while the file holds bets
# the server never got) is an UnexpectedReply: the run ends with nothing sent.
from __future__ import annotations

from client_gevent.bets_source import CsvBets
from shared.errors import UnexpectedReply
from shared.protocol import Welcome


def check_resume(welcome: Welcome, source: CsvBets, agency: int) -> None:
    """Check that the Welcome's stored bets are the first rows of `source`.

    Raises UnexpectedReply if they are not, BetsFileError if the file or a row of the prefix is bad.
    """
    stored = welcome.stored
    where = f"agency {agency}: contest {welcome.contest.hex()}"
    digest, rows = source.prefix(stored, to_end=welcome.done)
    if rows < stored:
        reason = f"{where} holds {stored} bets of this agency, but {source.path} has only {rows}"
    elif welcome.done and rows > stored:
        reason = f"{where} has this agency done with {stored} bets, but {source.path} has {rows}"
    elif digest != welcome.digest:
        reason = f"{where} holds {stored} bets of this agency that are not the first {stored} rows of {source.path}"
    else:
        return
    what_to_do = "run this agency with the file it uploaded to that contest, or start a new contest on the server"
    raise UnexpectedReply(f"{reason}; {what_to_do} (python -m lottery_gevent --new-contest)")
