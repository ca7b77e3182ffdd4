"""How cost grows with work: 1,000 agencies x 1,000 bets against one server.

    python3 -m bench.million [--agencies N] [--bets N]

Figures as plain data (`run() -> dict`); ``make bench`` puts them on the page.
"""

# Strategy: three contests through the same load generator (bench.loadgen
# scale: every agency a greenlet in one process, all uploading at once, batches
# of 125 as the client sends), each against a fresh server with fsync on:
#   1. the course data (5 agencies, 78,697 bets): the per-bet CPU reference;
#   2. 1,000 agencies x 100 bets (100k), a contest of its own: one batch per
#      agency, so fewer uploads are in flight at once than in 3;
#   3. 1,000 agencies x 1,000 bets (1M): sustained bets/s, the draw, and the
#      peak RSS read twice in the same run, once 100k bets are stored and once
#      all 1M are: with the same connections doing the same thing, any growth
#      between the two is growth with the number of bets.
# Server CPU is counted from the moment it listens (start-up imports are not
# per-bet work) to the moment the last agency has its answer; peak RSS is
# VmHWM. The draw's time is from the server's last `agency_done` line to its
# `sorteo` line, as the line reader sees them arrive (the lines' own stamps
# have whole seconds only). Every agency must get exactly its own winning
# documents and bets.csv exactly each agency's bets. SERVER_MAX_CONNECTIONS_PER_IP
# is 0: every agency connects from 127.0.0.1.
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._procs import cpu_seconds, memory_kib
from bench.data import Dataset, generated_dataset, ingest_dataset
from bench.fleets import server_with_load
from bench.spec import Variant
from tests.support.processes import ServerProcess

AGENCIES = 1_000
BETS_PER_AGENCY = 1_000
BATCH = 125
CONNECT_CONCURRENCY = 250
#: Bound on one wait for the server's lines (the generator has its own).
TIMEOUT_S = 900.0
PLAINTEXT = Variant("plaintext", "plaintext")


def _watch(server: ServerProcess, agencies: int, marks: Sequence[int], seen: dict[str, float]) -> threading.Thread:
    """A thread that follows the server's log: its peak RSS once `marks` bets are stored, the draw's time.

    Records seen["rss_kib@N"] for each mark N (VmHWM when the batch line taking the
    stored count to N or past it arrives), seen["last_done"] and seen["draw"] (arrival times).
    """
    stored = 0
    pending = sorted(marks)

    def count(line: str) -> bool:
        nonlocal stored
        match = re.search(r"action: apuesta_recibida \| result: success \| cantidad: (\d+)", line)
        if match:
            stored += int(match.group(1))
            while pending and stored >= pending[0]:
                seen[f"rss_kib@{pending.pop(0)}"] = memory_kib(server.pid, "VmHWM")
        return not pending

    def watch() -> None:
        try:
            server.wait_for_line(count, TIMEOUT_S)
            server.wait_for_count(r"action: agency_done \| result: success", agencies, TIMEOUT_S)
            seen["last_done"] = time.monotonic()
            server.wait_for_line(r"action: sorteo \| result: success", TIMEOUT_S)
            seen["draw"] = time.monotonic()
        except (TimeoutError, OSError, KeyError):
            pass  # the figure stays missing; the contest's own checks fail it

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def contest(dataset: Dataset, marks: Sequence[int] = ()) -> dict[str, Any]:
    """One contest of `dataset` against a fresh server; its figures as a dict.

    Args:
        dataset: the agencies' files and their winners.
        marks: stored-bet counts at which to read the server's peak RSS.

    Raises:
        RuntimeError: the load generator failed.
    """
    agencies = len(dataset.files)
    args = ["--agencies", str(agencies), "--data", str(dataset.directory), "--batch", str(BATCH)]
    args += ["--connect-concurrency", str(CONNECT_CONCURRENCY)]
    stamps: dict[str, float] = {}
    with server_with_load("scale", args, PLAINTEXT, agencies, agencies) as load:
        cpu_at_listen = cpu_seconds(load.server.pid)
        watcher = _watch(load.server, agencies, marks, stamps)
        report, server, stored = load.finish()
        watcher.join(TIMEOUT_S)
    answers = {int(agency): documents for agency, documents in report["winners"].items()}
    exact = sum(
        1 for agency, expected in dataset.winners.items() if sorted(answers.get(agency) or []) == sorted(expected)
    )
    cpu = server["server_cpu_s"] - cpu_at_listen
    elapsed = report["elapsed_s"]
    return {
        "source": dataset.source,
        "agencies": agencies,
        "bets": dataset.bets,
        "elapsed_s": elapsed,
        "bets_per_s": dataset.bets / elapsed,
        "server_cpu_s": cpu,
        "server_cpu_us_per_bet": cpu / dataset.bets * 1e6,
        "server_peak_rss_mib": server["server_peak_rss_kib"] / 1024,
        "draw_s": stamps["draw"] - stamps["last_done"] if {"draw", "last_done"} <= stamps.keys() else None,
        **{f"peak_rss_mib_at_{mark}_bets": stamps.get(f"rss_kib@{mark}", math.nan) / 1024 for mark in marks},
        "agencies_exact": exact,
        "rows_exact": dict(stored) == dataset.sizes,
        "errors": report["errors"],
        "server_exit": server["server_exit"],
    }


def _correct(figures: dict[str, Any]) -> bool:
    return bool(
        figures["agencies_exact"] == figures["agencies"]
        and figures["rows_exact"]
        and not figures["errors"]
        and figures["server_exit"] == 0
    )


def run(agencies: int = AGENCIES, bets: int = BETS_PER_AGENCY, base_dir: Path | None = None) -> dict[str, Any]:
    """The course reference, the 100k and the 1M contests.

    Returns:
        {"course", "small", "million": per-contest figures; "cpu_per_bet_ratio": the 1M
        contest's server CPU per bet over the course data's; "rss_growth_tenth_to_all": in
        the 1M contest, peak RSS with every bet stored over peak RSS at a tenth of them;
        "correct": every contest exact}.
    """
    with tempfile.TemporaryDirectory(prefix="bench-million-data-", dir=base_dir) as tmp:
        root = Path(tmp)
        (root / "course").mkdir()
        # The course files when ../shared/data/dataset.zip exists, else generated ones of their shape.
        course = contest(ingest_dataset(root / "course"))
        small = contest(generated_dataset(root / "small", agencies, max(bets // 10, 1)))
        total = agencies * bets
        million = contest(generated_dataset(root / "million", agencies, bets), (total // 10, total))
    return {
        "course": course,
        "small": small,
        "million": million,
        "cpu_per_bet_ratio": million["server_cpu_us_per_bet"] / course["server_cpu_us_per_bet"],
        # In one run: the peak once a tenth of the bets is stored, and once all are.
        "rss_growth_tenth_to_all": million[f"peak_rss_mib_at_{total}_bets"]
        / million[f"peak_rss_mib_at_{total // 10}_bets"],
        "correct": all(map(_correct, (course, small, million))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.million", description=__doc__.splitlines()[0])
    parser.add_argument("--agencies", type=int, default=AGENCIES)
    parser.add_argument("--bets", type=int, default=BETS_PER_AGENCY, help="bets per agency")
    args = parser.parse_args(argv)
    figures = run(args.agencies, args.bets)
    json.dump(figures, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if figures["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
