"""Fault tests: bounded, seeded, loopback only; each stops by itself."""

from __future__ import annotations

import csv
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import DATASET_BETS, DATASET_WINNERS
from tests.support.processes import ClientProcess, ServerProcess, parse_action, winners_reported


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this directory `faults` (select with -m faults, or skip with -m 'not faults')."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.faults)


#: How long clients keep retrying while a fault lasts.
CLIENT_RETRY = {"CLI_CONNECTION_RETRYTIMEOUT": "60s"}


def free_port() -> int:
    """A port nobody listens on now (the server reuses it across restarts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def file_bets(paths: dict[int, Path]) -> Counter[tuple[str, str, str]]:
    """The multiset of (agency, document, number) in the agencies' files."""
    bets: Counter[tuple[str, str, str]] = Counter()
    for agency, path in paths.items():
        with open(path, newline="", encoding="utf-8") as file:
            bets.update((str(agency), row[2], row[4]) for row in csv.reader(file) if row)
    return bets


def stored_bets(server: ServerProcess) -> Counter[tuple[str, str, str]]:
    return Counter((row[0], row[3], row[5]) for row in server.stored_rows())


def dataset_paths(directory: Path) -> dict[int, Path]:
    return {agency: directory / f"agency-{agency}.csv" for agency in DATASET_WINNERS}


def start_clients(
    workdir: Path, paths: dict[int, Path], port_of: dict[int, int], env: dict[str, str] | None = None
) -> dict[int, ClientProcess]:
    return {
        agency: ClientProcess(workdir, agency, port_of[agency], path, env={**CLIENT_RETRY, **(env or {})})
        for agency, path in paths.items()
    }


def after_batches(count: int) -> Callable[[str], bool]:
    """A log-line predicate that holds once the server has stored `count` batches (a stateful counter)."""
    seen = [0]

    def reached(line: str) -> bool:
        fields = parse_action(line)
        if fields is not None and fields["action"] == "apuesta_recibida" and fields["result"] == "success":
            seen[0] += 1
        return seen[0] >= count

    return reached


def check_exact_result(server: ServerProcess, clients: dict[int, ClientProcess], paths: dict[int, Path]) -> None:
    """Every agency exited 0 with its course winners; the server stopped cleanly holding exactly the files' bets."""
    assert {agency: client.wait(240) for agency, client in clients.items()} == dict.fromkeys(paths, 0)
    assert {agency: winners_reported(client) for agency, client in clients.items()} == DATASET_WINNERS
    assert server.stop() == 0
    assert len(server.stored_rows()) == DATASET_BETS
    assert stored_bets(server) == file_bets(paths)
    assert "Traceback" not in server.output()
