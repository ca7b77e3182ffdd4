# Strategy: the inputs of every benchmark, with the answers known in advance.
#
#   - `ingest_dataset`: the course's five agency files when
#     ../shared/data/dataset.zip exists, otherwise generated files of exactly the
#     same shape (same bets per agency, same winners per agency);
#   - `generated_dataset`: N equal agencies from tools.generate_agencies;
#   - `idle_bet`: the single bet each idle agency sends, a winner for every
#     IDLE_WINNER_EVERY-th agency, so the idle benchmark's answers can be checked.
#
# Expected winners are documents, not counts: for generated files the generator
# returns them; for the course files they are read off the files (the rows whose
# number is the winning one), and checked against the course's published counts.
from __future__ import annotations

import csv
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from shared.domain import BetFields
from tests.support.processes import REPO_ROOT
from tools.generate_agencies import WINNING_NUMBER, generate

#: The course's real data, beside the project root (absent on some machines).
COURSE_ZIP = REPO_ROOT.parent / "shared" / "data" / "dataset.zip"
#: Bets per agency in the course data (78,697 in all).
COURSE_SIZES = (26_936, 25_518, 16_014, 9_238, 991)
#: Winners per agency in the course data.
COURSE_WINNERS = (2, 3, 3, 2, 0)
#: Seed of every generated file set, so runs on different days see the same bytes.
SEED = 2026
#: In the idle benchmark, every this-many-th agency's single bet wins.
IDLE_WINNER_EVERY = 7


@dataclass(frozen=True)
class Dataset:
    """Agency files and what the draw must give each agency."""

    #: Where the data came from, for the report.
    source: str
    #: agency -> its CSV file.
    files: dict[int, Path]
    #: agency -> its winning documents, in file order.
    winners: dict[int, list[str]]
    #: agency -> its number of bets.
    sizes: dict[int, int]

    @property
    def bets(self) -> int:
        return sum(self.sizes.values())

    @property
    def directory(self) -> Path:
        """Where the agency-K.csv files are."""
        return next(iter(self.files.values())).parent


def _winning_documents(path: Path) -> tuple[int, list[str]]:
    with open(path, newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file) if row]
    return len(rows), [row[2] for row in rows if row[4] == str(WINNING_NUMBER)]


def course_dataset(directory: Path) -> Dataset:
    """Unzip the course data into `directory`.

    Raises:
        ValueError: the zip does not hold the agency files the course describes.
    """
    with zipfile.ZipFile(COURSE_ZIP) as archive:
        archive.extractall(directory)
    files, winners, sizes = {}, {}, {}
    for agency in range(1, len(COURSE_SIZES) + 1):
        files[agency] = directory / f"agency-{agency}.csv"
        sizes[agency], winners[agency] = _winning_documents(files[agency])
    if tuple(sizes.values()) != COURSE_SIZES or tuple(map(len, winners.values())) != COURSE_WINNERS:
        raise ValueError(f"{COURSE_ZIP} does not hold the course data: sizes {sizes}, winners {winners}")
    return Dataset(f"course dataset ({COURSE_ZIP.name})", files, winners, sizes)


def shaped_dataset(directory: Path, sizes: tuple[int, ...], winner_counts: tuple[int, ...]) -> Dataset:
    """Generate agency K with sizes[K-1] bets and winner_counts[K-1] winners (K = 1..len(sizes))."""
    files, winners, counts = {}, {}, {}
    for agency, (size, wins) in enumerate(zip(sizes, winner_counts, strict=True), start=1):
        # generate() writes agencies 1..K; only agency K is kept (ids, and so documents, stay distinct).
        scratch = directory / f"gen-{agency}"
        made = generate(scratch, agency, size, [0] * (agency - 1) + [wins], SEED)[-1]
        files[agency] = directory / made.path.name
        made.path.replace(files[agency])
        shutil.rmtree(scratch)
        winners[agency], counts[agency] = made.winners, size
    return Dataset(f"generated, shaped like the course data (seed {SEED})", files, winners, counts)


def ingest_dataset(directory: Path, *, scale: float = 1.0) -> Dataset:
    """The ingest benchmark's data in `directory`: the course files if present and `scale` is 1, else
    generated ones, `scale` times the course's size."""
    if scale == 1.0 and COURSE_ZIP.exists():
        return course_dataset(directory)
    sizes = tuple(max(int(size * scale), wins) for size, wins in zip(COURSE_SIZES, COURSE_WINNERS, strict=True))
    return shaped_dataset(directory, sizes, COURSE_WINNERS)


def generated_dataset(directory: Path, agencies: int, bets: int) -> Dataset:
    """`agencies` agencies of `bets` bets each, with the generator's default spread of winners."""
    made = generate(directory, agencies, bets, None, SEED)
    return Dataset(
        f"generated ({agencies} x {bets}, seed {SEED})",
        {agency.agency: agency.path for agency in made},
        {agency.agency: agency.winners for agency in made},
        {agency.agency: agency.bets for agency in made},
    )


def idle_bet(agency: int) -> BetFields:
    """The one bet idle agency `agency` sends."""
    number = WINNING_NUMBER if agency % IDLE_WINNER_EVERY == 0 else agency % WINNING_NUMBER
    return BetFields("Ana María", "Núñez", str(50_000_000 + agency), "1990-05-17", str(number))


def idle_winners(agency: int) -> list[str]:
    """What the draw must answer idle agency `agency`."""
    bet = idle_bet(agency)
    return [bet.document] if bet.number == str(WINNING_NUMBER) else []
