"""The course's data (78,697 bets; generated files of its shape when the zip is absent):
five client processes, one of them over a link that delivers one byte per TCP segment."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.conftest import DATASET_BETS, DATASET_SIZES, DATASET_WINNERS, dataset_shape, write_dataset
from tests.proxy import FaultProxy
from tests.support.processes import ClientProcess, ServerProcess, winners_reported

#: The smallest agency goes through the one-byte-per-segment link (the others would take minutes).
CHOPPED_AGENCY = 5


def _file_bets(directory: Path) -> Counter[tuple[str, str, str]]:
    bets: Counter[tuple[str, str, str]] = Counter()
    for agency in DATASET_WINNERS:
        with open(directory / f"agency-{agency}.csv", newline="", encoding="utf-8") as file:
            bets.update((str(agency), row[2], row[4]) for row in csv.reader(file))
    return bets


def test_real_dataset(start_server: Callable[..., ServerProcess], real_dataset: Path, tmp_path: Path) -> None:
    server = start_server(agencies=5)
    with FaultProxy(server.port, chunk=1) as chopper:
        clients = {
            agency: ClientProcess(
                tmp_path,
                agency,
                chopper.port if agency == CHOPPED_AGENCY else server.port,
                real_dataset / f"agency-{agency}.csv",
            )
            for agency in DATASET_WINNERS
        }
        assert {agency: client.wait(180) for agency, client in clients.items()} == dict.fromkeys(DATASET_WINNERS, 0)
    assert {agency: winners_reported(client) for agency, client in clients.items()} == DATASET_WINNERS
    assert server.stop() == 0

    rows = server.stored_rows()
    assert len(rows) == DATASET_BETS
    assert Counter((row[0], row[3], row[5]) for row in rows) == _file_bets(real_dataset)
    received = sum(int(fields["cantidad"]) for fields in server.actions("apuesta_recibida"))
    assert received == DATASET_BETS
    names = [fields["action"] for fields in server.actions()]
    assert names.index("sorteo") > max(i for i, name in enumerate(names) if name == "apuesta_recibida")
    for process in [server, *clients.values()]:
        assert not [line for line in process.lines if "result: fail" in line]


def test_without_the_course_zip_the_generated_files_have_its_shape(tmp_path: Path) -> None:
    # Run everywhere, so the fallback of a fresh clone is checked where the zip is present too.
    write_dataset(tmp_path, None)
    assert dataset_shape(tmp_path) == (DATASET_SIZES, DATASET_WINNERS)
    assert len(_file_bets(tmp_path)) == DATASET_BETS  # no two bets alike: each stored row is told apart
