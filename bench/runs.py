"""Runs of a benchmark's columns, and the section of results.json they make.

A run is data: {"order": [columns as measured], "figures": {column: {figure: number, ..., "ok":
bool}}, "ok": bool}. A section is the benchmark's entry of bench/sections.toml (its text formatted
with the benchmark's config) plus its config and runs. Guarantees: every column is measured once
per run, in an order that alternates from run to run so a drift of the machine favours no column;
a run is ok only if every column in it was correct. Never computes a ratio (the renderer does).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Record = dict[str, Any]
SECTIONS = Path(__file__).resolve().parent / "sections.toml"


def alternate(
    title: str, columns: Sequence[str], runs: int, measure: Callable[[str], Record], log: Callable[[str], None],
    before: Callable[[], Record] | None = None,
) -> list[Record]:
    """`runs` runs of `measure(column)` for every column; `before()` adds columns of its own first (a floor)."""
    records = []
    for index in range(runs):
        figures = dict(before()) if before is not None else {}
        order = list(columns) if index % 2 == 0 else list(reversed(columns))
        figures.update({column: measure(column) for column in order})
        records.append({"order": order, "figures": figures, "ok": all(entry["ok"] for entry in figures.values())})
        log(f"{title} run {index + 1}/{runs}: " + ", ".join(f"{key} ok={e['ok']}" for key, e in figures.items()))
    return records


def _formatted(value: Any, config: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**config)
    if isinstance(value, list):
        return [_formatted(item, config) for item in value]
    if isinstance(value, dict):
        return {key: _formatted(item, config) for key, item in value.items()}
    return value


def section(key: str, config: Mapping[str, Any], runs: list[Record]) -> Record:
    """Benchmark `key`'s section of results.json."""
    with open(SECTIONS, "rb") as file:
        layout = tomllib.load(file)[key]
    return {"key": key, **_formatted(layout, config), "config": dict(config), "runs": runs}


def failed(key: str, exc: Exception) -> Record:
    """The section of a benchmark that raised: its title and the error's first line, no runs."""
    with open(SECTIONS, "rb") as file:
        title = tomllib.load(file)[key]["title"]
    return {"key": key, "title": title, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}", "runs": []}
