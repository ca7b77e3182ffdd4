"""Run the benchmark suite and write BENCHMARKS.md: ``python3 -m bench`` (what ``make bench`` runs).

    python3 -m bench [--runs N] [--quick] [--only ingest,scale,idle,profile]
                     [--profiler auto|py-spy|cprofile|none] [--output PATH]

Full configuration: the course dataset (or generated data of its shape),
1,000 agencies x 100 bets, 10,000 idle connections, 5 runs each, then the
profiles (two profiled ingests and one profiled idle run with py-spy; one
ingest under cProfile without it). --quick is the small CI configuration (5 agencies with 2% of
the course's bets, 50 agencies, 1,000 connections, 1 run) and prints the page
instead of writing BENCHMARKS.md unless --output is given.

Progress goes to stderr; exit code 0 if every run was correct, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench import hotspots, idle, ingest, scale
from bench._machine import describe, load_average
from bench._procs import REPO_ROOT
from bench.data import ingest_dataset
from bench.profile_ingest import profile_idle, profile_ingest
from bench.report import Results, render

BENCHMARKS = ("ingest", "scale", "idle", "profile")
DEFAULT_RUNS = 5
#: The small configuration: fraction of the course data, agencies, idle connections.
QUICK_INGEST_SCALE = 0.02
QUICK_SCALE_AGENCIES = 50
QUICK_IDLE_AGENCIES = 1_000


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help=f"runs per benchmark (default {DEFAULT_RUNS}; quick: 1)")
    parser.add_argument("--quick", action="store_true", help="the small CI configuration")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {','.join(BENCHMARKS)}"
    )
    parser.add_argument("--profiler", choices=("auto", "py-spy", "cprofile", "none"), default="auto")
    parser.add_argument("--output", type=Path, default=None, help="where to write the page ('-': stdout)")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    if args.runs is None:
        args.runs = 1 if args.quick else DEFAULT_RUNS
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.output is None:
        args.output = Path("-") if args.quick else REPO_ROOT / "BENCHMARKS.md"
    return args


def run(args: argparse.Namespace, argv: list[str]) -> Results:
    """Every selected benchmark, in order, into one Results."""
    results = Results(
        command=shlex.join(["python3", "-m", "bench", *argv]),
        runs=args.runs,
        quick=args.quick,
        machine=describe(None),
        load_before=load_average(),
        started=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        data = Path(tmp)
        if "ingest" in args.only or "profile" in args.only:
            dataset = ingest_dataset(data / "ingest", scale=QUICK_INGEST_SCALE if args.quick else 1.0)
            results.dataset = dataset.source
            if "ingest" in args.only:
                results.ingest = ingest.run(dataset, args.runs, log=_log)
        if "scale" in args.only:
            agencies = QUICK_SCALE_AGENCIES if args.quick else scale.AGENCIES
            scale_data = scale.make_dataset(data / "scale", agencies)
            results.scale = scale.run(scale_data, args.runs, log=_log)
        idle_agencies = QUICK_IDLE_AGENCIES if args.quick else idle.AGENCIES
        if "idle" in args.only:
            results.idle = idle.run(idle_agencies, args.runs, log=_log)
        if "profile" in args.only and args.profiler != "none":
            _log("profiling durable ingests ...")
            results.profiles = profile_ingest(dataset, None, args.profiler)
            if "idle" in args.only:
                results.idle_profile = profile_idle(idle_agencies, None, args.profiler)
    results.duration_s = time.perf_counter() - started
    results.load_after = load_average()
    return results


def all_correct(results: Results) -> bool:
    return (
        all(run.durable.ok and run.plain.ok and run.floor_winners_ok for run in results.ingest)
        and all(run.all_correct for run in results.scale)
        and all(run.all_correct for run in results.idle)
        and all(profile.ok for profile in results.profiles)
        and (results.idle_profile is None or results.idle_profile.ok)
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    results = run(args, argv)
    notes = hotspots.notes(results.profiles, results.idle_profile, results.ingest, results.idle)
    page = render(results, hotspots.describe, notes)
    if str(args.output) == "-":
        sys.stdout.write(page)
    else:
        args.output.write_text(page, encoding="utf-8")
        _log(f"wrote {args.output}")
    return 0 if all_correct(results) else 1


if __name__ == "__main__":
    sys.exit(main())
