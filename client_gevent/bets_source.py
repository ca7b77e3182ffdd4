# Contract: where an agency's bets come from, streamed: the CSV file (five
# columns, no header, UTF-8, LF or CRLF, blank lines ignored) is read row by
# row, never whole, and every row is validated (shared.domain, and small enough
# for one frame) before it is handed out, so the upload stops at a bad row.
# `check` looks at the file before connecting; `prefix` digests its first rows;
# `batches` cuts the rows into batches of at most max_amount bets and one frame.
# Bytes that are not UTF-8 are decoded with "surrogateescape", so the error
# names their row (validate_bet refuses a lone surrogate), not a decoding chunk.
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from shared.domain import FIELD_COUNT, BetFields, validate_bet
from shared.errors import InvalidBet, LotteryError
from shared.protocol import BETS_FRAME_OVERHEAD, MAX_FRAME_SIZE, BetsDigest, bet_wire_size


class BetsFileError(LotteryError):
    """The bets file (`path`) is missing or holds a bad row (ending on `line`; None: the file itself)."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


class CsvBets:
    """The bets of one agency file; `line` is where the last row read ends (for error messages)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.line: int | None = 0

    def check(self, *, allow_empty: bool = False) -> None:
        """Before connecting: the file is readable and starts with a valid row (or is empty, if allowed)."""
        if next(self.rows(), None) is None and not allow_empty:
            raise BetsFileError(self.path, None, "holds no bets (pass --allow-empty if that is intended)")

    def rows(self, skip: int = 0) -> Iterator[BetFields]:
        """Yield validated bets after the first `skip` (stored) ones; BetsFileError names a bad row's line."""
        index = 0
        for row in self._records():
            index += 1
            if index > skip:
                yield self._bet(row)
        if index < skip:
            reason = f"has {index} bets, but the server already stores {skip} of this agency"
            raise BetsFileError(self.path, None, reason)

    def count(self) -> int:
        """The file's non-blank lines, not parsed: the total the agency states in Hello (for display only)."""
        with open(self.path, "rb") as file:
            return sum(1 for line in file if line.strip())

    def prefix(self, count: int, *, to_end: bool = False) -> tuple[bytes, int]:
        """The resume digest of the first `count` bets, and how many were read (all of them if `to_end`)."""
        digest = BetsDigest()
        index = 0
        for row in self._records():
            if index >= count and not to_end:
                break
            bet = self._bet(row)
            index += 1
            if index <= count:
                digest.update(bet)
        return digest.digest(), index

    def _records(self) -> Iterator[list[str]]:
        """Every non-blank CSV record of the file, as read; keeps `line` up to date."""
        try:
            file = open(self.path, encoding="utf-8", errors="surrogateescape", newline="")
        except OSError as exc:
            raise BetsFileError(self.path, None, f"cannot open: {exc.strerror or exc}") from exc
        with file:
            reader = csv.reader(file, strict=True)
            try:
                for row in reader:
                    self.line = reader.line_num
                    if row:
                        yield row
            except csv.Error as exc:  # line_num already counts the line the parser stopped on
                raise BetsFileError(self.path, reader.line_num, f"unreadable row: {exc}") from exc
            except OSError as exc:  # a directory, an unreadable device
                raise BetsFileError(self.path, None, f"cannot read: {exc.strerror or exc}") from exc

    def _bet(self, row: list[str]) -> BetFields:
        if len(row) != FIELD_COUNT:
            raise BetsFileError(self.path, self.line, f"{len(row)} fields, expected {FIELD_COUNT}")
        bet = BetFields._make(row)
        try:
            validate_bet(bet)
        except InvalidBet as exc:
            raise BetsFileError(self.path, self.line, str(exc)) from exc
        size = BETS_FRAME_OVERHEAD + bet_wire_size(bet)
        if size > MAX_FRAME_SIZE:
            reason = f"the bet of document {bet.document} needs {size} bytes; a frame holds {MAX_FRAME_SIZE}"
            raise BetsFileError(self.path, self.line, reason)
        return bet


class SingleBet(CsvBets):
    """One bet given in the environment (NOMBRE, APELLIDO, DOCUMENTO, NACIMIENTO, NUMERO): a file of one row."""

    def __init__(self, bet: BetFields) -> None:
        super().__init__(Path("<environment>"))
        self.bet = bet
        self.line = None  # errors name the bet, not a line

    def _records(self) -> Iterator[list[str]]:
        yield list(self.bet)

    def count(self) -> int:
        return 1


def batches(
    bets: Iterable[BetFields], max_amount: int, max_frame_size: int = MAX_FRAME_SIZE
) -> Iterator[list[BetFields]]:
    """Yield lists of consecutive bets, each at most `max_amount` and one frame; none dropped or split."""
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
