"""The ingest: the course data through one server process and one client process per agency,
durable, non-durable and over TLS, beside the in-process floor measured in the same run.

Guarantees: wall time runs from just before the server starts to the last client's exit (process
start-up included, as the target says); the server's CPU and peak RSS are read after the last
client exits and before the server is stopped; a run is correct only if every client exited 0 with
its winner count, bets.csv holds each agency's bets and the floor's draw found the expected winners.
Never leaves a process or a file behind.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import math
import os
import resource
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench.data import TLS_SETTINGS, Dataset, client_tls_env, read_bets, server_tls_env
from bench.host import cpu_seconds, memory_kib
from bench.runs import Record, alternate, section
from lottery_gevent import contract
from tests.support.processes import ClientProcess, ServerProcess, winners_reported

#: Bets per batch and per store_bets call: the client's default batch.maxAmount.
BATCH = 125
TIMEOUT_S = 180.0
COLUMNS = ("durable", "nondurable", "tls")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ingest_once(
    dataset: Dataset, column: str, tls_dir: Path, interpreter_args: Sequence[str] = (),
    on_listening: Callable[[ServerProcess], None] | None = None,
) -> Record:
    """One server and one client per agency over `dataset`, as `column` (durable, nondurable or tls)."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        (Path(tmp) / "server").mkdir()
        clients: list[ClientProcess] = []
        if column == "nondurable":
            interpreter_args = ("-m", "bench.nofsync_server")
        env = server_tls_env(tls_dir if column == "tls" else None)
        started = time.perf_counter()
        server = ServerProcess(Path(tmp) / "server", len(dataset.files), env, interpreter_args=interpreter_args)
        try:
            server.wait_listening(TIMEOUT_S)
            ready = time.perf_counter()
            if on_listening is not None:
                on_listening(server)
            children_before = _children_cpu_s()  # only the clients are reaped until the next reading
            for agency, path in dataset.files.items():
                env = client_tls_env(tls_dir, agency) if column == "tls" else {}
                env["CLI_BATCH_MAXAMOUNT"] = str(BATCH)
                clients.append(ClientProcess(Path(tmp), agency, server.port, path, env))
            codes = [client.wait(TIMEOUT_S) for client in clients]
            finished = time.perf_counter()
            clients_cpu = _children_cpu_s() - children_before
            cpu, peak = cpu_seconds(server.pid), memory_kib(server.pid, "VmHWM")
            ok = server.stop() == 0 and codes == [0] * len(clients) and dict(server.stored_counts()) == dataset.sizes
        finally:
            for client in clients:
                client.kill()
            server.kill()
    reported = {agency: winners_reported(client) for agency, client in zip(dataset.files, clients, strict=True)}
    ok = ok and reported == {agency: len(docs) for agency, docs in dataset.winners.items()}
    return {
        "wall_s": finished - started,
        "server_ready_s": ready - started,
        "server_cpu_s": cpu,
        "clients_cpu_s": clients_cpu,
        "server_peak_rss_kib": peak,
        "bets_per_s": dataset.bets / (finished - started),
        "ok": ok,
    }


def _store_all(bets: Mapping[int, list[contract.Bet]], workdir: Path, fsync: bool) -> None:
    workdir.mkdir()
    with contextlib.chdir(workdir):  # the contract writes ./bets.csv
        fd = os.open(contract.STORAGE_FILEPATH, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            for agency_bets in bets.values():
                for start in range(0, len(agency_bets), BATCH):
                    contract.store_bets(agency_bets[start : start + BATCH])
                    if fsync:
                        os.fsync(fd)
        finally:
            os.close(fd)


def floor(dataset: Dataset) -> Record:
    """The Python work no server can avoid, each stage timed alone: no sockets, greenlets or processes."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        marks = [time.perf_counter()]
        parsed = {agency: read_bets(path) for agency, path in dataset.files.items()}
        marks.append(time.perf_counter())
        built = {agency: [contract.Bet(agency, *fields) for fields in rows] for agency, rows in parsed.items()}
        marks.append(time.perf_counter())
        _store_all(built, Path(tmp) / "plain", fsync=False)
        marks.append(time.perf_counter())
        _store_all(built, Path(tmp) / "durable", fsync=True)
        marks.append(time.perf_counter())
        winners: dict[int, list[str]] = collections.defaultdict(list)
        with contextlib.chdir(Path(tmp) / "plain"):
            for bet in contract.load_bets():
                if contract.has_won(bet):
                    winners[bet.agency].append(bet.document)
        marks.append(time.perf_counter())
    parse, build, store, store_fsync, draw = (after - before for before, after in itertools.pairwise(marks))
    return {
        **{"parse_s": parse, "build_s": build, "store_s": store, "store_fsync_s": store_fsync, "draw_s": draw},
        "total_s": parse + build + store + draw,
        "durable_total_s": parse + build + store_fsync + draw,
        "ok": dict(winners) == {agency: docs for agency, docs in dataset.winners.items() if docs},
    }


def run(dataset: Dataset, runs: int, tls_dir: Path, log: Callable[[str], None]) -> Record:
    """`runs` runs of the floor and every column: the ingest's section of results.json."""
    config = {"dataset": dataset.source, "bets": dataset.bets, "agencies": len(dataset.files), "batch": BATCH}
    config |= {"calls": sum(math.ceil(size / BATCH) for size in dataset.sizes.values()), "tls": TLS_SETTINGS}
    measure = lambda column: ingest_once(dataset, column, tls_dir)  # noqa: E731
    records = alternate("ingest", COLUMNS, runs, measure, log, lambda: {"floor": floor(dataset)})
    return section("ingest", config, records)
