"""Render BENCHMARKS.md from a results file, and from nothing else.

    python3 -m bench.render [RESULTS] [--output PATH]   (defaults: bench/results.json, BENCHMARKS.md; '-': stdout)

Guarantees: every number comes from the results file; a figure is its median with min – max over
the runs; a ratio divides two figures of the same run and is summarised the same way; every section
is drawn by the same code from its data (columns, tables, ratios, targets, runs). The only prose not
in the results file is bench/profile-notes.md, written by hand. Sizes are decimal (1 MB = 10^6 B).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Record = dict[str, Any]
HERE = Path(__file__).resolve().parent
PROFILE_NOTES = HERE / "profile-notes.md"
MACHINE = {
    "`nproc`": "{nproc} (os.cpu_count: {cpu_count})",
    "CPU": "{cpu_model}",
    "Python": "{python}, gevent {gevent}",
    "kernel": "{kernel}",
    "working files": "`{temp_dir}` on {temp_fs} (fsync goes to this disk)",
    "RLIMIT_NOFILE hard limit": "{fd_hard_limit}",
}


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _figure(run: Record, path: str) -> float | None:
    column, _, name = path.partition(".")
    value = run["figures"].get(column, {}).get(name)
    return None if value is None else float(value)


def values(section: Record, path: str) -> list[float]:
    """One figure ("column.name", or "ratio.key": divided inside each run) over the section's runs."""
    ratio = next((r for r in section["ratios"] if f"ratio.{r[0]}" == path), None)
    found = []
    for run in section["runs"]:
        if ratio is None:
            found.append(_figure(run, path))
        elif (top := _figure(run, ratio[2])) is not None and (bottom := _figure(run, ratio[3])):
            found.append(top / bottom)
    return [value for value in found if value is not None]


def _unit(unit: str) -> str:
    return unit if unit in ("×", "") else " " + unit


def summary(found: Sequence[float], unit: str, scale: float = 1, digits: int = 3, split: bool = False) -> str:
    """'median unit (low – high)', or with `split` two cells 'median unit | low – high unit'; one run: its value."""
    if not found:
        return "— | —" if split else "—"
    median, low, high = (value * scale for value in (statistics.median(found), min(found), max(found)))
    text, spread = f"{median:,.{digits}f}{_unit(unit)}", f"{low:,.{digits}f} – {high:,.{digits}f}"
    if len(found) == 1:
        return f"{text} |" if split else text
    return f"{text} | {spread}{_unit(unit)}" if split else f"{text} ({spread})"


def _table(section: Record, columns: list[str], rows: list[list[Any]]) -> list[str]:
    """One row per figure; a column per column of the section, or for one column: median and min – max."""
    head = ["median", "min – max"] if len(columns) == 1 else [section["columns"][name] for name in columns]
    lines = ["| figure | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for label, name, unit, scale, digits in rows:
        found = [values(section, f"{column}.{name}") for column in columns]
        cells = [summary(each, unit, scale, digits, len(columns) == 1) for each in found]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _ratios(section: Record) -> list[str]:
    lines = ["Ratios, each computed within one run:", "", "| ratio | median | min – max | per run |", "|---" * 4 + "|"]
    for key, label, _, _ in section["ratios"]:
        found = values(section, f"ratio.{key}")
        per_run = ", ".join(f"{value:.2f}" for value in found)
        lines.append(f"| {label} | {summary(found, '×', digits=2, split=True)} | {per_run} |")
    return [*lines, ""] if section["ratios"] else []


def _shown(section: Record, path: str) -> tuple[str, float, int]:
    """The unit, scale and digits a figure is shown with (ratios: ×, two digits)."""
    column, _, name = path.partition(".")
    rows = [row for table in section["tables"] if column in table["columns"] for row in table["rows"]]
    return next(((unit, scale, digits) for _, figure, unit, scale, digits in rows if figure == name), ("×", 1, 2))


def _verdict(section: Record, target: Record, found: list[float], quick: bool) -> str:
    # A target on a column needs that column correct in every run; on a ratio, the whole run.
    correct = all(run["figures"].get(target["figure"].partition(".")[0], run)["ok"] for run in section["runs"])
    unit, scale, _ = _shown(section, target["figure"])
    if quick or not found or not correct:
        return "n/a (quick configuration)" if quick else "**missed**: wrong answers" if found else "not measured"
    gap, limit = statistics.median(found) * scale - target["limit"], target["limit"]
    if gap <= 0:
        return f"**met**, {-gap:.3g}{_unit(unit)} under ({-gap / limit:.0%} margin)"
    return f"**missed** by {gap:.3g}{_unit(unit)} ({gap / limit:.0%} over)"


def _targets(results: Record) -> list[str]:
    lines = ["## Targets, medians", "", "| figure | target | measured | verdict | source |", "|---|---|---|---|---|"]
    for section in results["sections"]:
        if "error" in section:
            lines.append(f"| {section['title']} | — | failed: {section['error']} | **missed** | — |")
        for target in section.get("targets", []):
            found = values(section, target["figure"])
            unit, scale, digits = _shown(section, target["figure"])
            cells = [target["label"], f"≤ {target['limit']:g}{_unit(unit)}", summary(found, unit, scale, digits)]
            cells += [_verdict(section, target, found, results["quick"]), target.get("source", "issue 5")]
            lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def section_lines(section: Record) -> list[str]:
    lines = [f"## {section['title']}", ""]
    if "error" in section:
        return [*lines, f"Not measured: {section['error']}", ""]
    lines += [section["about"], ""]
    for table in section["tables"]:
        lines += _table(section, table["columns"], table["rows"])
    ok = all(run["ok"] for run in section["runs"])
    return [*lines, *_ratios(section), f"{section['check']}: {yes(ok)}.", ""]


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _spots(title: str, spots: Sequence[Sequence[Any]]) -> list[str]:
    rows = [f"| {_share(own)} | {_share(total)} | `{name}` | {file} |" for name, file, own, total in spots]
    return [title, "", "| own | total | function | file |", "|---|---|---|---|", *rows, ""] if spots else []


def _profiles(results: Record, notes: str) -> list[str]:
    lines = [
        "## Profile of the server",
        "",
        "Extra runs after the timed ones, one per view, never a timed run (`python3 -m bench --only profile` runs "
        "them alone). 'own' is the share of samples with the function on top of the stack; 'total', anywhere on it.",
        "",
    ]
    for index, found in enumerate(results["profiles"], start=1):
        lines += [f"### View {index}: {found['title']}", "", found["summary"], ""]
        lines += _spots("Top functions by own share:", found["by_own"])
        lines += _spots("Project functions by total share:", found["by_total"])
    return [*lines, "## What the profile means", "", notes.strip(), ""] if results["profiles"] else []


def render(results: Record, notes: str) -> str:
    """The whole page for one results file; `notes` is the hand-written profile section."""
    commit = f"`{results['git']['commit']}`" + (" with uncommitted changes" if results["git"]["dirty"] else "")
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{results['command']}` on {results['date']} at commit {commit}, in {results['duration_s']:.0f} "
        "s; rendered from its results file (`bench/results.json` for `make bench`) by `python3 -m bench.render`. "
        f"Every figure is the median with min – max over the runs of that one invocation ({results['runs']} unless "
        "a section says otherwise); ratios are computed within each run. Nothing here is quoted from another day.",
        "",
    ]
    if results["quick"]:
        lines += ["**Quick configuration** (CI): small data, not comparable with the targets.", ""]
    machine = [f"| {label} | {text.format(**results['machine'])} |" for label, text in MACHINE.items()]
    loads = [", ".join(f"{load:.2f}" for load in results[key]) for key in ("load_before", "load_after")]
    machine.append(f"| load average (1, 5, 15 min) | before: {loads[0]}; after: {loads[1]} |")
    lines += [*_targets(results), "## Machine", "", "| | |", "|---|---|", *machine, ""]
    for section in results["sections"]:
        lines += section_lines(section)
    return "\n".join([*lines, *_profiles(results, notes)]).rstrip("\n") + "\n"


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
