# Strategy: the idle-capacity benchmark. One server process configured for N
# agencies (and N+ connections, a deep backlog), and one load generator
# (bench.loadgen idle) that connects all N, spread in waves, and leaves N-1 of
# them blocked on their winners query and the last one identified but not done.
#
#   baseline RSS   the server's VmRSS once it listens, before any connection;
#   loaded RSS     its VmRSS when the generator says every agency is set up;
#   per connection (loaded - baseline) / N;
#   answer time    from the last agency's Done to the last answer received,
#                  measured inside the generator;
#   correctness    every agency's answer is exactly its expected documents.
#
# The generator blocks on a line from our stdin between the two phases, so the
# RSS is read while every connection is open: no sleeping, no polling.
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._procs import ServerChild, finish_load, memory_kib, run_python
from bench.data import idle_winners

AGENCIES = 10_000
#: Agencies setting up (connect, Hello, bet, Done, query) at the same moment.
CONNECT_CONCURRENCY = 500
LISTEN_BACKLOG = 4096
#: Longest one run may take before it is declared failed.
IDLE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class IdleRun:
    agencies: int
    setup_s: float
    answer_s: float
    baseline_rss_kib: int
    loaded_rss_kib: int
    server_peak_rss_kib: int
    server_cpu_s: float
    correct_agencies: int
    errors: dict[str, str]
    rows_ok: bool
    exits_ok: bool

    @property
    def rss_per_connection_bytes(self) -> float:
        return (self.loaded_rss_kib - self.baseline_rss_kib) * 1024 / self.agencies

    @property
    def all_correct(self) -> bool:
        return self.correct_agencies == self.agencies and not self.errors and self.rows_ok and self.exits_ok


def run_once(
    agencies: int,
    base_dir: Path | None,
    timeout: float = IDLE_TIMEOUT_S,
    on_listening: Callable[[ServerChild], None] | None = None,
) -> IdleRun:
    """One run with `agencies` connections against a fresh server.

    `on_listening` is called once the server listens and its baseline RSS is read (a profiler).
    """
    with tempfile.TemporaryDirectory(prefix="bench-idle-", dir=base_dir) as tmp:
        workdir = Path(tmp) / "server"
        workdir.mkdir()
        out = Path(tmp) / "loadgen.json"
        env = {
            "SERVER_AGENCIES": str(agencies),
            "SERVER_MAX_CONNECTIONS": str(agencies + 100),
            "SERVER_LISTEN_BACKLOG": str(LISTEN_BACKLOG),
            # The last agency waits, identified, for the whole set-up of the others.
            "SERVER_IDLE_TIMEOUT_S": str(timeout),
            "SERVER_FSYNC": "true",
        }
        server = ServerChild(workdir, env)
        loadgen = None
        try:
            port = server.wait_listening()
            baseline = memory_kib(server.pid, "VmRSS")
            if on_listening is not None:
                on_listening(server)
            args = ["idle", "--port", str(port), "--agencies", str(agencies), "--out", str(out)]
            args += ["--connect-concurrency", str(CONNECT_CONCURRENCY), "--timeout", str(timeout)]
            loadgen = run_python("bench.loadgen", args, Path(tmp), stdin=True)
            ready = json.loads(loadgen.wait_for_line(lambda line: '"event": "ready"' in line, timeout))
            loaded = memory_kib(server.pid, "VmRSS")
            loadgen.send_line("go")
            outcome = finish_load(server, loadgen, out, timeout)
        finally:
            if loadgen is not None:
                loadgen.kill()
            server.kill()
    winners = {int(agency): documents for agency, documents in outcome.report["winners"].items()}
    correct = sum(1 for agency in range(1, agencies + 1) if winners.get(agency) == idle_winners(agency))
    return IdleRun(
        agencies=agencies,
        setup_s=ready["setup_s"],
        answer_s=outcome.report["answer_s"] if outcome.report["answer_s"] is not None else float("nan"),
        baseline_rss_kib=baseline,
        loaded_rss_kib=loaded,
        server_peak_rss_kib=outcome.server_peak_rss_kib,
        server_cpu_s=outcome.server_cpu_s,
        correct_agencies=correct,
        errors=outcome.report["errors"],
        rows_ok=dict(outcome.stored_rows) == dict.fromkeys(range(1, agencies + 1), 1),
        exits_ok=outcome.server_code == 0 and outcome.report["finished_in_time"],
    )


def run(agencies: int, runs: int, base_dir: Path | None = None, log: Callable[[str], None] = print) -> list[IdleRun]:
    measured = []
    for index in range(runs):
        result = run_once(agencies, base_dir)
        log(
            f"idle run {index + 1}/{runs}: {result.agencies} connections, "
            f"{result.rss_per_connection_bytes / 1024:.1f} KiB each, answered in {result.answer_s:.3f} s, "
            f"correct {result.correct_agencies}/{result.agencies}"
        )
        measured.append(result)
    return measured
