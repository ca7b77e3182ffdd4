# Strategy: the benchmarks where one load-generator process (bench.loadgen)
# plays many agencies against one durable server, all started by one context
# manager (`server_with_load`):
#
#   scale  every agency of a generated dataset uploads at once; total time,
#          batch-ack latencies; each agency's answer compared as documents;
#   idle   N agencies connect and block on the draw: the server's RSS before
#          any connection and with all of them connected, and the time from
#          the last Done to the last answer;
#   crowd  an honest agency's upload, alone and beside hundreds of silent and
#          trickling (slowloris) connections, in the same run: the ratio.
#
# Each runner takes variants (bench.spec.Variant): a twin with other server or
# client settings is one more entry. Scale and idle run plaintext and TLS
# (bench.tls) in the same run. The server's CPU and peak RSS are read
# from /proc once the generator has exited, before the server is stopped.
from __future__ import annotations

import contextlib
import functools
import json
import math
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import tls
from bench._procs import cpu_seconds, memory_kib
from bench.data import Dataset, idle_winners
from bench.spec import Ratio, Record, Target, Variant, run_variants
from tests.support.processes import LoggedProcess, ServerProcess

PLAINTEXT = Variant("plaintext", "plaintext")
VARIANTS = (PLAINTEXT,)
#: Scale and idle also run with TLS on (issue 10), in the same run as plaintext.
TLS_TWINS = (PLAINTEXT, tls.twin(PLAINTEXT, "tls", "TLS"))
#: Longest one run may take before it is declared failed.
TIMEOUT_S = 300.0
LISTEN_BACKLOG = 4096
SCALE_AGENCIES, SCALE_BETS = 1_000, 100
IDLE_AGENCIES = 10_000
#: Agencies connecting (scale) or setting up (idle) at the same moment.
SCALE_CONCURRENCY, IDLE_CONCURRENCY = 250, 500
#: The crowd: honest uploads on each side, their size, and the bad peers (half silent, half trickling).
CROWD_UPLOADS, CROWD_BETS, CROWD_BAD_PEERS = 3, 6_000, 500
#: The idle timeout is the longer one, so a trickler's frame timeout is what ends it.
CROWD_TIMEOUTS = {"SERVER_IDLE_TIMEOUT_S": "5", "SERVER_FRAME_TIMEOUT_S": "2"}

SCALE_TARGETS = (
    Target("{agencies:,} agencies × {bets} bets", "plaintext.total_s", 10.0, " s"),
    Target("{agencies:,} agencies × {bets} bets, TLS handshakes", "tls.total_s", 10.0, " s", source="issue 10"),
)
SCALE_RATIOS = (
    Ratio("tls_total", "TLS / plaintext total time", "tls.total_s", "plaintext.total_s"),
    Ratio("tls_cpu", "TLS / plaintext server CPU (the handshakes)", "tls.server_cpu_s", "plaintext.server_cpu_s"),
)
IDLE_TARGETS = (
    Target("{agencies:,} connected agencies, peak RSS", "plaintext.server_peak_rss_kib", 200, " MB", 1.024e-3, 1),
    Target(
        "{agencies:,} connected TLS agencies, peak RSS",
        "tls.server_peak_rss_kib",
        320,
        " MB",
        1.024e-3,
        1,
        source="issue 10",
    ),
)
IDLE_RATIOS = (
    Ratio(
        "tls_rss", "TLS / plaintext RSS per connection", "tls.rss_per_connection_b", "plaintext.rss_per_connection_b"
    ),
)
CROWD_RATIOS = (
    Ratio("crowd", "plaintext: upload beside the bad peers / alone", "plaintext.loaded_s", "plaintext.alone_s"),
)
CROWD_TARGETS = (
    Target(
        "an upload beside {bad_peers} bad peers / alone",
        "ratio.crowd",
        2.0,
        "×",
        digits=2,
        source="what tests/faults/test_limits.py asserted",
    ),
)


@dataclass(frozen=True)
class LoadRun:
    server: ServerProcess
    loadgen: LoggedProcess
    #: The server's VmRSS once it listened, before any connection.
    baseline_rss_kib: int
    report: Path

    def finish(self) -> tuple[dict[str, Any], Record, Counter[int]]:
        """Wait for the generator; read the server's figures; stop it.

        Returns:
            the generator's report, the server's figures, its rows per agency.
        Raises:
            RuntimeError: the load generator failed.
        """
        code = self.loadgen.wait(TIMEOUT_S + 30)
        server = {"server_cpu_s": cpu_seconds(self.server.pid)}
        server["server_peak_rss_kib"] = memory_kib(self.server.pid, "VmHWM")
        server["server_exit"] = self.server.stop()
        if code != 0:
            raise RuntimeError("load generator failed:\n" + "\n".join(self.loadgen.lines[-20:]))
        return json.loads(self.report.read_text(encoding="utf-8")), server, self.server.stored_counts()


@contextlib.contextmanager
def server_with_load(
    mode: str,
    args: Sequence[str],
    variant: Variant,
    agencies: int,
    connections: int,
    server_env: Mapping[str, str] | None = None,
    *,
    stdin: bool = False,
    on_listening: Callable[[ServerProcess], None] | None = None,
) -> Iterator[LoadRun]:
    """A durable server for `agencies`, then ``python -m bench.loadgen mode args`` against it.

    Args:
        connections: how many the generator holds at once (the server allows 100 more).
        variant: its server_env goes to the server (after `server_env`), its client_env to the generator
            (bench.tls's directory filled in; the generator fills in each agency).
        stdin: give the generator a pipe on stdin (the idle benchmark's go signal).
        on_listening: called once the server listens, before the generator starts (a profiler).
    Both processes are killed and reaped on the way out, and the working directory removed.
    """
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as tmp:
        workdir = Path(tmp) / "server"
        workdir.mkdir()
        env = {"SERVER_MAX_CONNECTIONS": str(connections + 100), "SERVER_LISTEN_BACKLOG": str(LISTEN_BACKLOG)}
        # Every agency of the generator comes from one address: no per-address cap.
        env.update({"SERVER_MAX_CONNECTIONS_PER_IP": "0", "SERVER_FSYNC": "true"})
        env.update({**(server_env or {}), **tls.resolve(variant.server_env)})
        server = ServerProcess(workdir, agencies, env)
        loadgen: LoggedProcess | None = None
        try:
            server.wait_listening(TIMEOUT_S)
            baseline = memory_kib(server.pid, "VmRSS")
            if on_listening is not None:
                on_listening(server)
            report = Path(tmp) / "loadgen.json"
            argv = ["-m", "bench.loadgen", mode, "--port", str(server.port), "--out", str(report), *args]
            argv += ["--timeout", str(TIMEOUT_S)]
            loadgen = LoggedProcess([sys.executable, *argv], Path(tmp), tls.resolve(variant.client_env), stdin=stdin)
            yield LoadRun(server, loadgen, baseline, report)
        finally:
            if loadgen is not None:
                loadgen.kill()
            server.kill()


def _checked(report: dict[str, Any], server: Record, rows_ok: bool, expected: dict[int, list[str]]) -> Record:
    """The figures every fleet reports, with the correctness checks."""
    got = {int(agency): docs for agency, docs in report["winners"].items()}
    correct = sum(1 for agency, docs in expected.items() if got.get(agency) is not None and sorted(got[agency]) == docs)
    errors = report["errors"]
    ok = correct == len(expected) and not errors and rows_ok and server["server_exit"] == 0
    return {
        **server,
        "correct_agencies": correct,
        "errors": len(errors),
        "first_errors": dict(list(errors.items())[:3]),
        "rows_ok": rows_ok,
        "ok": ok and report["finished_in_time"],
    }


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (`fraction` in 0..1) of `values`; None if empty."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1] if ordered else None


def scale_once(dataset: Dataset, variant: Variant) -> Record:
    """Every agency of `dataset` at once against a fresh server."""
    agencies = len(dataset.files)
    args = ["--agencies", str(agencies), "--data", str(dataset.directory)]
    with server_with_load(
        "scale", [*args, "--connect-concurrency", str(SCALE_CONCURRENCY)], variant, agencies, agencies
    ) as load:
        report, server, stored = load.finish()
    expected = {agency: sorted(docs) for agency, docs in dataset.winners.items()}
    latencies = report["latencies_s"]
    return {
        **_checked(report, server, dict(stored) == dataset.sizes, expected),
        "agencies": agencies,
        "bets": dataset.bets,
        "total_s": report["elapsed_s"],
        "ack_p50_s": _percentile(latencies, 0.50),
        "ack_p99_s": _percentile(latencies, 0.99),
        "acks": len(latencies),
    }


def idle_once(agencies: int, variant: Variant, on_listening: Callable[[ServerProcess], None] | None = None) -> Record:
    """`agencies` connections, blocked on the draw, against a fresh server (`on_listening`: a profiler)."""
    args = ["--agencies", str(agencies), "--connect-concurrency", str(IDLE_CONCURRENCY)]
    # The last agency waits, identified, for the whole set-up of the others.
    idle_timeout = {"SERVER_IDLE_TIMEOUT_S": str(TIMEOUT_S)}
    with server_with_load(
        "idle", args, variant, agencies, agencies, idle_timeout, stdin=True, on_listening=on_listening
    ) as load:
        ready = json.loads(load.loadgen.wait_for_line(lambda line: '"event": "ready"' in line, TIMEOUT_S))
        loaded = memory_kib(load.server.pid, "VmRSS")
        load.loadgen.send_line("go")
        report, server, stored = load.finish()
    expected = {agency: idle_winners(agency) for agency in range(1, agencies + 1)}
    return {
        **_checked(report, server, dict(stored) == dict.fromkeys(expected, 1), expected),
        "agencies": agencies,
        "setup_s": ready["setup_s"],
        "answer_s": report["answer_s"],
        "baseline_rss_kib": load.baseline_rss_kib,
        "loaded_rss_kib": loaded,
        "rss_per_connection_b": (loaded - load.baseline_rss_kib) * 1024 / agencies,
    }


def crowd_once(dataset: Dataset, variant: Variant, bad_peers: int) -> Record:
    """`dataset`'s last agency warms up, then half of the others upload alone, half beside `bad_peers`."""
    uploads = len(dataset.files) // 2
    args = ["--agencies", str(uploads), "--data", str(dataset.directory), "--bad-peers", str(bad_peers)]
    with server_with_load("crowd", args, variant, len(dataset.files), bad_peers + 1, CROWD_TIMEOUTS) as load:
        report, server, stored = load.finish()
    return {
        **_checked(report, server, dict(stored) == dataset.sizes, {}),
        "alone_s": statistics.median(report["alone_s"]) if report["alone_s"] else None,
        "loaded_s": statistics.median(report["loaded_s"]) if report["loaded_s"] else None,
        "loaded_window_s": report.get("loaded_window_s"),
    }


def run_scale(
    dataset: Dataset, runs: int, log: Callable[[str], None], variants: Sequence[Variant] = TLS_TWINS
) -> Record:
    config = {
        "agencies": len(dataset.files),
        "bets": dataset.bets // len(dataset.files),
        "concurrency": SCALE_CONCURRENCY,
    }
    measure = functools.partial(scale_once, dataset)
    return run_variants(
        "scale", config, variants, runs, measure, ratios=SCALE_RATIOS, targets=SCALE_TARGETS, log=log
    )


def run_idle(
    agencies: int, runs: int, log: Callable[[str], None], variants: Sequence[Variant] = TLS_TWINS
) -> Record:
    config = {"agencies": agencies, "concurrency": IDLE_CONCURRENCY}
    measure = functools.partial(idle_once, agencies)
    return run_variants("idle", config, variants, runs, measure, ratios=IDLE_RATIOS, targets=IDLE_TARGETS, log=log)


def run_crowd(
    dataset: Dataset, bad_peers: int, runs: int, log: Callable[[str], None], variants: Sequence[Variant] = VARIANTS
) -> Record:
    """The crowd benchmark; a twin adds a variant, and its Ratio to CROWD_RATIOS."""
    config: Record = {"uploads": len(dataset.files) // 2, "bets": dataset.sizes[1], "bad_peers": bad_peers}
    config["timeouts"] = ", ".join(f"{key}={value}" for key, value in CROWD_TIMEOUTS.items())
    measure = functools.partial(crowd_once, dataset, bad_peers=bad_peers)
    return run_variants("crowd", config, variants, runs, measure, ratios=CROWD_RATIOS, targets=CROWD_TARGETS, log=log)
