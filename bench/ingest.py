# Strategy: the ingest benchmark, one run at a time. A run measures, on the
# same data and the same machine state:
#
#   1. the in-process floor (bench.floor);
#   2. a durable ingest (SERVER_FSYNC=true) and a non-durable one
#      (SERVER_FSYNC=false), in alternating order from run to run so that a
#      drift in machine load does not always favour the same side.
#
# An ingest is one `python -m lottery_gevent` and one `python -m client_gevent`
# per agency, all on 127.0.0.1. Its wall time runs from just before the server
# is started to the exit of the last client, so process start-up is included
# (the target says so). The server's CPU seconds and peak RSS are read
# from /proc after the last client exits and before the server is stopped.
# The ratios ingest/floor and durable/non-durable are computed within the run.
from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._procs import Child, ServerChild, cpu_seconds, memory_kib, parse_action, run_python
from bench.data import Dataset
from bench.floor import BATCH, Floor, measure_floor

#: Longest any single ingest may take before it is declared failed.
INGEST_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Ingest:
    """One ingest through real processes."""

    durable: bool
    wall_s: float
    #: From the server's start to its `action: listen` line (interpreter and imports).
    server_ready_s: float
    server_cpu_s: float
    #: CPU seconds of all client processes together.
    clients_cpu_s: float
    server_peak_rss_kib: int
    bets: int
    #: Every client exited 0 and the server stopped with 0.
    exits_ok: bool
    #: Every client reported its expected number of winners.
    winners_ok: bool
    #: bets.csv holds exactly each agency's bets.
    rows_ok: bool

    @property
    def ok(self) -> bool:
        return self.exits_ok and self.winners_ok and self.rows_ok

    @property
    def bets_per_s(self) -> float:
        return self.bets / self.wall_s


@dataclass(frozen=True)
class IngestRun:
    """One run: the floor, and a durable and a non-durable ingest."""

    floor: Floor
    durable: Ingest
    plain: Ingest
    #: The floor's draw found exactly the expected winning documents.
    floor_winners_ok: bool

    @property
    def ratios(self) -> dict[str, float]:
        return {
            "durable_over_floor": self.durable.wall_s / self.floor.total_s,
            "plain_over_floor": self.plain.wall_s / self.floor.total_s,
            "durable_over_durable_floor": self.durable.wall_s / self.floor.durable_total_s,
            "durable_over_plain": self.durable.wall_s / self.plain.wall_s,
            "durable_cpu_over_plain_cpu": self.durable.server_cpu_s / self.plain.server_cpu_s,
        }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _reported_winners(client: Child) -> int | None:
    for line in reversed(client.lines):
        fields = parse_action(line)
        if fields is not None and fields.get("action") == "consulta_ganadores" and fields["result"] == "success":
            return int(fields["cant_ganadores"])
    return None


def ingest_once(
    dataset: Dataset,
    base_dir: Path | None,
    *,
    durable: bool,
    interpreter_args: Sequence[str] = (),
    on_listening: Callable[[ServerChild], None] | None = None,
    timeout: float = INGEST_TIMEOUT_S,
) -> Ingest:
    """Run the server and one client process per agency over `dataset`; measure it.

    Args:
        dataset: the agency files.
        base_dir: where the temporary working directory goes (None: the system's).
        durable: SERVER_FSYNC.
        interpreter_args: for the server's interpreter (a profiler).
        on_listening: called once the server listens, before any client starts.
        timeout: bound on every wait.
    """
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=base_dir) as tmp:
        workdir = Path(tmp) / "server"
        workdir.mkdir()
        env = {"SERVER_AGENCIES": str(len(dataset.files)), "SERVER_FSYNC": "true" if durable else "false"}
        clients: list[Child] = []
        started = time.perf_counter()
        server = ServerChild(workdir, env, interpreter_args)
        try:
            port = server.wait_listening(timeout)
            ready = time.perf_counter()
            if on_listening is not None:
                on_listening(server)
            # Only the clients are reaped between these two readings (the server after).
            children_before = _children_cpu_s()
            for agency, path in dataset.files.items():
                client_env = {
                    "CLI_ID": str(agency),
                    "CLI_SERVER_ADDRESS": f"127.0.0.1:{port}",
                    "CLI_BETS_FILE": str(path),
                    "CLI_BATCH_MAXAMOUNT": str(BATCH),
                    "CLI_LOG_LEVEL": "INFO",
                }
                clients.append(run_python("client_gevent", [], Path(tmp), client_env))
            codes = [client.wait(timeout) for client in clients]
            finished = time.perf_counter()
            clients_cpu = _children_cpu_s() - children_before
            cpu = cpu_seconds(server.pid)
            peak = memory_kib(server.pid, "VmHWM")
            server_code = server.stop()
            rows = server.stored_rows()
        finally:
            for client in clients:
                client.kill()
            server.kill()
    reported = {agency: _reported_winners(client) for agency, client in zip(dataset.files, clients, strict=True)}
    return Ingest(
        durable=durable,
        wall_s=finished - started,
        server_ready_s=ready - started,
        server_cpu_s=cpu,
        clients_cpu_s=clients_cpu,
        server_peak_rss_kib=peak,
        bets=dataset.bets,
        exits_ok=server_code == 0 and codes == [0] * len(clients),
        winners_ok=reported == {agency: len(docs) for agency, docs in dataset.winners.items()},
        rows_ok=dict(rows) == dataset.sizes,
    )


def run_once(dataset: Dataset, base_dir: Path | None, *, durable_first: bool) -> IngestRun:
    """One run: the floor, then both ingests (`durable_first` picks their order)."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-", dir=base_dir) as tmp:
        floor = measure_floor(dataset.files, Path(tmp))
    results = {}
    for durable in (True, False) if durable_first else (False, True):
        results[durable] = ingest_once(dataset, base_dir, durable=durable)
    expected = {agency: documents for agency, documents in dataset.winners.items() if documents}
    return IngestRun(floor, results[True], results[False], floor.winners == expected)


def run(
    dataset: Dataset, runs: int, base_dir: Path | None = None, log: Callable[[str], None] = print
) -> list[IngestRun]:
    """`runs` runs, alternating which ingest goes first."""
    measured = []
    for index in range(runs):
        result = run_once(dataset, base_dir, durable_first=index % 2 == 0)
        log(
            f"ingest run {index + 1}/{runs}: durable {result.durable.wall_s:.3f} s, "
            f"non-durable {result.plain.wall_s:.3f} s, floor {result.floor.total_s:.3f} s, "
            f"ok={result.durable.ok and result.plain.ok}"
        )
        measured.append(result)
    return measured
