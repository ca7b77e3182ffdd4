# Strategy: the ingest benchmark. Each run measures, on the same data and the
# same machine state, the in-process floor (bench.floor) and then one ingest
# per variant (durable, non-durable, and durable over TLS: bench.tls), in an
# order that alternates from run to run.
#
# An ingest is one `python -m lottery_gevent` and one `python -m client_gevent`
# per agency, all on 127.0.0.1. Its wall time runs from just before the server
# is started to the exit of the last client, so process start-up is included
# (the target says so). The server's CPU seconds and peak RSS are read
# from /proc after the last client exits and before the server is stopped.
from __future__ import annotations

import functools
import resource
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench import tls
from bench._procs import cpu_seconds, memory_kib
from bench.data import Dataset
from bench.floor import BATCH, measure_floor
from bench.spec import Ratio, Record, Target, Variant, run_variants
from tests.support.processes import ClientProcess, ServerProcess, winners_reported

#: Longest any single ingest may take before it is declared failed.
INGEST_TIMEOUT_S = 180.0

DURABLE = Variant("durable", "durable", {"SERVER_FSYNC": "true"})
VARIANTS = (
    DURABLE,
    Variant("nondurable", "non-durable", {"SERVER_FSYNC": "false"}),
    tls.twin(DURABLE, "tls", "durable, TLS"),
)
RATIOS = (
    Ratio("durable_over_floor", "durable ingest / no-fsync floor", "durable.wall_s", "floor.total_s"),
    Ratio("nondurable_over_floor", "non-durable ingest / no-fsync floor", "nondurable.wall_s", "floor.total_s"),
    Ratio("durable_over_durable_floor", "durable ingest / durable floor", "durable.wall_s", "floor.durable_total_s"),
    Ratio("durability_cost", "**durability cost**: durable / non-durable wall", "durable.wall_s", "nondurable.wall_s"),
    Ratio("durability_cpu", "durable / non-durable server CPU", "durable.server_cpu_s", "nondurable.server_cpu_s"),
    Ratio("tls_cost", "**TLS cost**: TLS / plaintext durable wall", "tls.wall_s", "durable.wall_s"),
    Ratio("tls_cpu", "TLS / plaintext durable server CPU", "tls.server_cpu_s", "durable.server_cpu_s"),
)
TARGETS = (
    Target("durable ingest, server start to last client exit", "durable.wall_s", 1.2, " s"),
    Target("durable ingest / no-fsync floor, same run", "ratio.durable_over_floor", 2.0, "×", digits=2),
    Target("durable / non-durable ingest, same run", "ratio.durability_cost", 1.25, "×", digits=2),
    Target("TLS / plaintext durable ingest, same run", "ratio.tls_cost", 1.15, "×", digits=2, source="issue 10"),
)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ingest_once(
    dataset: Dataset,
    variant: Variant,
    *,
    interpreter_args: Sequence[str] = (),
    on_listening: Callable[[ServerProcess], None] | None = None,
    timeout: float = INGEST_TIMEOUT_S,
) -> Record:
    """Run the server and one client process per agency over `dataset`; measure it.

    Args:
        variant: its server_env goes to the server, its client_env to every client
            (bench.tls placeholders filled in: each client gets its own agency's).
        interpreter_args: for the server's interpreter (a profiler).
        on_listening: called once the server listens, before any client starts.
    """
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp) / "server"
        workdir.mkdir()
        clients: list[ClientProcess] = []
        client_env: Mapping[str, str] = {"CLI_BATCH_MAXAMOUNT": str(BATCH), **variant.client_env}
        server_env = tls.resolve(variant.server_env)
        started = time.perf_counter()
        server = ServerProcess(workdir, len(dataset.files), server_env, interpreter_args=interpreter_args)
        try:
            server.wait_listening(timeout)
            ready = time.perf_counter()
            if on_listening is not None:
                on_listening(server)
            # Only the clients are reaped between these two readings (the server after).
            children_before = _children_cpu_s()
            for agency, path in dataset.files.items():
                env = tls.resolve(client_env, agency)
                clients.append(ClientProcess(Path(tmp), agency, server.port, path, env))
            codes = [client.wait(timeout) for client in clients]
            finished = time.perf_counter()
            clients_cpu = _children_cpu_s() - children_before
            cpu, peak = cpu_seconds(server.pid), memory_kib(server.pid, "VmHWM")
            server_exit = server.stop()
            stored = server.stored_counts()
        finally:
            for client in clients:
                client.kill()
            server.kill()
    reported = {agency: winners_reported(client) for agency, client in zip(dataset.files, clients, strict=True)}
    figures = {
        "wall_s": finished - started,
        "server_ready_s": ready - started,
        "server_cpu_s": cpu,
        "clients_cpu_s": clients_cpu,
        "server_peak_rss_kib": peak,
        "bets": dataset.bets,
        "bets_per_s": dataset.bets / (finished - started),
        "exits_ok": server_exit == 0 and codes == [0] * len(clients),
        "winners_ok": reported == {agency: len(docs) for agency, docs in dataset.winners.items()},
        "rows_ok": dict(stored) == dataset.sizes,
    }
    return {**figures, "ok": figures["exits_ok"] and figures["winners_ok"] and figures["rows_ok"]}


def _floor(dataset: Dataset) -> Record:
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        return {"floor": measure_floor(dataset.files, dataset.winners, Path(tmp))}


def run(dataset: Dataset, runs: int, log: Callable[[str], None], variants: Sequence[Variant] = VARIANTS) -> Record:
    """`runs` runs of the floor and every variant: the ingest part of results.json."""
    config = {"dataset": dataset.source, "bets": dataset.bets, "agencies": len(dataset.files), "batch": BATCH}
    measure = functools.partial(ingest_once, dataset)
    before = functools.partial(_floor, dataset)
    return run_variants(
        "ingest", config, variants, runs, measure, ratios=RATIOS, targets=TARGETS, before=before, log=log
    )
