"""The fleets: one load-generator process (bench.loadgen) playing many agencies against one durable
server. Scale: every agency uploads at once. Idle: thousands of connections blocked on the draw.
Crowd: honest uploads alone and beside hundreds of silent and trickling peers. Million: how cost
grows from the course data to 1,000 x 100 and 1,000 x 1,000 bets, one run each.

Guarantees: every agency's answer is compared as documents and bets.csv row by row; the server's
CPU and peak RSS are read once the generator has exited, before the server is stopped; both
processes are killed and reaped, and their directory removed, whatever happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.data import TLS_SETTINGS, Dataset, generated_dataset, idle_winners, ingest_dataset, server_tls_env
from bench.host import cpu_seconds, memory_kib
from bench.loadgen import Plan
from bench.runs import Record, alternate, section
from tests.support.processes import LoggedProcess, ServerProcess

TIMEOUT_S = 300.0
LISTEN_BACKLOG = 4096
SCALE_AGENCIES, SCALE_BETS, SCALE_CONCURRENCY = 1_000, 100, 250
IDLE_AGENCIES, IDLE_CONCURRENCY = 10_000, 500
CROWD_UPLOADS, CROWD_BETS, CROWD_BAD_PEERS = 3, 6_000, 500
#: The idle timeout is the longer one, so a trickler's frame timeout is what ends it.
CROWD_TIMEOUTS = {"SERVER_IDLE_TIMEOUT_S": "5", "SERVER_FRAME_TIMEOUT_S": "2"}
MILLION_AGENCIES, MILLION_BETS, MILLION_BATCH = 1_000, 1_000, 125
COLUMNS = ("plaintext", "tls")
Listener = Callable[[ServerProcess], None]
_BATCH_LINE = re.compile(r"action: apuesta_recibida \| result: success \| cantidad: (\d+)")


def load(
    plan: Mapping[str, Any], agencies: int, connections: int, tls_dir: Path | None, server_env: Mapping[str, str],
    expected: Mapping[int, list[str]], sizes: Mapping[int, int], on_listening: Listener | None = None,
    meanwhile: Callable[[ServerProcess, LoggedProcess], Record] | None = None,
) -> tuple[dict[str, Any], Record]:
    """A durable server for `agencies` (`connections` plus 100 allowed), then the load generator with `plan`;
    `meanwhile(server, generator)` runs once both are up. Returns the generator's report and the figures, "ok"
    if every agency got exactly its `expected` documents, bets.csv holds `sizes` and nothing failed.
    Raises RuntimeError if the load generator failed."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{plan['mode']}-") as tmp:
        (Path(tmp) / "server").mkdir()
        # Every agency of the generator comes from one address: no per-address cap.
        env = {"SERVER_MAX_CONNECTIONS": str(connections + 100), "SERVER_MAX_CONNECTIONS_PER_IP": "0"}
        env |= {"SERVER_LISTEN_BACKLOG": str(LISTEN_BACKLOG), **server_env, **server_tls_env(tls_dir)}
        server, loadgen = ServerProcess(Path(tmp) / "server", agencies, env), None
        try:
            server.wait_listening(TIMEOUT_S)
            figures: Record = {"baseline_rss_kib": memory_kib(server.pid, "VmRSS")}
            if on_listening is not None:
                on_listening(server)
            out, tls = Path(tmp) / "loadgen.json", str(tls_dir) if tls_dir else None
            full = Plan(**plan, port=server.port, out=str(out), tls=tls, timeout_s=TIMEOUT_S)
            argv = [sys.executable, "-m", "bench.loadgen", json.dumps(dataclasses.asdict(full))]
            loadgen = LoggedProcess(argv, Path(tmp), {}, stdin=meanwhile is not None)
            figures |= meanwhile(server, loadgen) if meanwhile is not None else {}
            code = loadgen.wait(TIMEOUT_S + 30)
            figures |= {"server_cpu_s": cpu_seconds(server.pid), "server_peak_rss_kib": memory_kib(server.pid, "VmHWM")}
            server_exit = server.stop()
            if code != 0:
                raise RuntimeError("load generator failed:\n" + "\n".join(loadgen.lines[-20:]))
            report = json.loads(out.read_text(encoding="utf-8"))
            rows_ok = dict(server.stored_counts()) == dict(sizes)
        finally:
            if loadgen is not None:
                loadgen.kill()
            server.kill()
    got = {int(agency): docs for agency, docs in report["winners"].items()}
    exact = sum(1 for agency, docs in expected.items() if sorted(got.get(agency) or []) == sorted(docs))
    ok = exact == len(expected) and rows_ok and not report["errors"] and server_exit == 0 and report["finished_in_time"]
    return report, figures | {"correct_agencies": exact, "errors": dict(list(report["errors"].items())[:3]), "ok": ok}


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1] if ordered else None


def scale_once(
    dataset: Dataset, tls_dir: Path | None, batch: int = 100, on_listening: Listener | None = None
) -> tuple[dict[str, Any], Record]:
    """Every agency of `dataset` at once against a fresh server: the generator's report, and the figures."""
    agencies = len(dataset.files)
    plan = {"mode": "scale", "agencies": agencies, "data": str(dataset.directory), "batch": batch}
    plan["concurrency"] = SCALE_CONCURRENCY
    report, figures = load(plan, agencies, agencies, tls_dir, {}, dataset.winners, dataset.sizes, on_listening)
    latencies = report["latencies_s"]
    figures |= {"ack_p50_s": _percentile(latencies, 0.5), "ack_p99_s": _percentile(latencies, 0.99)}
    return report, figures | {"total_s": report["elapsed_s"]}


def idle_once(agencies: int, tls_dir: Path | None, on_listening: Listener | None = None) -> Record:
    """`agencies` connections blocked on the draw, against a fresh server: the RSS with all of them connected."""

    def all_connected(server: ServerProcess, loadgen: LoggedProcess) -> Record:
        ready = json.loads(loadgen.wait_for_line(lambda line: '"event": "ready"' in line, TIMEOUT_S))
        loaded = memory_kib(server.pid, "VmRSS")
        loadgen.send_line("go")
        return {"setup_s": ready["setup_s"], "loaded_rss_kib": loaded}

    expected = {agency: idle_winners(agency) for agency in range(1, agencies + 1)}
    plan = {"mode": "idle", "agencies": agencies, "concurrency": IDLE_CONCURRENCY}
    # The last agency waits, identified, through the whole set-up of the others.
    env = {"SERVER_IDLE_TIMEOUT_S": str(TIMEOUT_S)}
    args = (plan, agencies, agencies, tls_dir, env, expected, dict.fromkeys(expected, 1), on_listening, all_connected)
    report, figures = load(*args)
    per_connection = (figures["loaded_rss_kib"] - figures["baseline_rss_kib"]) * 1024 / agencies
    return figures | {"answer_s": report["answer_s"], "rss_per_connection_b": per_connection}


def crowd_once(dataset: Dataset, bad_peers: int) -> Record:
    """The last agency warms up, then half of the others upload alone and half beside `bad_peers`."""
    plan = {"mode": "crowd", "agencies": len(dataset.files) // 2, "data": str(dataset.directory)}
    plan["bad_peers"] = bad_peers
    report, figures = load(plan, len(dataset.files), bad_peers + 1, None, CROWD_TIMEOUTS, {}, dataset.sizes)
    median = {key: statistics.median(report[key]) if report[key] else None for key in ("alone_s", "loaded_s")}
    return figures | median | {"loaded_window_s": report.get("loaded_window_s")}


def contest(dataset: Dataset, marks: tuple[int, ...] = ()) -> Record:
    """One contest of `dataset` (as in scale); with `marks`, the server's peak RSS once that many bets are stored."""
    seen: dict[str, float] = {}
    watchers: list[threading.Thread] = []

    def watch(server: ServerProcess) -> None:
        stored, pending = 0, list(marks)

        def count(line: str) -> bool:
            nonlocal stored
            if match := _BATCH_LINE.search(line):
                stored += int(match.group(1))
                while pending and stored >= pending[0]:
                    seen[f"rss@{pending.pop(0)}"] = memory_kib(server.pid, "VmHWM")
            return not pending

        with contextlib.suppress(TimeoutError, OSError, StopIteration):  # a missing figure; the checks judge the run
            server.wait_for_line(count, TIMEOUT_S)
            server.wait_for_count(r"action: agency_done \| result: success", len(dataset.files), TIMEOUT_S)
            seen["last_done"] = time.monotonic()
            server.wait_for_line(r"action: sorteo \| result: success", TIMEOUT_S)
            seen["draw"] = time.monotonic()

    def on_listening(server: ServerProcess) -> None:
        seen["cpu_at_listen"] = cpu_seconds(server.pid)  # start-up is not per-bet work
        watchers.append(threading.Thread(target=watch, args=(server,), daemon=True))
        watchers[0].start()

    report, figures = scale_once(dataset, None, MILLION_BATCH, on_listening)
    watchers[0].join(TIMEOUT_S)
    figures["bets_per_s"] = dataset.bets / report["elapsed_s"]
    figures["cpu_us_per_bet"] = (figures["server_cpu_s"] - seen["cpu_at_listen"]) / dataset.bets * 1e6
    figures["draw_s"] = seen["draw"] - seen["last_done"] if {"draw", "last_done"} <= seen.keys() else None
    rss = {key: seen.get(f"rss@{mark}") for key, mark in zip(("rss_tenth_kib", "rss_all_kib"), marks, strict=False)}
    return figures | rss


def run_scale(work: Path, agencies: int, runs: int, tls_dir: Path, log: Callable[[str], None]) -> Record:
    dataset = generated_dataset(work, agencies, SCALE_BETS)
    config = {"agencies": len(dataset.files), "bets": dataset.bets // len(dataset.files), "tls": TLS_SETTINGS}
    records = alternate("scale", COLUMNS, runs, lambda c: scale_once(dataset, tls_dir if c == "tls" else None)[1], log)
    return section("scale", config | {"concurrency": SCALE_CONCURRENCY}, records)


def run_idle(agencies: int, runs: int, tls_dir: Path, log: Callable[[str], None]) -> Record:
    records = alternate("idle", COLUMNS, runs, lambda c: idle_once(agencies, tls_dir if c == "tls" else None), log)
    return section("idle", {"agencies": agencies, "concurrency": IDLE_CONCURRENCY, "tls": TLS_SETTINGS}, records)


def run_crowd(work: Path, bets: int, bad_peers: int, runs: int, log: Callable[[str], None]) -> Record:
    dataset = generated_dataset(work, 2 * CROWD_UPLOADS + 1, bets)
    timeouts = ", ".join(f"{key}={value}" for key, value in CROWD_TIMEOUTS.items())
    config = {"uploads": len(dataset.files) // 2, "bets": dataset.sizes[1], "bad_peers": bad_peers,
              "timeouts": timeouts}
    records = alternate("crowd", ["plaintext"], runs, lambda _: crowd_once(dataset, bad_peers), log)
    return section("crowd", config, records)


def run_million(work: Path, log: Callable[[str], None],
                agencies: int = MILLION_AGENCIES, bets: int = MILLION_BETS) -> Record:
    """The course data (or its shape), `agencies` x `bets` / 10 and `agencies` x `bets` bets, one run each."""
    data = {"course": ingest_dataset(work / "course"), "small": generated_dataset(work / "small", agencies, bets // 10)}
    data["million"] = generated_dataset(work / "million", agencies, bets)
    config = {"agencies": agencies, "bets_per_agency": bets, "batch": MILLION_BATCH, "course": data["course"].source}
    config |= {"course_agencies": len(data["course"].files), **{f"{name}_bets": d.bets for name, d in data.items()}}
    marks = {"million": (agencies * bets // 10, agencies * bets)}
    records = alternate("million", list(data), 1, lambda name: contest(data[name], marks.get(name, ())), log)
    return section("million", config, records)
