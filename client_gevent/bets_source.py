# Contract: where an agency's bets come from, streamed: the CSV file (five
# columns, no header, UTF-8, LF or CRLF, blank lines ignored) is read row by
# row, never whole, and every row is validated (shared.domain, and small enough
# for one frame) before it is handed out, so a bad row stops the upload before
# anything from it on is sent. `check` looks at the file before the first
# connection; `prefix` computes the resume digest of its first rows (resume.py).
# Bytes that are not UTF-8 are decoded with "surrogateescape", so the error
# names the row they are on (validate_bet refuses a lone surrogate), not the
# 8 KiB chunk the text layer was decoding.
from __future__ import annotations

import csv
from collections.abc import Iterator
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


def _valid(bet: BetFields, path: Path, line: int | None) -> BetFields:
    try:
        validate_bet(bet)
    except InvalidBet as exc:
        raise BetsFileError(path, line, str(exc)) from exc
    size = BETS_FRAME_OVERHEAD + bet_wire_size(bet)
    if size > MAX_FRAME_SIZE:
        raise BetsFileError(
            path, line, f"the bet of document {bet.document} needs {size} bytes; a frame holds {MAX_FRAME_SIZE}"
        )
    return bet


class CsvBets:
    """The bets of one agency file; `line` is where the last row read ends (for error messages)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.line = 0

    def check(self, *, allow_empty: bool = False) -> None:
        """Before connecting: the file is readable and starts with a valid row (or is empty, if allowed)."""
        for _ in self.rows():
            return
        if not allow_empty:
            raise BetsFileError(self.path, None, "holds no bets (pass --allow-empty if that is intended)")

    def rows(self, skip: int = 0) -> Iterator[BetFields]:
        """Yield validated bets after the first `skip` (stored) ones; BetsFileError names a bad row's line."""
        index = 0
        for row in self._records():
            index += 1
            if index > skip:
                yield self._bet(row)
        if index < skip:
            raise BetsFileError(
                self.path, None, f"has {index} bets, but the server already stores {skip} of this agency"
            )

    def count(self) -> int:
        """The file's rows, not validated (the total the agency states in Hello)."""
        return sum(1 for _ in self._records())

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
            while True:
                try:
                    row = next(reader, None)
                except csv.Error as exc:
                    # line_num already counts the line the parser stopped on.
                    raise BetsFileError(self.path, reader.line_num, f"unreadable row: {exc}") from exc
                except OSError as exc:  # a directory, an unreadable device
                    raise BetsFileError(self.path, None, f"cannot read: {exc.strerror or exc}") from exc
                self.line = reader.line_num
                if row is None:
                    return
                if row:
                    yield row

    def _bet(self, row: list[str]) -> BetFields:
        if len(row) != FIELD_COUNT:
            raise BetsFileError(self.path, self.line, f"{len(row)} fields, expected {FIELD_COUNT}")
        return _valid(BetFields._make(row), self.path, self.line)


class SingleBet:
    """One bet given in the environment (NOMBRE, APELLIDO, DOCUMENTO, NACIMIENTO, NUMERO)."""

    def __init__(self, bet: BetFields) -> None:
        self.bet = bet
        self.path = Path("<environment>")

    def rows(self, skip: int = 0) -> Iterator[BetFields]:
        """Yield the bet, unless the server already stores it; raises BetsFileError if invalid."""
        _valid(self.bet, self.path, None)
        if skip == 0:
            yield self.bet

    def check(self, *, allow_empty: bool = False) -> None:
        """Validate the bet before connecting; raises BetsFileError if invalid."""
        for _ in self.rows():
            return

    def count(self) -> int:
        return 1

    def prefix(self, count: int, *, to_end: bool = False) -> tuple[bytes, int]:
        """The resume digest of the first `count` bets (0 or 1 here), and how many were read."""
        digest = BetsDigest()
        read = 1 if count or to_end else 0
        if count:
            digest.update(self.bet)
        return digest.digest(), read


BetsSource = CsvBets | SingleBet
