# The course exercise's storage contract, given: its behaviour must not change.
# The server stores bets only through `store_bets` and finds winners only through
# `load_bets` and `has_won`; locking, fsync and crash repair live in storage.py.
from __future__ import annotations

import csv
import datetime
from collections.abc import Iterable, Iterator

#: Where bets are stored, relative to the server's working directory.
STORAGE_FILEPATH = "./bets.csv"
#: The number that wins the draw.
LOTTERY_WINNER_NUMBER = 7574


class Bet:
    """A stored bet. `agency` and `number` are ints, `birthdate` a date."""

    __slots__ = ("agency", "first_name", "last_name", "document", "birthdate", "number")

    def __init__(
        self,
        agency: int | str,
        first_name: str,
        last_name: str,
        document: str,
        birthdate: str,
        number: int | str,
    ) -> None:
        self.agency = int(agency)
        self.first_name = first_name
        self.last_name = last_name
        self.document = document
        self.birthdate = datetime.date.fromisoformat(birthdate)
        self.number = int(number)


def has_won(bet: Bet) -> bool:
    """True if the bet holds the winning number."""
    return bet.number == LOTTERY_WINNER_NUMBER


def store_bets(bets: Iterable[Bet]) -> None:
    """Append bets to STORAGE_FILEPATH, one CSV row each. Not thread-safe, not process-safe."""
    with open(STORAGE_FILEPATH, "a+") as file:
        writer = csv.writer(file, quoting=csv.QUOTE_MINIMAL)
        for bet in bets:
            writer.writerow(
                [
                    bet.agency,
                    bet.first_name,
                    bet.last_name,
                    bet.document,
                    bet.birthdate.isoformat(),
                    bet.number,
                ]
            )


def load_bets() -> Iterator[Bet]:
    """Yield the stored bets in file order. Not thread-safe."""
    with open(STORAGE_FILEPATH) as file:
        reader = csv.reader(file, quoting=csv.QUOTE_MINIMAL)
        for row in reader:
            yield Bet(row[0], row[1], row[2], row[3], row[4], row[5])
