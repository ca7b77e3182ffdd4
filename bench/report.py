# Strategy: turn one invocation's measurements into BENCHMARKS.md. Nothing is
# measured here and nothing is quoted from elsewhere: every number on the page
# comes from the `Results` of this invocation. A figure is shown as its median
# with min-max over the runs; a ratio is computed inside each run (see
# bench.ingest) and then summarised the same way. Sizes are decimal (1 MB =
# 10^6 bytes, 1 KB = 10^3 bytes).
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bench._machine import Machine
from bench._stats import Summary
from bench.floor import BATCH
from bench.idle import IdleRun
from bench.ingest import IngestRun
from bench.profile_ingest import HotSpot, Profile
from bench.report_profile import render_profiles, yes
from bench.scale import ScaleRun

T = TypeVar("T")

#: Issue 5's targets.
TARGET_INGEST_S = 1.2
TARGET_INGEST_OVER_FLOOR = 2.0
TARGET_DURABLE_OVER_PLAIN = 1.25
TARGET_SCALE_S = 10.0
TARGET_IDLE_RSS_MB = 200.0


@dataclass
class Results:
    command: str
    runs: int
    quick: bool
    machine: Machine
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    started: str = ""
    duration_s: float = math.nan
    dataset: str = ""
    ingest: list[IngestRun] = field(default_factory=list)
    scale: list[ScaleRun] = field(default_factory=list)
    idle: list[IdleRun] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    idle_profile: Profile | None = None


def _summary(runs: Sequence[T], value: Callable[[T], float]) -> Summary:
    return Summary.of([value(run) for run in runs])


def _cells(summary: Summary, unit: str, scale: float = 1.0, digits: int = 3) -> str:
    if summary.runs == 0:
        return "— | —"
    median, low, high = (x * scale for x in (summary.median, summary.low, summary.high))
    return f"{median:.{digits}f} {unit} | {low:.{digits}f} – {high:.{digits}f} {unit}"


def _row(name: str, summary: Summary, unit: str, scale: float = 1.0, digits: int = 3) -> str:
    return f"| {name} | {_cells(summary, unit, scale, digits)} |"


def _verdict(measured: float, target: float, unit: str, quick: bool) -> str:
    if quick:
        return "n/a (quick configuration)"
    if math.isnan(measured):
        return "not measured"
    gap = measured - target
    share = abs(gap) / target
    if gap <= 0:
        return f"**met**, {abs(gap):.3g}{unit} under ({share:.0%} margin)"
    return f"**missed** by {gap:.3g}{unit} ({share:.0%} over)"


def _machine(results: Results) -> list[str]:
    m = results.machine
    load = ", ".join(f"{x:.2f}" for x in results.load_before)
    load_after = ", ".join(f"{x:.2f}" for x in results.load_after)
    return [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| `nproc` | {m.nproc} (os.cpu_count: {m.cpu_count}) |",
        f"| CPU | {m.cpu_model} |",
        f"| Python | {m.python}, gevent {m.gevent} |",
        f"| kernel | {m.kernel} |",
        f"| working files | `{m.temp_dir}` on {m.temp_fs} (fsync goes to this disk) |",
        f"| RLIMIT_NOFILE hard limit | {m.fd_hard_limit} |",
        f"| load average (1, 5, 15 min) | before: {load}; after: {load_after} |",
        "",
    ]


def _measured(summary: Summary, unit: str, digits: int) -> str:
    return f"{summary.median:.{digits}f}{unit} ({summary.low:.{digits}f} – {summary.high:.{digits}f})"


def _targets(results: Results) -> list[str]:
    quick = results.quick
    rows: list[tuple[str, str, str, str]] = []
    if results.ingest:
        wall = _summary(results.ingest, lambda r: r.durable.wall_s)
        ratio = _summary(results.ingest, lambda r: r.ratios["durable_over_floor"])
        cost = _summary(results.ingest, lambda r: r.ratios["durable_over_plain"])
        rows += [
            (
                "durable ingest, server start to last client exit",
                f"≤ {TARGET_INGEST_S} s",
                _measured(wall, " s", 3),
                _verdict(wall.median, TARGET_INGEST_S, " s", quick),
            ),
            (
                "durable ingest / no-fsync floor, same run",
                f"≤ {TARGET_INGEST_OVER_FLOOR}×",
                _measured(ratio, "×", 2),
                _verdict(ratio.median, TARGET_INGEST_OVER_FLOOR, "×", quick),
            ),
            (
                "durable / non-durable ingest, same run",
                f"≤ {TARGET_DURABLE_OVER_PLAIN}×",
                _measured(cost, "×", 2),
                _verdict(cost.median, TARGET_DURABLE_OVER_PLAIN, "×", quick),
            ),
        ]
    if results.scale:
        total = _summary(results.scale, lambda r: r.total_s)
        correct = all(run.all_correct for run in results.scale)
        agencies = results.scale[0].agencies
        rows.append(
            (
                f"{agencies} agencies × {results.scale[0].bets // agencies} bets",
                f"every agency correct, ≤ {TARGET_SCALE_S} s",
                f"{_measured(total, ' s', 3)}; all correct in every run: {_yes(correct)}",
                _verdict(total.median, TARGET_SCALE_S, " s", quick) if correct else "**missed**: wrong answers",
            )
        )
    if results.idle:
        peak = _summary(results.idle, lambda r: r.server_peak_rss_kib * 1024 / 1e6)
        correct = all(run.all_correct for run in results.idle)
        rows.append(
            (
                f"{results.idle[0].agencies} connected agencies",
                f"all answered correctly; server RSS ≤ {TARGET_IDLE_RSS_MB:.0f} MB",
                f"peak {_measured(peak, ' MB', 1)}; all answered correctly in every run: {_yes(correct)}",
                _verdict(peak.median, TARGET_IDLE_RSS_MB, " MB", quick) if correct else "**missed**: wrong answers",
            )
        )
    lines = ["## Targets (issue 5), medians", "", "| figure | target | measured | verdict |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _yes(flag: bool) -> str:
    return yes(flag)


def _ingest(results: Results) -> list[str]:
    runs = results.ingest
    if not runs:
        return []
    first = runs[0]
    lines = [
        "## 1. Ingest, and 4. durability cost",
        "",
        f"Data: {results.dataset}: {first.durable.bets:,} bets, {_runs(len(runs))}. "
        "Each run measures the floor, then a durable (SERVER_FSYNC=true) and a non-durable (SERVER_FSYNC=false) "
        "ingest, alternating which goes first; one server process and one client process per agency on 127.0.0.1, "
        f"batches of {BATCH}. Wall time runs from just before the server is started to the last client's exit.",
        "",
        "| figure | median | min – max |",
        "|---|---|---|",
        _row("wall, durable", _summary(runs, lambda r: r.durable.wall_s), "s"),
        _row("wall, non-durable", _summary(runs, lambda r: r.plain.wall_s), "s"),
        _row("  of which: server start until it listens", _summary(runs, lambda r: r.durable.server_ready_s), "s"),
        _row("throughput, durable", _summary(runs, lambda r: r.durable.bets_per_s), "bets/s", digits=0),
        _row("throughput, non-durable", _summary(runs, lambda r: r.plain.bets_per_s), "bets/s", digits=0),
        _row("server CPU, durable", _summary(runs, lambda r: r.durable.server_cpu_s), "s", digits=2),
        _row("server CPU, non-durable", _summary(runs, lambda r: r.plain.server_cpu_s), "s", digits=2),
        _row("all clients' CPU, durable", _summary(runs, lambda r: r.durable.clients_cpu_s), "s", digits=2),
        _row("server peak RSS, durable", _summary(runs, lambda r: r.durable.server_peak_rss_kib), "MB", 1.024e-3, 1),
        _row("server peak RSS, non-durable", _summary(runs, lambda r: r.plain.server_peak_rss_kib), "MB", 1.024e-3, 1),
        _row("floor: parse + validate the CSVs", _summary(runs, lambda r: r.floor.parse_s), "s"),
        _row("floor: build the `Bet`s", _summary(runs, lambda r: r.floor.build_s), "s"),
        _row(f"floor: `store_bets` × {first.floor.store_calls}", _summary(runs, lambda r: r.floor.store_s), "s"),
        _row("floor: the same, fsync after each call", _summary(runs, lambda r: r.floor.store_fsync_s), "s"),
        _row("floor: the draw (`load_bets` + `has_won`)", _summary(runs, lambda r: r.floor.draw_s), "s"),
        _row("**no-fsync floor** (parse + build + store + draw)", _summary(runs, lambda r: r.floor.total_s), "s"),
        _row("durable floor (store with fsync)", _summary(runs, lambda r: r.floor.durable_total_s), "s"),
        "",
        "Ratios, each computed within one run:",
        "",
        "| ratio | median | min – max | per run |",
        "|---|---|---|---|",
    ]
    names = {
        "durable_over_floor": "durable ingest / no-fsync floor",
        "plain_over_floor": "non-durable ingest / no-fsync floor",
        "durable_over_durable_floor": "durable ingest / durable floor",
        "durable_over_plain": "**durability cost**: durable / non-durable wall",
        "durable_cpu_over_plain_cpu": "durable / non-durable server CPU",
    }
    for key, name in names.items():
        summary = Summary.of([r.ratios[key] for r in runs])
        each = ", ".join(f"{r.ratios[key]:.2f}" for r in runs)
        lines.append(f"| {name} | {summary.median:.2f}× | {summary.low:.2f} – {summary.high:.2f}× | {each} |")
    ok = all(r.durable.ok and r.plain.ok for r in runs)
    floor_ok = all(r.floor_winners_ok for r in runs)
    lines += [
        "",
        f"Correct in every run (clients exited 0 with their winner counts, bets.csv holds each agency's bets, "
        f"server exited 0): {_yes(ok)}. The floor's draw found the expected winning documents: {_yes(floor_ok)}.",
        "",
    ]
    return lines


def _scale(results: Results) -> list[str]:
    runs = results.scale
    if not runs:
        return []
    agencies = runs[0].agencies
    return [
        "## 2. Scale",
        "",
        f"{agencies} agencies × {runs[0].bets // agencies} bets (generated, known winners), all at once from one "
        "load-generator process (`bench.loadgen`, one greenlet per agency, at most 250 connecting at a time, "
        "frames encoded before the clock starts), against one durable server. Total time runs from the first "
        "connect to the last answer.",
        "",
        "| figure | median | min – max |",
        "|---|---|---|",
        _row("total time", _summary(runs, lambda r: r.total_s), "s"),
        _row("batch-ack latency p50", _summary(runs, lambda r: r.ack_p50_s), "ms", 1000, 1),
        _row("batch-ack latency p99", _summary(runs, lambda r: r.ack_p99_s), "ms", 1000, 1),
        _row("server peak RSS", _summary(runs, lambda r: r.server_peak_rss_kib * 1024), "MB", 1e-6, 1),
        _row("server CPU", _summary(runs, lambda r: r.server_cpu_s), "s", digits=2),
        "",
        f"Every agency got exactly its own winning documents (compared as documents), bets.csv held exactly its "
        f"bets, and nothing failed, in every run: {_yes(all(r.all_correct for r in runs))} "
        f"(agencies correct per run: {', '.join(str(r.correct_agencies) for r in runs)}).",
        "",
    ]


def _idle(results: Results) -> list[str]:
    runs = results.idle
    if not runs:
        return []
    agencies = runs[0].agencies
    return [
        "## 3. Idle capacity",
        "",
        f"{agencies} agencies connected at once to one durable server, from one load-generator process (set up "
        "at most 500 at a time). Each identifies and sends one bet (every 7th wins); all but the last send Done "
        "and block on the winners query; the last stays identified. The server's RSS is read then; per connection "
        "= (that RSS − the RSS once listening) / connections. Then the last agency sends Done, and the answer time "
        "runs until every agency has its answer.",
        "",
        "| figure | median | min – max |",
        "|---|---|---|",
        _row("server RSS per connection", _summary(runs, lambda r: r.rss_per_connection_bytes), "KB", 1e-3, 1),
        _row("server RSS, all connected", _summary(runs, lambda r: r.loaded_rss_kib * 1024), "MB", 1e-6, 1),
        _row("server RSS before any connection", _summary(runs, lambda r: r.baseline_rss_kib * 1024), "MB", 1e-6, 1),
        _row("server peak RSS", _summary(runs, lambda r: r.server_peak_rss_kib * 1024), "MB", 1e-6, 1),
        _row("last Done → all answered", _summary(runs, lambda r: r.answer_s), "s"),
        _row("set-up of all connections", _summary(runs, lambda r: r.setup_s), "s", digits=2),
        _row("server CPU, whole run", _summary(runs, lambda r: r.server_cpu_s), "s", digits=2),
        "",
        f"All answered, each with exactly its expected documents, in every run: "
        f"{_yes(all(r.all_correct for r in runs))} "
        f"(agencies correct per run: {', '.join(str(r.correct_agencies) for r in runs)}).",
        "",
    ]


def render(results: Results, describe: Callable[[HotSpot], str], notes: Sequence[str]) -> str:
    """The whole BENCHMARKS.md page."""
    header = [
        "# Benchmarks",
        "",
        f"Generated by `{results.command}` (what `make bench` runs: `python3 -m bench`) on {results.started}, "
        f"in {results.duration_s:.0f} s. Every figure is the median with min – max over {_runs(results.runs)} of "
        "this one invocation; ratios are computed within each run. Nothing here is quoted from another day.",
        "",
    ]
    if results.quick:
        header += ["**Quick configuration** (CI): small data, not comparable with the targets.", ""]
    sections = [
        header,
        _targets(results),
        _machine(results),
        _ingest(results),
        _scale(results),
        _idle(results),
        render_profiles(results.profiles, results.idle_profile, describe, notes),
    ]
    return "\n".join(line for section in sections for line in section).rstrip("\n") + "\n"
