# Strategy: the scale benchmark. One server process and one load-generator
# process (bench.loadgen scale) running one greenlet per agency, all agencies
# uploading at once. The generator reports the total time (first connect to
# last answer) and every batch's acknowledgement latency; the server's peak RSS
# and CPU come from /proc once the generator has exited. Correctness: every
# agency got exactly its own winning documents (compared as documents, with
# the generator's record of which rows it made winners), and bets.csv holds
# exactly each agency's bets.
from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._procs import ServerChild, finish_load, run_python
from bench._stats import percentile
from bench.data import Dataset, generated_dataset

AGENCIES = 1_000
BETS_PER_AGENCY = 100
#: Longest one run may take before it is declared failed.
SCALE_TIMEOUT_S = 300.0
#: Agencies connecting at the same moment.
CONNECT_CONCURRENCY = 250
LISTEN_BACKLOG = 4096


@dataclass(frozen=True)
class ScaleRun:
    agencies: int
    bets: int
    total_s: float
    server_cpu_s: float
    server_peak_rss_kib: int
    ack_p50_s: float
    ack_p99_s: float
    acks: int
    #: Agencies whose answer was exactly their own winning documents.
    correct_agencies: int
    errors: dict[str, str]
    rows_ok: bool
    exits_ok: bool

    @property
    def all_correct(self) -> bool:
        return self.correct_agencies == self.agencies and not self.errors and self.rows_ok and self.exits_ok


def make_dataset(directory: Path, agencies: int = AGENCIES, bets: int = BETS_PER_AGENCY) -> Dataset:
    return generated_dataset(directory, agencies, bets)


def run_once(dataset: Dataset, base_dir: Path | None, timeout: float = SCALE_TIMEOUT_S) -> ScaleRun:
    """One run of every agency of `dataset` against a fresh server."""
    agencies = len(dataset.files)
    data_dir = next(iter(dataset.files.values())).parent
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=base_dir) as tmp:
        workdir = Path(tmp) / "server"
        workdir.mkdir()
        out = Path(tmp) / "loadgen.json"
        env = {
            "SERVER_AGENCIES": str(agencies),
            "SERVER_MAX_CONNECTIONS": str(agencies + 100),
            "SERVER_LISTEN_BACKLOG": str(LISTEN_BACKLOG),
            "SERVER_FSYNC": "true",
        }
        server = ServerChild(workdir, env)
        loadgen = None
        try:
            port = server.wait_listening()
            args = ["scale", "--port", str(port), "--agencies", str(agencies), "--data", str(data_dir)]
            args += ["--out", str(out), "--connect-concurrency", str(CONNECT_CONCURRENCY), "--timeout", str(timeout)]
            loadgen = run_python("bench.loadgen", args, Path(tmp))
            outcome = finish_load(server, loadgen, out, timeout)
        finally:
            if loadgen is not None:
                loadgen.kill()
            server.kill()
    winners = {int(agency): documents for agency, documents in outcome.report["winners"].items()}
    correct = sum(
        1
        for agency, expected in dataset.winners.items()
        if winners.get(agency) is not None and sorted(winners[agency]) == sorted(expected)
    )
    latencies = outcome.report["latencies_s"]
    return ScaleRun(
        agencies=agencies,
        bets=dataset.bets,
        total_s=outcome.report["elapsed_s"],
        server_cpu_s=outcome.server_cpu_s,
        server_peak_rss_kib=outcome.server_peak_rss_kib,
        ack_p50_s=percentile(latencies, 0.50),
        ack_p99_s=percentile(latencies, 0.99),
        acks=len(latencies),
        correct_agencies=correct,
        errors=outcome.report["errors"],
        rows_ok=dict(outcome.stored_rows) == dataset.sizes,
        exits_ok=outcome.server_code == 0 and outcome.report["finished_in_time"],
    )


def run(
    dataset: Dataset, runs: int, base_dir: Path | None = None, log: Callable[[str], None] = print
) -> list[ScaleRun]:
    measured = []
    for index in range(runs):
        result = run_once(dataset, base_dir)
        log(
            f"scale run {index + 1}/{runs}: {result.agencies} agencies in {result.total_s:.3f} s, "
            f"p99 ack {result.ack_p99_s * 1000:.1f} ms, correct {result.correct_agencies}/{result.agencies}"
        )
        measured.append(result)
    return measured
