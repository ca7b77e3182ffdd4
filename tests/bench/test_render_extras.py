"""The renderer's once-per-invocation sections (Compose start, the 1M contest), from synthetic figures."""

from __future__ import annotations

from typing import Any

import yaml

from bench import render
from bench.compose_start import FLOOR_IMAGE, floor_project
from tools.compose_generator import render as compose_file


def _contest(agencies: int, bets: int, exact: bool = True) -> dict[str, Any]:
    return {
        "source": "generated",
        "agencies": agencies,
        "bets": bets,
        "bets_per_s": 50_000.0,
        "server_cpu_us_per_bet": 20.0,
        "server_peak_rss_mib": 100.0,
        "draw_s": 2.5,
        "agencies_exact": agencies if exact else agencies - 1,
        "rows_exact": True,
        "errors": {},
        "peak_rss_mib_at_100000_bets": 98.0,
        "peak_rss_mib_at_1000000_bets": 101.0,
    }


def test_compose_and_million_sections_and_their_targets() -> None:
    compose = {
        "runs": [{"up_to_last_exit_s": 3.1}, {"up_to_last_exit_s": 3.9}, {"up_to_last_exit_s": 3.4}],
        "median_s": 3.4,
        "min_s": 3.1,
        "max_s": 3.9,
        "median_server_start_s": 0.6,
        "correct": True,
    }
    big = {
        "course": _contest(5, 78_697),
        "small": _contest(1_000, 100_000),
        "million": _contest(1_000, 1_000_000, exact=False),
        "cpu_per_bet_ratio": 1.3,
        "rss_growth_tenth_to_all": 1.03,
        "correct": False,
    }
    targets = "\n".join(render._extra_targets({"extras": {"compose": compose, "million": big}}))
    assert "3.40 s (3.10 – 3.90)" in targets and "**met**" in targets
    assert "**missed**: wrong answers" in targets  # the 1M contest had a wrong agency
    page = "\n".join(render._compose(compose) + render._million(big))
    assert "| up → last client exit | 3.40 s | 3.10 – 3.90 s | 3.10, 3.90, 3.40 |" in page
    assert "1,000,000 bets" in page and "1.30×" in page and "98.0 MiB at 100,000 bets" in page
    assert page.count("| yes |") == 2 and page.count("| **no** |") == 1


def test_no_extras_render_nothing() -> None:
    assert render._extra_targets({}) == [] and render._compose(None) == [] and render._million(None) == []


def test_a_failed_extra_is_a_missed_target_and_no_section() -> None:
    failed = {"correct": False, "error": "DockerError: no engine"}
    targets = "\n".join(render._extra_targets({"extras": {"compose": failed}}))
    assert "failed: DockerError: no engine" in targets and "**missed**" in targets
    assert render._compose(failed) == []


def _with_floor(second_run: dict[str, Any], floor_median: float) -> dict[str, Any]:
    """Two Compose runs, the first with an engine floor of 2.1 s; the second as given."""
    return {
        "runs": [{"up_to_last_exit_s": 4.0, "engine_floor_s": 2.1}, {"up_to_last_exit_s": 4.2, **second_run}],
        "median_s": 4.1,
        "min_s": 4.0,
        "max_s": 4.2,
        "median_server_start_s": 1.2,
        "median_engine_floor_s": floor_median,
        "correct": True,
    }


def test_the_engine_floor_is_shown_beside_the_contest_when_measured() -> None:
    compose = _with_floor({"engine_floor_s": 1.9}, 2.0)
    page = "\n".join(render._compose(compose))
    assert "| the engine's floor: the same project doing nothing, up → last exit | 2.00 s | | 2.10, 1.90 |" in page
    older = {key: value for key, value in compose.items() if key != "median_engine_floor_s"}
    assert "floor" not in "\n".join(render._compose(older))  # results from before the floor render without it


def test_the_floor_project_keeps_the_services_and_network_but_runs_nothing() -> None:
    original = yaml.safe_load(compose_file(2))
    floor = yaml.safe_load(floor_project(compose_file(2)))
    assert list(floor["services"]) == list(original["services"]) == ["server", "client1", "client2"]
    assert {service["image"] for service in floor["services"].values()} == {FLOOR_IMAGE}
    assert floor["services"]["client1"]["entrypoint"] == ["true"]
    assert floor["services"]["server"]["entrypoint"][0] == "sleep" and "healthcheck" not in floor["services"]["server"]
    assert floor["networks"] == original["networks"] and floor["secrets"] == original["secrets"]
    assert floor["services"]["client2"]["volumes"] == original["services"]["client2"]["volumes"]


def test_a_run_whose_floor_failed_shows_a_dash() -> None:
    compose = _with_floor({"engine_floor_error": "x"}, 2.1)
    assert "| 2.10 s | | 2.10, — |" in "\n".join(render._compose(compose))
