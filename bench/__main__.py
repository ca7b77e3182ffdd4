"""Run the benchmarks, write every figure to bench/results.json, render BENCHMARKS.md from it.

    python3 -m bench [--runs N] [--quick] [--only ingest,scale,idle,crowd,profile]
                     [--profiler auto|py-spy|cprofile|none] [--results PATH] [--output PATH]

Full configuration (what ``make bench`` runs): the course dataset (or generated
data of its shape), 1,000 agencies x 100 bets, 10,000 idle connections, an
agency beside 500 bad peers, 5 runs each, then the profiles. --quick is the
small CI configuration (1 run, small data); it writes results.json only where
--results says, and prints the page unless --output is given. The page is
rendered from the results file alone (bench.render), after it is written.

Progress goes to stderr; exit code 0 if every run was correct, 1 otherwise.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import compose_start, fleets, ingest, million, render, tls
from bench._machine import describe, git_commit
from bench._procs import raise_fd_limit
from bench.data import generated_dataset, ingest_dataset
from bench.profiling import profile
from tests.support.processes import REPO_ROOT

BENCHMARKS = ("ingest", "scale", "idle", "crowd", "compose", "million", "profile")
#: Left out of --quick: they need Docker (compose) or minutes (million).
FULL_ONLY = ("compose", "million")
DEFAULT_RUNS = 5
RESULTS = REPO_ROOT / "bench" / "results.json"


@dataclass(frozen=True)
class Size:
    ingest_scale: float = 1.0
    scale_agencies: int = fleets.SCALE_AGENCIES
    idle_agencies: int = fleets.IDLE_AGENCIES
    crowd_bets: int = fleets.CROWD_BETS
    bad_peers: int = fleets.CROWD_BAD_PEERS


#: The quick configuration: 2% of the course data, 50 agencies, 1,000 connections, a small crowd.
QUICK = Size(0.02, 50, 1_000, 1_000, 100)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help=f"runs per benchmark (default {DEFAULT_RUNS}; quick: 1)")
    parser.add_argument("--quick", action="store_true", help="the small CI configuration")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"a comma-separated subset of {BENCHMARKS}")
    parser.add_argument("--profiler", choices=("auto", "py-spy", "cprofile", "none"), default="auto")
    parser.add_argument("--results", type=Path, default=None, help=f"results file (default {RESULTS}; quick: none)")
    parser.add_argument("--output", type=Path, default=None, help="where to write the page ('-': stdout)")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    if args.quick and args.only == list(BENCHMARKS):
        args.only = [name for name in BENCHMARKS if name not in FULL_ONLY]
    if unknown := set(args.only) - set(BENCHMARKS):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    args.runs = args.runs or (1 if args.quick else DEFAULT_RUNS)
    if args.results is None and not args.quick:
        args.results = RESULTS
    if args.output is None:
        args.output = Path("-") if args.quick else REPO_ROOT / "BENCHMARKS.md"
    return args


def _guarded(measure_once: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one of the once-per-invocation benchmarks; a failure is recorded, not allowed to lose the others.

    The whole invocation still fails (exit 1, "correct": false on the page), but results.json keeps
    every figure measured before and after it.
    """
    try:
        return measure_once()
    except Exception as exc:  # noqa: BLE001 - recorded in results.json and on the page, and fails the run
        _log(f"failed: {type(exc).__name__}: {exc}")
        return {"correct": False, "error": f"{type(exc).__name__}: {exc}"}


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Every selected benchmark, in order: the whole of results.json."""
    size = QUICK if args.quick else Size()
    results: dict[str, Any] = {
        "command": shlex.join(["python3", "-m", "bench", *argv]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_commit(),
        "quick": args.quick,
        "runs": args.runs,
        "machine": describe(),
        "load_before": list(os.getloadavg()),
        "benchmarks": {},
        "extras": {},
        "profiles": [],
    }
    benchmarks = results["benchmarks"]
    raise_fd_limit()  # thousands of connections; the children inherit it
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        data = Path(tmp)
        # One contest's credentials for every TLS twin, for the largest fleet measured.
        fleet = {"scale": size.scale_agencies, "idle": size.idle_agencies}
        tls.prepare(data / "tls", max([5, *(fleet[name] for name in fleet if name in args.only)]))
        if "ingest" in args.only or "profile" in args.only:
            dataset = ingest_dataset(data / "ingest", scale=size.ingest_scale)
        if "ingest" in args.only:
            benchmarks["ingest"] = ingest.run(dataset, args.runs, log=_log)
        if "scale" in args.only:
            scale_data = generated_dataset(data / "scale", size.scale_agencies, fleets.SCALE_BETS)
            benchmarks["scale"] = fleets.run_scale(scale_data, args.runs, _log)
        if "idle" in args.only:
            benchmarks["idle"] = fleets.run_idle(size.idle_agencies, args.runs, _log)
        if "crowd" in args.only:
            crowd_data = generated_dataset(data / "crowd", 2 * fleets.CROWD_UPLOADS + 1, size.crowd_bets)
            benchmarks["crowd"] = fleets.run_crowd(crowd_data, size.bad_peers, args.runs, _log)
        if "compose" in args.only:
            _log("compose start ...")
            results["extras"]["compose"] = _guarded(lambda: compose_start.run(args.runs))
        if "million" in args.only:
            _log("1,000 agencies x 1,000 bets ...")
            results["extras"]["million"] = _guarded(lambda: million.run(base_dir=data))
        if "profile" in args.only and args.profiler != "none":
            _log("profiling ...")
            results["profiles"] = profile(dataset, size.idle_agencies, args.profiler)
    results["duration_s"] = time.perf_counter() - started
    results["load_after"] = list(os.getloadavg())
    results["ok"] = (
        all(run["ok"] for bench in benchmarks.values() for run in bench["runs"])
        and all(found["run"]["ok"] for found in results["profiles"])
        and all(extra["correct"] for extra in results["extras"].values())
    )
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    results = measure(args, argv)
    text = json.dumps(results, indent=1, ensure_ascii=False) + "\n"
    with tempfile.TemporaryDirectory(prefix="bench-results-") as tmp:
        path = args.results or Path(tmp) / "results.json"
        path.write_text(text, encoding="utf-8")
        if args.results is not None:
            _log(f"wrote {path}")
        render.main([str(path), "--output", str(args.output)])
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
