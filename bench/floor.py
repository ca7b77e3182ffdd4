# Strategy: the in-process floor of the ingest, i.e. the Python work that no
# server can avoid, with no sockets, no greenlets and no processes:
#
#   parse   the agency CSVs into validated BetFields (client_gevent.bets_source)
#   build   the storage contract's Bet objects
#   store   contract.store_bets once per batch of BATCH bets
#   store+fsync   the same into a fresh file, with an fsync after every call
#   draw    contract.load_bets + contract.has_won over the stored file
#
# Each stage is timed alone with perf_counter. The no-fsync floor is
# parse + build + store + draw; the durable floor swaps store for store+fsync.
# Every stage runs in a working directory of its own (the contract writes to
# ./bets.csv), entered with contextlib.chdir and left at once.
from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from client_gevent.bets_source import CsvBets
from client_gevent.config import ClientConfig
from lottery_gevent import contract
from lottery_gevent.contract import Bet
from shared.domain import BetFields

#: Bets per store_bets call: the client's default batch.maxAmount.
BATCH = ClientConfig(client_id=1).batch_max_amount


def _store_all(bets: Mapping[int, list[Bet]], workdir: Path, fsync: bool) -> int:
    workdir.mkdir()
    calls = 0
    with contextlib.chdir(workdir):
        fd = os.open(contract.STORAGE_FILEPATH, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            for agency_bets in bets.values():
                for start in range(0, len(agency_bets), BATCH):
                    contract.store_bets(agency_bets[start : start + BATCH])
                    calls += 1
                    if fsync:
                        os.fsync(fd)
        finally:
            os.close(fd)
    return calls


def _draw(workdir: Path) -> dict[int, list[str]]:
    winners: dict[int, list[str]] = collections.defaultdict(list)
    with contextlib.chdir(workdir):
        for bet in contract.load_bets():
            if contract.has_won(bet):
                winners[bet.agency].append(bet.document)
    return dict(winners)


def measure_floor(files: Mapping[int, Path], expected: Mapping[int, list[str]], workdir: Path) -> dict[str, Any]:
    """Time each stage over the agency files (`workdir` must exist and is written to).

    Returns:
        each stage's seconds, both floors' totals, and "ok": the draw found exactly the
        `expected` winning documents (agencies without winners left out).
    Raises:
        BetsFileError: a file holds a bad row.
    """
    start = time.perf_counter()
    parsed: dict[int, list[BetFields]] = {agency: list(CsvBets(path).rows()) for agency, path in files.items()}
    parsed_at = time.perf_counter()
    built = {agency: [Bet(agency, *fields) for fields in rows] for agency, rows in parsed.items()}
    built_at = time.perf_counter()
    calls = _store_all(built, workdir / "plain", fsync=False)
    stored_at = time.perf_counter()
    _store_all(built, workdir / "durable", fsync=True)
    synced_at = time.perf_counter()
    winners = _draw(workdir / "plain")
    drawn_at = time.perf_counter()
    stages = {"parse_s": parsed_at - start, "build_s": built_at - parsed_at, "draw_s": drawn_at - synced_at}
    store = {"store_s": stored_at - built_at, "store_fsync_s": synced_at - stored_at, "store_calls": calls}
    return {
        **stages,
        **store,
        "total_s": sum(stages.values()) + store["store_s"],
        "durable_total_s": sum(stages.values()) + store["store_fsync_s"],
        "bets": sum(map(len, parsed.values())),
        "ok": winners == {agency: docs for agency, docs in expected.items() if docs},
    }
