"""Run the benchmarks, write every figure to bench/results.json, render BENCHMARKS.md from it.

    python3 -m bench [--runs N] [--quick] [--only ingest,scale,idle,crowd,compose,million,profile]
                     [--profiler auto|py-spy|cprofile|none] [--results PATH] [--output PATH]

Guarantees: the full configuration is what ``make bench`` runs (5 runs each, then the profiles);
--quick is the small CI configuration (1 run, small data, no Docker, no 1M contest), which writes a
results file only where --results says and prints the page unless --output is given. A benchmark
that raises is recorded as failed and the others still run. Progress goes to stderr; the exit code
is 0 only if every run was correct.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import compose_start, fleets, ingest, render
from bench.data import ingest_dataset
from bench.host import describe, git_commit, raise_fd_limit
from bench.profiling import profile
from bench.runs import failed
from tests.support.processes import REPO_ROOT
from tools.credentials import ensure_credentials

BENCHMARKS = ("ingest", "scale", "idle", "crowd", "compose", "million", "profile")
RESULTS = REPO_ROOT / "bench" / "results.json"
#: Share of the course data, scale agencies, idle connections, crowd bets per agency, crowd bad peers.
FULL = (1.0, fleets.SCALE_AGENCIES, fleets.IDLE_AGENCIES, fleets.CROWD_BETS, fleets.CROWD_BAD_PEERS)
QUICK = (0.02, 50, 1_000, 1_000, 100)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="runs per benchmark (default 5; quick: 1)")
    parser.add_argument("--quick", action="store_true", help="the small CI configuration")
    parser.add_argument("--only", default=None, help=f"a comma-separated subset of {BENCHMARKS}")
    parser.add_argument("--profiler", choices=("auto", "py-spy", "cprofile", "none"), default="auto")
    parser.add_argument("--results", type=Path, default=None, help=f"results file (default {RESULTS}; quick: none)")
    parser.add_argument("--output", type=Path, default=None, help="where to write the page ('-': stdout)")
    args = parser.parse_args(argv)
    quick_set = [name for name in BENCHMARKS if name not in ("compose", "million")]  # Docker; minutes
    args.only = args.only.split(",") if args.only else quick_set if args.quick else list(BENCHMARKS)
    if unknown := set(args.only) - set(BENCHMARKS):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    args.runs = args.runs or (1 if args.quick else 5)
    args.results = args.results or (None if args.quick else RESULTS)
    args.output = args.output or (Path("-") if args.quick else REPO_ROOT / "BENCHMARKS.md")
    return args


def _guarded(key: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A benchmark's section; if it raises, a failed section, so the others' figures are kept."""
    _log(f"{key} ...")
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - recorded in results.json and on the page, and fails the invocation
        _log(f"{key} failed: {type(exc).__name__}: {exc}")
        return failed(key, exc)


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Every selected benchmark, in order: the whole of results.json."""
    (share, scale, idle, crowd_bets, bad_peers), runs, only = QUICK if args.quick else FULL, args.runs, args.only
    results: dict[str, Any] = {
        "command": shlex.join(["python3", "-m", "bench", *argv]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_commit(),
        "quick": args.quick,
        "runs": runs,
        "machine": describe(),
        "load_before": list(os.getloadavg()),
        "profiles": [],
    }
    raise_fd_limit()  # thousands of connections; the children inherit it
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        data = Path(tmp)
        # One contest's credentials for every TLS column, for the largest fleet measured.
        keys = data / "tls"
        ensure_credentials(keys, max(5, scale * ("scale" in only), idle * ("idle" in only)), durable=False)
        dataset = ingest_dataset(data / "ingest", scale=share)
        measures = {
            "ingest": lambda: ingest.run(dataset, runs, keys, _log),
            "scale": lambda: fleets.run_scale(data / "scale", scale, runs, keys, _log),
            "idle": lambda: fleets.run_idle(idle, runs, keys, _log),
            "crowd": lambda: fleets.run_crowd(data / "crowd", crowd_bets, bad_peers, runs, _log),
            "compose": lambda: compose_start.run(runs, _log),
            "million": lambda: fleets.run_million(data / "million", _log),
        }
        results["sections"] = [_guarded(name, once) for name, once in measures.items() if name in only]
        if "profile" in only and args.profiler != "none":
            _log("profiling ...")
            results["profiles"] = profile(dataset, idle, args.profiler, keys)
    results |= {"duration_s": time.perf_counter() - started, "load_after": list(os.getloadavg())}
    ok = all("error" not in section and all(run["ok"] for run in section["runs"]) for section in results["sections"])
    results["ok"] = ok and all(found["ok"] for found in results["profiles"])
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    results = measure(args, argv)
    with tempfile.TemporaryDirectory(prefix="bench-results-") as tmp:
        path = args.results or Path(tmp) / "results.json"
        path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        render.main([str(path), "--output", str(args.output)])
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
