"""Deterministic synthetic agency files, with a known set of winners.

    python3 -m tools.generate_agencies OUT_DIR [--agencies N] [--bets B] [--winners W,W,...] [--seed S]

writes OUT_DIR/agency-1.csv ... agency-N.csv in the course's format (five
columns, no header, CRLF line endings, UTF-8) and prints each agency's number
of winners. The same arguments always give the same bytes.

Names deliberately include what breaks naive parsers: accents, commas, quotes,
pipes and semicolons (the CSV writer quotes them as needed).
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: lottery_gevent.contract.LOTTERY_WINNER_NUMBER, copied so tools/ stands alone; the tests that draw
#: generated files (tests/integration/test_lottery_flow.py) fail if the two differ.
WINNING_NUMBER = 7574

FIRST_NAMES = [
    "Santiago Lionel",
    "Agustín Emanuel",
    "Tiago Nicolás",
    "María José",
    "Ana",
    "Lucía",
    "Joaquín",
    "Zoë",
    "Ñandú",
    "O'Brien",
    "Juan, Pablo",
    'Martín "Tincho"',
    "Sofía|Belén",
    "Renée; Ana",
]
LAST_NAMES = ["Lorca", "Zambrano", "Rivera", "Pérez", "Gómez", "Núñez", "Ibáñez", "D'Angelo", "Müller"]

DEFAULT_AGENCIES = 5
DEFAULT_BETS = 15_000
DEFAULT_SEED = 2026


@dataclass
class Agency:
    """One generated agency file."""

    agency: int
    path: Path
    bets: int
    #: Documents of the winning bets, in file order.
    winners: list[str] = field(default_factory=list)


def default_winners(agencies: int) -> list[int]:
    """A spread of winner counts, ending with an agency that wins nothing."""
    pattern = [2, 1, 3, 2]
    counts = [pattern[i % len(pattern)] for i in range(agencies)]
    if counts:
        counts[-1] = 0
    return counts


def generate(
    out_dir: Path,
    agencies: int = DEFAULT_AGENCIES,
    bets: int | Sequence[int] = DEFAULT_BETS,
    winners: Sequence[int] | None = None,
    seed: int = DEFAULT_SEED,
) -> list[Agency]:
    """Write `agencies` files; agency K has `bets` rows (or bets[K-1]), winners[K-1] of them winning.

    Raises:
        ValueError: the bet or winner counts do not fit the agencies, or a count of winners its bets.
    """
    sizes = [bets] * agencies if isinstance(bets, int) else list(bets)
    counts = default_winners(agencies) if winners is None else list(winners)
    if len(counts) != agencies or len(sizes) != agencies:
        raise ValueError(f"{len(sizes)} bet counts and {len(counts)} winner counts for {agencies} agencies")
    if any(count < 0 or count > size for count, size in zip(counts, sizes, strict=True)):
        raise ValueError("each winner count must be within 0..its agency's bets")
    out_dir.mkdir(parents=True, exist_ok=True)
    generated = []
    for agency, (size, count) in enumerate(zip(sizes, counts, strict=True), start=1):
        rng = random.Random(f"{seed}-{agency}")
        winning_rows = set(rng.sample(range(size), count))
        path = out_dir / f"agency-{agency}.csv"
        result = Agency(agency, path, size)
        with open(path, "w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, lineterminator="\r\n")
            for row in range(size):
                document = str(10_000_000 + agency * 1_000_000 + row)
                if row in winning_rows:
                    number = WINNING_NUMBER
                    result.winners.append(document)
                else:
                    number = rng.randrange(9_999)
                    number += number >= WINNING_NUMBER  # any number but the winning one
                birthdate = f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                writer.writerow([rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), document, birthdate, number])
        generated.append(result)
    return generated


def _winner_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("must be comma-separated integers, e.g. 2,1,0") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.generate_agencies", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--agencies", type=int, default=DEFAULT_AGENCIES)
    parser.add_argument("--bets", type=int, default=DEFAULT_BETS, help="bets per agency")
    parser.add_argument("--winners", type=_winner_list, default=None, help="winners per agency, e.g. 2,1,0")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    try:
        agencies = generate(args.out_dir, args.agencies, args.bets, args.winners, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    for agency in agencies:
        print(f"{agency.path}: {agency.bets} bets, {len(agency.winners)} winners")
    return 0


if __name__ == "__main__":
    sys.exit(main())
