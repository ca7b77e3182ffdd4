# Recovery: make bets.csv and the done log trustworthy before the server accepts
# anyone, and count what they hold (rows per agency, each agency's resume digest).
# A crash can tear only the *last* record: a row without its final newline, or a
# quoted field whose closing quote never came. Recovery parses strictly, tracking
# where each complete, valid row ends, and cuts the file back to the last one.
# A bad record is cut only if nothing follows it; anything wrong before the last
# record is corruption, and recovery refuses (ValueError) rather than delete a
# complete row. It never rewrites or reorders a row it keeps.
from __future__ import annotations

import collections
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from lottery_gevent.contract import Bet
from shared.protocol import BetsDigest

ROW_FIELDS = 6


@dataclass
class Recovered:
    """What recovery found in a storage file."""

    #: Stored rows per agency.
    counts: dict[int, int] = field(default_factory=dict)
    #: Size of the file after repair, in bytes.
    size: int = 0
    #: Bytes of torn tail that were cut off (0 if none).
    repaired_bytes: int = 0
    #: The resume digest of each agency's kept rows (not compared: digests have no equality).
    digests: dict[int, BetsDigest] = field(default_factory=dict, compare=False)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


class _LineFeeder:
    """Hands a binary file's complete lines to csv.reader, counting bytes as it goes.

    A line without its final newline is a torn tail and is never handed out.
    Undecodable bytes are replaced rather than raised (a generator that raises
    ends, which would hide the rows after it); `take_invalid_utf8()` reports them.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.consumed = 0
        #: True once every complete line has been handed out.
        self.exhausted = False
        self._invalid_utf8 = False

    def __iter__(self) -> Iterator[str]:
        for raw in self._file:
            if not raw.endswith(b"\n"):
                break
            self.consumed += len(raw)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                self._invalid_utf8 = True
                yield raw.decode("utf-8", "replace")
        self.exhausted = True

    def take_invalid_utf8(self) -> bool:
        """True if a line handed out since the last call was not UTF-8."""
        invalid, self._invalid_utf8 = self._invalid_utf8, False
        return invalid


def stored_form(bet: Bet) -> tuple[str, str, str, str, str]:
    """A bet's fields as the contract writes them: what the resume digest covers."""
    return (bet.first_name, bet.last_name, bet.document, bet.birthdate.isoformat(), str(bet.number))


def _parse_row(row: list[str]) -> Bet:
    """A stored row as a Bet; raises ValueError if the row is not a valid bet."""
    if len(row) != ROW_FIELDS:
        raise ValueError(f"{len(row)} fields, expected {ROW_FIELDS}")
    bet = Bet(*row)
    if bet.agency < 1:
        raise ValueError(f"agency {bet.agency}")
    return bet


def recover_bets(path: str) -> Recovered:
    """Scan the bets file at `path`, cut off a torn last record, and count rows.

    A missing file is an empty one.

    Raises:
        ValueError: a record other than the last one is damaged.
    """
    if not os.path.exists(path):
        return Recovered()
    counts: collections.Counter[int] = collections.Counter()
    digests: dict[int, BetsDigest] = {}
    good_end = 0
    problem: str | None = None
    # The bad record is complete (so nothing at all may follow it), rather than
    # cut off by the end of the file.
    problem_complete = False
    with open(path, "rb") as file:
        feeder = _LineFeeder(file)
        reader = csv.reader(feeder, strict=True)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if problem is not None:
                    raise ValueError(f"{path}: {problem}, yet more records follow it") from exc
                problem = f"record ending on line {reader.line_num}: {exc}"
                problem_complete = not feeder.exhausted
                continue
            if problem is not None:
                raise ValueError(f"{path}: {problem}, yet more records follow it")
            try:
                if feeder.take_invalid_utf8():
                    raise ValueError("not UTF-8")
                bet = _parse_row(row)
            except ValueError as exc:
                problem = f"record ending on line {reader.line_num}: {exc}"
                problem_complete = True
                continue
            counts[bet.agency] += 1
            digest = digests.get(bet.agency)
            if digest is None:
                digest = digests[bet.agency] = BetsDigest()
            digest.update(stored_form(bet))
            good_end = feeder.consumed
        size = file.seek(0, os.SEEK_END)
    if problem_complete and feeder.consumed < size:
        raise ValueError(f"{path}: {problem}, yet a torn record follows it")
    if good_end < size:
        os.truncate(path, good_end)
    return Recovered(dict(counts), good_end, size - good_end, digests)


def recover_done(path: str) -> tuple[set[int], int]:
    """Read the done log at `path` (one agency id per line); cut a torn last line.

    Returns:
        The agencies recorded as done, and how many torn bytes were cut.

    Raises:
        ValueError: a complete line is not an agency id.
    """
    if not os.path.exists(path):
        return set(), 0
    with open(path, "rb") as file:
        data = file.read()
    complete = data[: data.rfind(b"\n") + 1]
    done: set[int] = set()
    for number, line in enumerate(complete.splitlines(), start=1):
        if not line.isdigit():
            raise ValueError(f"{path}: line {number} is not an agency id: {line!r}")
        done.add(int(line))
    if len(complete) < len(data):
        os.truncate(path, len(complete))
    return done, len(data) - len(complete)
