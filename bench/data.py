"""The benchmarks' inputs: agency files with their answers known in advance, and TLS credentials.

Guarantees: the course's five agency files when ../shared/data/dataset.zip exists, else generated
files of the same shape (bets and winners per agency); generated sets use one seed, so every day
sees the same bytes; expected winners are documents, never counts. The one place the bench imports
the client's file reader and the product's TLS helpers (a move is one import to fix). Never writes
outside the directory it is given.
"""

from __future__ import annotations

import shutil
import ssl
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from client_gevent.bets_source import CsvBets, batches
from shared.domain import BetFields
from shared.tls import client_tls_context
from tests.support.processes import REPO_ROOT
from tools.generate_agencies import WINNING_NUMBER, generate

#: The course's data: the copy `make data` keeps, else the one beside the project.
_COPY, COURSE_ZIP = REPO_ROOT / ".data" / "dataset.zip", REPO_ROOT.parent / "shared" / "data" / "dataset.zip"
COURSE_ZIP = _COPY if _COPY.exists() else COURSE_ZIP
#: Bets and winners per agency in the course data (../shared/data/README.md).
COURSE_SIZES, COURSE_WINNERS = (26_936, 25_518, 16_014, 9_238, 991), (2, 3, 3, 2, 0)
SEED = 2026
#: In the idle benchmark, every this-many-th agency's one bet wins.
IDLE_WINNER_EVERY = 7
TLS_SETTINGS = "SERVER_TLS_* and CLI_TLS_*, one contest's credentials, a certificate per agency"


@dataclass(frozen=True)
class Dataset:
    """Agency files, each agency's winning documents in file order, and its bet count."""

    source: str
    files: dict[int, Path]
    winners: dict[int, list[str]]
    sizes: dict[int, int]

    @property
    def bets(self) -> int:
        return sum(self.sizes.values())

    @property
    def directory(self) -> Path:
        return next(iter(self.files.values())).parent


def read_bets(path: Path) -> list[BetFields]:
    """An agency file parsed and validated as the client does it (BetsFileError on a bad row)."""
    return list(CsvBets(path).rows())


def batched(path: Path, size: int) -> Iterator[list[BetFields]]:
    """An agency file's bets in the client's batches of at most `size` (and one frame)."""
    return batches(read_bets(path), size)


def ingest_dataset(directory: Path, *, scale: float = 1.0) -> Dataset:
    """The course files (if present and `scale` is 1), else generated ones of their shape, `scale` times as big.

    Raises:
        ValueError: the zip does not hold the course data.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[int, Path] = {}
    winners: dict[int, list[str]] = {}
    sizes: dict[int, int] = {}
    if scale == 1.0 and COURSE_ZIP.exists():
        with zipfile.ZipFile(COURSE_ZIP) as archive:
            archive.extractall(directory)
        for agency in range(1, len(COURSE_SIZES) + 1):
            bets = read_bets(files.setdefault(agency, directory / f"agency-{agency}.csv"))
            sizes[agency], winners[agency] = len(bets), [b.document for b in bets if b.number == str(WINNING_NUMBER)]
        if tuple(sizes.values()) != COURSE_SIZES or tuple(map(len, winners.values())) != COURSE_WINNERS:
            raise ValueError(f"{COURSE_ZIP} does not hold the course data: sizes {sizes}, winners {winners}")
        return Dataset(f"course dataset ({COURSE_ZIP.name})", files, winners, sizes)
    for agency, (size, wins) in enumerate(zip(COURSE_SIZES, COURSE_WINNERS, strict=True), start=1):
        # generate() writes agencies 1..K; only agency K is kept, so documents stay distinct.
        made = generate(directory / "scratch", agency, max(int(size * scale), wins), [0] * (agency - 1) + [wins], SEED)
        files[agency] = made[-1].path.replace(directory / made[-1].path.name)
        winners[agency], sizes[agency] = made[-1].winners, made[-1].bets
        shutil.rmtree(directory / "scratch")
    return Dataset(f"generated, shaped like the course data (seed {SEED})", files, winners, sizes)


def generated_dataset(directory: Path, agencies: int, bets: int) -> Dataset:
    """`agencies` agencies of `bets` bets each, with the generator's spread of winners."""
    made = {agency.agency: agency for agency in generate(directory, agencies, bets, None, SEED)}
    files, winners = {k: a.path for k, a in made.items()}, {k: a.winners for k, a in made.items()}
    return Dataset(f"generated ({agencies} x {bets}, seed {SEED})", files, winners, dict.fromkeys(made, bets))


def idle_bet(agency: int) -> BetFields:
    """The one bet idle agency `agency` sends; every IDLE_WINNER_EVERY-th one wins."""
    number = WINNING_NUMBER if agency % IDLE_WINNER_EVERY == 0 else agency % WINNING_NUMBER
    return BetFields("Ana María", "Núñez", str(50_000_000 + agency), "1990-05-17", str(number))


def idle_winners(agency: int) -> list[str]:
    bet = idle_bet(agency)
    return [bet.document] if bet.number == str(WINNING_NUMBER) else []


def server_tls_env(directory: Path | None) -> dict[str, str]:
    """The server's TLS settings for the credentials in `directory` (None: plaintext, no settings)."""
    names = {"CERT": "server.pem", "KEY": "server.key", "CA": "ca.pem"} if directory else {}
    return {f"SERVER_TLS_{key}": str(Path(directory or ".") / name) for key, name in names.items()}


def client_tls_env(directory: Path, agency: int) -> dict[str, str]:
    names = {"CA": "ca.pem", "CERT": f"agency-{agency}.pem", "KEY": f"agency-{agency}.key"}
    return {f"CLI_TLS_{key}": str(directory / name) for key, name in names.items()}


def agency_context(directory: Path, agency: int) -> ssl.SSLContext:
    """Agency `agency`'s client TLS context (the load generator plays many agencies)."""
    certificate, key = directory / f"agency-{agency}.pem", directory / f"agency-{agency}.key"
    return client_tls_context(directory / "ca.pem", certificate, key)
