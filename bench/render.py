"""Render BENCHMARKS.md from a results file, and from nothing else.

    python3 -m bench.render [RESULTS] [--output PATH]   (defaults: bench/results.json, BENCHMARKS.md; '-': stdout)

Every number on the page comes from the results file (what ``python3 -m bench``
wrote). A figure is its median with min – max over the runs; a ratio was
computed inside each run and is summarised the same way. Every variant of a
benchmark is a column, every ratio a row. The one piece of prose not generated
here is bench/profile-notes.md, written by hand, which names its commit.
Sizes are decimal (1 MB = 10^6 bytes, 1 KB = 10^3 bytes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.spec import Record, figure

HERE = Path(__file__).resolve().parent
PROFILE_NOTES = HERE / "profile-notes.md"
#: A table row: label, figure name, unit, scale, digits.
Row = tuple[str, str, str, float, int]

INGEST_ROWS: list[Row] = [
    ("wall, server start to last client exit", "wall_s", "s", 1, 3),
    ("  of which: server start until it listens", "server_ready_s", "s", 1, 3),
    ("throughput", "bets_per_s", "bets/s", 1, 0),
    ("server CPU", "server_cpu_s", "s", 1, 2),
    ("all clients' CPU", "clients_cpu_s", "s", 1, 2),
    ("server peak RSS", "server_peak_rss_kib", "MB", 1.024e-3, 1),
]
FLOOR_ROWS: list[Row] = [
    ("floor: parse + validate the CSVs", "parse_s", "s", 1, 3),
    ("floor: build the `Bet`s", "build_s", "s", 1, 3),
    ("floor: `store_bets` × {store_calls}", "store_s", "s", 1, 3),
    ("floor: the same, fsync after each call", "store_fsync_s", "s", 1, 3),
    ("floor: the draw (`load_bets` + `has_won`)", "draw_s", "s", 1, 3),
    ("**no-fsync floor** (parse + build + store + draw)", "total_s", "s", 1, 3),
    ("durable floor (store with fsync)", "durable_total_s", "s", 1, 3),
]
SCALE_ROWS: list[Row] = [
    ("total time", "total_s", "s", 1, 3),
    ("batch-ack latency p50", "ack_p50_s", "ms", 1000, 1),
    ("batch-ack latency p99", "ack_p99_s", "ms", 1000, 1),
    ("server peak RSS", "server_peak_rss_kib", "MB", 1.024e-3, 1),
    ("server CPU", "server_cpu_s", "s", 1, 2),
]
IDLE_ROWS: list[Row] = [
    ("server RSS per connection", "rss_per_connection_b", "KB", 1e-3, 1),
    ("server RSS, all connected", "loaded_rss_kib", "MB", 1.024e-3, 1),
    ("server RSS before any connection", "baseline_rss_kib", "MB", 1.024e-3, 1),
    ("server peak RSS", "server_peak_rss_kib", "MB", 1.024e-3, 1),
    ("last Done → all answered", "answer_s", "s", 1, 3),
    ("set-up of all connections", "setup_s", "s", 1, 2),
    ("server CPU, whole run", "server_cpu_s", "s", 1, 2),
]
CROWD_ROWS: list[Row] = [
    ("upload alone (median of the uploads)", "alone_s", "s", 1, 3),
    ("upload beside the bad peers (median)", "loaded_s", "s", 1, 3),
    ("bad peers connected → last loaded upload done", "loaded_window_s", "s", 1, 2),
    ("server peak RSS", "server_peak_rss_kib", "MB", 1.024e-3, 1),
]


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _values(runs: Sequence[Record], path: str) -> list[float]:
    return [value for run in runs if (value := figure(run, path)) is not None]


def _summary(values: Sequence[float], unit: str, scale: float = 1.0, digits: int = 3, split: bool = False) -> str:
    """'median unit (low – high)', or with `split` the cells 'median unit | low – high unit'."""
    if not values:
        return "— | —" if split else "—"
    median, low, high = (value * scale for value in (statistics.median(values), min(values), max(values)))
    sep = "" if unit in ("×", "") else " "
    if split:
        return f"{median:.{digits}f}{sep}{unit} | {low:.{digits}f} – {high:.{digits}f}{sep}{unit}"
    return f"{median:.{digits}f}{sep}{unit} ({low:.{digits}f} – {high:.{digits}f})"


def _variant_table(bench: Record, rows: Sequence[Row], group: str | None = None) -> list[str]:
    """One row per figure; one column per variant (or, for one variant or `group`, median and min – max)."""
    runs, variants = bench["runs"], bench["variants"]
    config = {**bench["config"], **(runs[0].get(group, {}) if group else {})}
    single = group is not None or len(variants) == 1
    names = [group or variants[0]["name"]] if single else [variant["name"] for variant in variants]
    head = ["median", "min – max"] if single else [variant["label"] for variant in variants]
    lines = ["| figure | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for label, figure_name, unit, scale, digits in rows:
        cells = [_summary(_values(runs, f"{name}.{figure_name}"), unit, scale, digits, split=single) for name in names]
        lines.append(f"| {label.format(**config)} | " + " | ".join(cells) + " |")
    return lines


def _ratio_table(bench: Record) -> list[str]:
    if not bench["ratios"]:
        return []
    lines = [
        "Ratios, each computed within one run:",
        "",
        "| ratio | median | min – max | per run |",
        "|---|---|---|---|",
    ]
    for ratio in bench["ratios"]:
        values = _values(bench["runs"], f"ratio.{ratio['key']}")
        each = ", ".join(f"{value:.2f}" for value in values)
        lines.append(f"| {ratio['label']} | {_summary(values, '×', digits=2, split=True)} | {each} |")
    return [*lines, ""]


def _variants_line(bench: Record) -> str:
    parts = []
    for variant in bench["variants"]:
        env = {**variant["server_env"], **variant["client_env"]}
        settings = ", ".join(f"{key}={value}" for key, value in env.items()) or "the defaults"
        parts.append(f"{variant['label']}: {settings}")
    return "Variants (in alternating order from run to run): " + "; ".join(parts) + "."


def _targets(results: Record) -> list[str]:
    lines = ["## Targets, medians", "", "| figure | target | measured | verdict | source |", "|---|---|---|---|---|"]
    for bench in results["benchmarks"].values():
        for target in bench["targets"]:
            values = _values(bench["runs"], target["figure"])
            scale, unit, limit = target["scale"], target["unit"], target["limit"]
            measured = _summary(values, unit.strip(), scale, target["digits"])
            group = target["figure"].partition(".")[0]
            correct = all(
                run["variants"][group]["ok"] if group in run["variants"] else run["ok"] for run in bench["runs"]
            )
            if results["quick"]:
                verdict = "n/a (quick configuration)"
            elif not values or not correct:
                verdict = "**missed**: wrong answers" if values else "not measured"
            else:
                gap = statistics.median(values) * scale - limit
                share = abs(gap) / limit
                met = f"**met**, {-gap:.3g}{unit} under ({share:.0%} margin)"
                verdict = met if gap <= 0 else f"**missed** by {gap:.3g}{unit} ({share:.0%} over)"
            lines.append(f"| {target['label']} | ≤ {limit:g}{unit} | {measured} | {verdict} | {target['source']} |")
    return [*lines, ""]


#: Issue 12's targets for the two figures measured once per invocation (not per variant).
COMPOSE_TARGET_S = 3.5
MILLION_CPU_RATIO_TARGET = 1.2


def _verdict(value: float, limit: float, unit: str, correct: bool) -> str:
    if not correct:
        return "**missed**: wrong answers"
    gap = value - limit
    share = abs(gap) / limit
    return f"**met**, {-gap:.3g}{unit} under ({share:.0%} margin)" if gap <= 0 else f"**missed** by {gap:.3g}{unit}"


def _extra_targets(results: Record) -> list[str]:
    extras = results.get("extras", {})
    rows = [
        f"| {name} | — | failed: {extra['error']} | **missed** | issue 12 |"
        for name, extra in extras.items()
        if "error" in extra
    ]
    if (compose := extras.get("compose")) and "error" not in compose:
        rows.append(
            f"| `docker compose up -d` to the last client exit, course data | ≤ {COMPOSE_TARGET_S:g} s | "
            f"{compose['median_s']:.2f} s ({compose['min_s']:.2f} – {compose['max_s']:.2f}) | "
            f"{_verdict(compose['median_s'], COMPOSE_TARGET_S, ' s', compose['correct'])} | issue 12 |"
        )
    if (big := extras.get("million")) and "error" not in big:
        rows.append(
            "| server CPU per bet, 1,000 × 1,000 bets / course data, same invocation | "
            f"≤ {MILLION_CPU_RATIO_TARGET:g}× "
            f"| {big['cpu_per_bet_ratio']:.2f}× | "
            f"{_verdict(big['cpu_per_bet_ratio'], MILLION_CPU_RATIO_TARGET, '×', big['correct'])} | issue 12 |"
        )
    if not rows:
        return []
    return [
        "Measured once per invocation (not per variant):",
        "",
        "| figure | target | measured | verdict | source |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _engine_floor(compose: Record) -> list[str]:
    """The floor row of the Compose table and the note under it (results from before the floor have neither)."""
    if "median_engine_floor_s" not in compose:
        return []
    per_run = ", ".join(f"{run['engine_floor_s']:.2f}" if "engine_floor_s" in run else "—" for run in compose["runs"])
    return [
        f"| the engine's floor: the same project doing nothing, up → last exit | "
        f"{compose['median_engine_floor_s']:.2f} s | | {per_run} |",
        "",
        "The floor replaces every image by busybox doing nothing (the server sleeps, each client exits at once) "
        "and keeps the network, mounts and secrets; it runs right after each contest, so both see the machine "
        "in the same state.",
    ]


def _compose(compose: Record | None) -> list[str]:
    if not compose or "error" in compose:
        return []
    per_run = ", ".join(f"{run['up_to_last_exit_s']:.2f}" for run in compose["runs"])
    return [
        "## Compose start to finish",
        "",
        "`docker compose up -d` of a generated 5-agency Compose project (the images built beforehand, the course "
        "data mounted) to the last client container's exit, read from the engine's own `FinishedAt` stamps; "
        f"{_runs(len(compose['runs']))}.",
        "",
        "| figure | median | min – max | per run |",
        "|---|---|---|---|",
        f"| up → last client exit | {compose['median_s']:.2f} s | {compose['min_s']:.2f} – {compose['max_s']:.2f} s "
        f"| {per_run} |",
        f"| up → server container started | {compose['median_server_start_s']:.2f} s | | |",
        *_engine_floor(compose),
        "",
        f"Every agency exited 0 with its exact winners and no `fail` line, in every run: {yes(compose['correct'])}.",
        "",
    ]


def _million(big: Record | None) -> list[str]:
    if not big or "error" in big:
        return []
    rows = []
    for name in ("course", "small", "million"):
        figures = big[name]
        draw = "—" if figures["draw_s"] is None else f"{figures['draw_s']:.2f} s"
        rows.append(
            f"| {figures['agencies']:,} agencies, {figures['bets']:,} bets ({figures['source']}) | "
            f"{figures['bets_per_s']:,.0f} | {figures['server_cpu_us_per_bet']:.1f} µs | "
            f"{figures['server_peak_rss_mib']:.1f} MiB | {draw} | {yes(_million_ok(figures))} |"
        )
    million = big["million"]
    marks = sorted(key for key in million if key.startswith("peak_rss_mib_at_"))
    rss = "; ".join(f"{million[key]:.1f} MiB at {int(key.split('_')[4]):,} bets" for key in marks)
    return [
        "## How cost grows with work",
        "",
        "One durable server per contest, one load-generator process (as in Scale), in one invocation: the course "
        "data as the reference, 1,000 agencies × 100 bets, and 1,000 agencies × 1,000 bets (generated, known "
        "winners). Draw time runs from the last `agency_done` to `sorteo` in the server's log.",
        "",
        "| contest | bets/s | server CPU per bet | server peak RSS | draw | every agency exact |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Server CPU per bet, 1M contest over course data: {big['cpu_per_bet_ratio']:.2f}×. Peak RSS in the 1M "
        f"contest: {rss} (growth {big['rss_growth_tenth_to_all']:.3f}×): memory follows connections and batches "
        "in flight, not stored bets.",
        "",
    ]


def _million_ok(figures: Record) -> bool:
    return bool(figures["agencies_exact"] == figures["agencies"] and figures["rows_exact"] and not figures["errors"])


MACHINE_ROWS = [
    ("`nproc`", "{nproc} (os.cpu_count: {cpu_count})"),
    ("CPU", "{cpu_model}"),
    ("Python", "{python}, gevent {gevent}"),
    ("kernel", "{kernel}"),
    ("working files", "`{temp_dir}` on {temp_fs} (fsync goes to this disk)"),
    ("RLIMIT_NOFILE hard limit", "{fd_hard_limit}"),
    (
        "load average (1, 5, 15 min)",
        "before: {load_before[0]:.2f}, {load_before[1]:.2f}, {load_before[2]:.2f}; "
        "after: {load_after[0]:.2f}, {load_after[1]:.2f}, {load_after[2]:.2f}",
    ),
]


def _machine(results: Record) -> list[str]:
    m = {**results["machine"], **{f"load_{when}": results[f"load_{when}"] for when in ("before", "after")}}
    rows = [(label, text.format(**m)) for label, text in MACHINE_ROWS]
    return ["## Machine", "", "| | |", "|---|---|", *(f"| {label} | {text} |" for label, text in rows), ""]


#: Per benchmark: heading, text before the tables, the tables (rows, and the run group
#: they read, None: the variants), text after. Texts are formatted with the config,
#: `runs`, `variants` (their settings), `ok` and `correct` (agencies correct per run).
SECTIONS: dict[str, tuple[str, str, list[tuple[list[Row], str | None]], str]] = {
    "ingest": (
        "1. Ingest, and 4. durability cost",
        "Data: {dataset}: {bets:,} bets, {runs}. Each run measures the in-process floor (bench.floor: the same "
        "data through the storage contract in one process, no sockets), then one ingest per variant: one server "
        "process and one client process per agency ({agencies}) on 127.0.0.1, batches of {batch}. Wall time runs "
        "from just before the server is started to the last client's exit. {variants}",
        [(INGEST_ROWS, None), (FLOOR_ROWS, "floor")],
        "Correct in every run (clients exited 0 with their winner counts, bets.csv holds each agency's bets, "
        "server exited 0, the floor's draw found the expected winning documents): {ok}.",
    ),
    "scale": (
        "2. Scale",
        "{agencies:,} agencies × {bets} bets (generated, known winners), all at once from one load-generator "
        "process (`bench.loadgen`, one greenlet per agency, at most {concurrency} connecting at a time, frames "
        "encoded before the clock starts), against one durable server. Total time runs from the first connect "
        "to the last answer. {variants}",
        [(SCALE_ROWS, None)],
        "Every agency got exactly its own winning documents (compared as documents), bets.csv held exactly its "
        "bets, and nothing failed, in every run: {ok} (agencies correct per run: {correct}).",
    ),
    "idle": (
        "3. Idle capacity",
        "{agencies:,} agencies connected at once to one durable server, from one load-generator process (set up "
        "at most {concurrency} at a time). Each identifies and sends one bet (every 7th wins); all but the last "
        "send Done and block on the winners query; the last stays identified. The server's RSS is read then; per "
        "connection = (that RSS − the RSS once listening) / connections. Then the last agency sends Done, and the "
        "answer time runs until every agency has its answer. {variants}",
        [(IDLE_ROWS, None)],
        "All answered, each with exactly its expected documents, in every run: {ok} (agencies correct per run: "
        "{correct}).",
    ),
    "crowd": (
        "A normal agency beside bad peers",
        "One server ({timeouts}) and one load-generator process. One agency uploads first to warm the server "
        "up; then {uploads} agencies upload {bets:,} bets each (batches of 100, timed from connect to DoneAck), "
        "one after the other, alone; then {bad_peers} connections open, half silent and half trickling a Hello "
        "one byte every 0.4 s (slowloris), and {uploads} more agencies upload the same way beside them. The "
        "ratio compares the two medians of the same run. {variants}",
        [(CROWD_ROWS, None)],
        "Every upload acknowledged exactly, bets.csv held exactly each agency's bets, the server exited 0, in "
        "every run: {ok}.",
    ),
}


def render_section(name: str, bench: Record) -> list[str]:
    heading, intro, tables, closing = SECTIONS[name]
    runs = bench["runs"]
    correct = [str(entry.get("correct_agencies", "—")) for run in runs for entry in run["variants"].values()]
    words = {
        **bench["config"],
        "runs": _runs(len(runs)),
        "variants": _variants_line(bench),
        "ok": yes(all(run["ok"] for run in runs)),
        "correct": ", ".join(correct),
    }
    lines = [f"## {heading}", "", intro.format(**words), ""]
    for rows, group in tables:
        lines += [*_variant_table(bench, rows, group), ""]
    return [*lines, *_ratio_table(bench), closing.format(**words), ""]


_VIEWS = {
    "py-spy --gil": "py-spy `--gil`: samples of whichever server thread holds the GIL, i.e. where its Python CPU "
    "goes (a thread in fsync or epoll does not show)",
    "py-spy": "py-spy, every server thread that is not sleeping (running, runnable, or in a disk wait such as fsync)",
    "cprofile": "cProfile, the server's main thread only (where every greenlet runs); thread-pool work is not "
    "seen and its overhead inflates call-heavy code; counts are calls, shares are of own time",
}


def _spots(spots: Sequence[Sequence[Any]]) -> list[str]:
    rows = ["| own | total | function | file |", "|---|---|---|---|"]
    for function, file, own, total in spots:
        rows.append(f"| {own:.1%} | {'—' if total is None else f'{total:.1%}'} | `{function}` | {file} |")
    return rows


def _profiles(results: Record, notes: str) -> list[str]:
    profiles = results["profiles"]
    if not profiles:
        return []
    lines = [
        "## Profile of the server",
        "",
        "Extra runs after the timed ones, one per view, never a timed run (`python3 -m bench --only profile` runs "
        "them alone). 'own' is the share of samples with the function on top of the stack; 'total', "
        "anywhere on it.",
        "",
    ]
    for index, found in enumerate(profiles, start=1):
        run = found["run"]
        main = found["main_thread_share"]
        if found["workload"] == "idle":
            workload = f"one idle run of {run['agencies']} agencies: set-up {run['setup_s']:.2f} s, server CPU "
            workload += f"{run['server_cpu_s']:.2f} s"
        else:
            workload = f"one durable ingest: {run['wall_s']:.3f} s wall"
        lines += [
            f"### View {index}: {_VIEWS.get(found['view'], found['view'])}; {found['workload']}",
            "",
            f"{found['samples']:,} samples"
            + (f"; main thread (event loop and every greenlet): {main:.0%}" if main is not None else "")
            + f". Profiled: {workload}; correct: {yes(run['ok'])}.",
            "",
        ]
        if found["workload"] != "idle":
            lines += ["Top functions by own share:", "", *_spots(found["by_own"]), ""]
        if found["by_total"] and found["view"] != "py-spy":
            lines += ["Project functions by total share:", "", *_spots(found["by_total"]), ""]
    return [*lines, "## What the profile means", "", notes.strip(), ""]


def render(results: Record, notes: str) -> str:
    """The whole BENCHMARKS.md page for one results file; `notes` is the hand-written profile section."""
    git = results["git"]
    commit = f"`{git['commit']}`" + (" with uncommitted changes" if git["dirty"] else "")
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{results['command']}` on {results['date']} at commit {commit}, in {results['duration_s']:.0f} "
        "s; rendered from its results file (`bench/results.json` for `make bench`) by `python3 -m bench.render`. "
        f"Every figure is the median with min – max over {_runs(results['runs'])} of that one invocation; ratios "
        "are computed within each run. Nothing here is quoted from another day.",
        "",
    ]
    if results["quick"]:
        lines += ["**Quick configuration** (CI): small data, not comparable with the targets.", ""]
    lines += _targets(results) + _extra_targets(results) + _machine(results)
    for name, bench in results["benchmarks"].items():
        lines += render_section(name, bench)
    lines += _compose(results.get("extras", {}).get("compose"))
    lines += _million(results.get("extras", {}).get("million"))
    lines += _profiles(results, notes)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.render", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?", default=HERE / "results.json")
    parser.add_argument("--output", type=Path, default=HERE.parent / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    page = render(json.loads(args.results.read_text(encoding="utf-8")), PROFILE_NOTES.read_text(encoding="utf-8"))
    if str(args.output) == "-":
        sys.stdout.write(page)
    else:
        args.output.write_text(page, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
