"""bench.render: every section drawn from its data alone; targets judged from the runs' medians."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
import yaml

from bench import render
from bench.compose_start import FLOOR_IMAGE, floor_project
from bench.runs import SECTIONS, alternate, failed, section
from tools.compose_generator import render as compose_file

pytestmark = pytest.mark.bench


def _section(runs: list[dict[str, Any]], limit: float = 2.5) -> dict[str, Any]:
    return {
        "key": "demo",
        "title": "Demo",
        "about": "What ran.",
        "check": "All correct",
        "columns": {"a": "A", "b": "B"},
        "tables": [{"columns": ["a", "b"], "rows": [["total time", "total_s", "s", 1, 2]]}],
        "ratios": [["b_over_a", "B / A", "b.total_s", "a.total_s"]],
        "targets": [{"label": "A's total", "figure": "a.total_s", "limit": limit}],
        "runs": runs,
    }


def _run(a: float, b: float, ok: bool = True) -> dict[str, Any]:
    return {"figures": {"a": {"total_s": a, "ok": ok}, "b": {"total_s": b, "ok": True}}, "ok": ok}


def _results(*sections: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    return {"sections": list(sections), "quick": quick}


def test_a_column_per_column_and_a_ratio_per_run() -> None:
    lines = render.section_lines(_section([_run(1.0, 3.0), _run(2.0, 3.0), _run(3.0, 3.0)]))

    assert "| figure | A | B |" in lines
    assert "| total time | 2.00 s (1.00 – 3.00) | 3.00 s (3.00 – 3.00) |" in lines
    assert "| B / A | 1.50× | 1.00 – 3.00× | 3.00, 1.50, 1.00 |" in lines
    assert "All correct: yes." in lines


def test_one_column_is_shown_as_median_and_spread() -> None:
    section = _section([_run(1.0, 3.0), _run(2.0, 3.0)])
    section["tables"] = [{"columns": ["a"], "rows": [["total time", "total_s", "s", 1000, 0]]}]

    assert "| total time | 1,500 s | 1,000 – 2,000 s |" in render.section_lines(section)


def test_targets_are_met_missed_or_wrong() -> None:
    met = render._targets(_results(_section([_run(1.0, 1.0), _run(2.0, 1.0), _run(3.0, 1.0)])))
    missed = render._targets(_results(_section([_run(3.0, 1.0)])))
    wrong = render._targets(_results(_section([_run(1.0, 1.0), _run(1.0, 1.0, ok=False)])))
    quick = render._targets(_results(_section([_run(1.0, 1.0)]), quick=True))

    assert "| A's total | ≤ 2.5 s | 2.00 s (1.00 – 3.00) | **met**, 0.5 s under (20% margin) | issue 5 |" in met
    assert "**missed** by 0.5 s (20% over)" in missed[-2]
    assert "**missed**: wrong answers" in wrong[-2]
    assert "n/a (quick configuration)" in quick[-2]


def test_a_failed_benchmark_is_a_missed_target_and_an_empty_section() -> None:
    broken = failed("compose", RuntimeError("no engine\ndocker said more"))

    targets = render._targets(_results(broken))

    assert "| Compose start to finish | — | failed: RuntimeError: no engine | **missed** | — |" in targets
    assert render.section_lines(broken)[-2] == "Not measured: RuntimeError: no engine"


def test_every_figure_a_section_names_is_one_it_shows() -> None:
    with open(SECTIONS, "rb") as file:
        layout = tomllib.load(file)
    for key, entry in layout.items():
        tables = entry["tables"]
        shown = {f"{column}.{row[1]}" for table in tables for column in table["columns"] for row in table["rows"]}
        ratios = {f"ratio.{ratio[0]}" for ratio in entry["ratios"]}
        assert {part for ratio in entry["ratios"] for part in ratio[2:]} <= shown, key
        assert {target["figure"] for target in entry["targets"]} <= shown | ratios, key
        assert {column for table in entry["tables"] for column in table["columns"]} <= set(entry["columns"]), key


def test_columns_alternate_from_run_to_run_and_a_section_is_formatted_with_its_config() -> None:
    measured: list[str] = []

    def measure(column: str) -> dict[str, Any]:
        measured.append(column)
        return {"total_s": 1.0, "ok": column != "tls"}

    runs = alternate("scale", ["plaintext", "tls"], 2, measure, lambda _: None)

    assert measured == ["plaintext", "tls", "tls", "plaintext"]
    assert [run["ok"] for run in runs] == [False, False]
    made = section("scale", {"agencies": 1000, "bets": 100, "concurrency": 250, "tls": "TLS on"}, runs)
    assert made["targets"][0]["label"] == "1,000 agencies × 100 bets" and "TLS on" in made["about"]
    assert made["runs"] is runs


def test_the_floor_project_keeps_the_services_and_network_but_runs_nothing() -> None:
    original = yaml.safe_load(compose_file(2))
    floor = yaml.safe_load(floor_project(compose_file(2)))

    assert list(floor["services"]) == list(original["services"]) == ["server", "client1", "client2"]
    assert {service["image"] for service in floor["services"].values()} == {FLOOR_IMAGE}
    assert floor["services"]["client1"]["entrypoint"] == ["true"]
    assert floor["services"]["server"]["entrypoint"][0] == "sleep" and "healthcheck" not in floor["services"]["server"]
    assert floor["networks"] == original["networks"] and floor["secrets"] == original["secrets"]
    assert floor["services"]["client2"]["volumes"] == original["services"]["client2"]["volumes"]
