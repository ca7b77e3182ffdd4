# Recovery: make bets.csv and the done log trustworthy before the server accepts
# anyone, and count what they hold (rows per agency, each agency's resume digest).
# A crash can tear only the *last* record (no final newline, or an unclosed
# quote): recovery parses strictly and cuts the file back to the end of the last
# complete, valid row. Anything wrong before the last record is corruption:
# recovery refuses (ValueError). It never rewrites or reorders a row it keeps.
from __future__ import annotations

import collections
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from lottery_gevent.contract import Bet
from shared.protocol import BetsDigest


@dataclass
class Recovered:
    """What recovery found: rows per agency, the file's size after repair and the torn bytes cut off (in
    bytes), and each agency's resume digest over its kept rows (not compared: digests have no equality)."""

    counts: dict[int, int] = field(default_factory=dict)
    size: int = 0
    repaired_bytes: int = 0
    digests: dict[int, BetsDigest] = field(default_factory=dict, compare=False)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


@dataclass
class _LineFeeder:
    """Hands a binary file's complete lines (a torn tail never) to csv.reader, counting bytes.

    Undecodable bytes are replaced, not raised, and noted in `invalid_utf8`, so that
    the record they are in is known (and its end, for telling whether more follows).
    """

    file: BinaryIO
    consumed: int = 0
    exhausted: bool = False  # every complete line handed out
    invalid_utf8: bool = False

    def __iter__(self) -> Iterator[str]:
        for raw in self.file:
            if not raw.endswith(b"\n"):
                break
            self.consumed += len(raw)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                self.invalid_utf8 = True
                yield raw.decode("utf-8", "replace")
        self.exhausted = True


def stored_form(bet: Bet) -> tuple[str, str, str, str, str]:
    """A bet's fields as the contract writes them: what the resume digest covers."""
    return (bet.first_name, bet.last_name, bet.document, bet.birthdate.isoformat(), str(bet.number))


def recover_bets(path: str) -> Recovered:
    """Scan the bets file at `path` (missing: empty), cut off a torn last record, and count rows.

    Raises ValueError if a record other than the last one is damaged.
    """
    if not os.path.exists(path):
        return Recovered()
    counts: collections.Counter[int] = collections.Counter()
    digests: dict[int, BetsDigest] = {}
    good_end = 0
    problem: str | None = None
    torn = False  # the bad record was cut off by the end of the file
    with open(path, "rb") as file:
        feeder = _LineFeeder(file)
        reader = csv.reader(feeder, strict=True)
        try:
            for row in reader:
                if feeder.invalid_utf8:  # recovery stops at the first bad record: never reset
                    raise ValueError("not UTF-8")
                if len(row) != 6:  # the agency and the five fields of a bet
                    raise ValueError(f"{len(row)} fields, expected 6")
                bet = Bet(*row)
                if bet.agency < 1:
                    raise ValueError(f"agency {bet.agency}")
                counts[bet.agency] += 1
                digests.setdefault(bet.agency, BetsDigest()).update(stored_form(bet))
                good_end = feeder.consumed
        except (csv.Error, ValueError) as exc:
            problem = f"record ending on line {reader.line_num}: {exc}"
            torn = isinstance(exc, csv.Error) and feeder.exhausted
        size = file.seek(0, os.SEEK_END)
    if problem is not None and not torn and feeder.consumed < size:
        raise ValueError(f"{path}: {problem}, yet more records follow it")
    if good_end < size:
        os.truncate(path, good_end)
    return Recovered(dict(counts), good_end, size - good_end, digests)


def recover_done(path: str) -> tuple[set[int], int]:
    """The agencies the done log at `path` (one id per line) records, and the torn bytes cut off its end.

    Raises ValueError if a complete line is not an agency id.
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
