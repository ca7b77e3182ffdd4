"""The benchmark code in its small CI configuration (``python3 -m bench --quick``): a small
ingest, 50 agencies for scale, 1,000 idle connections (each also over TLS), an agency
beside 100 bad peers, and a profile. Assertions are about correctness only (every agency got exactly its
winners, all answered, bets.csv holds every bet) and about the results file and the
page rendered from it, never about time. The test checks that it left no child
process and no file behind.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import render
from bench.__main__ import main as bench_main
from bench.profiling import parse_pyspy_raw

pytestmark = pytest.mark.bench

#: File descriptors the idle run's processes need, with room to spare.
IDLE_FDS = 1_000 + 256
SECTIONS = (
    "## Targets",
    "## Machine",
    "## 1. Ingest, and 4. durability cost",
    "## 2. Scale",
    "## 3. Idle capacity",
    "## A normal agency beside bad peers",
    "## Profile of the server",
    "## What the profile means",
)


def _children() -> set[int]:
    """Pids of this process's live children (every thread's)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every temporary directory of the benchmark goes here; afterwards it must be empty,
    no new child process may be running, and the file descriptor limit is as it was."""
    before = _children()
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limits[1] != resource.RLIM_INFINITY and limits[1] < IDLE_FDS:
        pytest.fail(f"hard RLIMIT_NOFILE {limits[1]} < {IDLE_FDS}: the idle run cannot open its connections")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    yield work
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    assert _children() - before == set(), "benchmark left processes running"
    assert list(work.iterdir()) == [], "benchmark left files behind"


def test_quick_run_writes_results_and_renders_every_section(work: Path, tmp_path: Path) -> None:
    results_path, page_path = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"

    code = bench_main(["--quick", "--profiler", "cprofile", "--results", str(results_path), "--output", str(page_path)])

    assert code == 0, "a benchmark run was not correct"
    results = json.loads(results_path.read_text(encoding="utf-8"))
    benchmarks = results["benchmarks"]
    assert set(benchmarks) == {"ingest", "scale", "idle", "crowd"}
    for name, bench in benchmarks.items():
        assert [run["ok"] for run in bench["runs"]] == [True], name
    (ingest,) = benchmarks["ingest"]["runs"]
    assert ingest["floor"]["ok"] and set(ingest["variants"]) == {"durable", "nondurable", "tls"}
    assert all(variant["winners_ok"] and variant["rows_ok"] for variant in ingest["variants"].values())
    scales = benchmarks["scale"]["runs"][0]["variants"]
    assert set(scales) == {"plaintext", "tls"}  # the TLS twin runs in the same run
    for scale in scales.values():
        assert scale["correct_agencies"] == 50 and scale["acks"] == 50 and scale["errors"] == 0
    idles = benchmarks["idle"]["runs"][0]["variants"]
    assert set(idles) == {"plaintext", "tls"}
    for idle in idles.values():
        assert idle["correct_agencies"] == 1_000 and idle["loaded_rss_kib"] > idle["baseline_rss_kib"] > 0
    (crowd,) = benchmarks["crowd"]["runs"]
    assert crowd["ratios"]["crowd"] is not None and crowd["variants"]["plaintext"]["errors"] == 0
    assert [profile["run"]["ok"] for profile in results["profiles"]] == [True]
    assert results["git"]["commit"] and results["machine"]["nproc"]

    page = page_path.read_text(encoding="utf-8")
    positions = [page.find(section) for section in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), "a section is missing or out of order"
    assert "**no**" not in page
    notes = render.PROFILE_NOTES.read_text(encoding="utf-8")
    assert render.render(results, notes) == page, "the page is not rendered from the results file alone"


def test_a_twin_variant_is_one_more_column(tmp_path: Path) -> None:
    bench: dict[str, Any] = {
        "config": {"agencies": 2, "bets": 1, "concurrency": 1},
        "variants": [{"name": n, "label": n.upper(), "server_env": {}, "client_env": {}} for n in ("a", "b")],
        "ratios": [],
        "targets": [],
        "runs": [{"ok": True, "variants": {"a": {"total_s": 1.0, "ok": True}, "b": {"total_s": 3.0, "ok": True}}}],
    }
    twin = copy.deepcopy(bench)
    twin["ratios"] = [{"key": "b_over_a", "label": "B / A", "numerator": "b.total_s", "denominator": "a.total_s"}]
    twin["runs"][0]["ratios"] = {"b_over_a": 3.0}

    lines = render.render_section("scale", twin)

    assert "| figure | A | B |" in lines
    assert "| total time | 1.000 s (1.000 – 1.000) | 3.000 s (3.000 – 3.000) |" in lines
    assert "| B / A | 3.00× | 3.00 – 3.00× | 3.00 |" in lines


def test_pyspy_raw_output_is_aggregated_by_function() -> None:
    raw = "\n".join(
        [
            "thread (1): MainThread;run (lottery_gevent/session.py:90);store_bets (lottery_gevent/contract.py:40) 6",
            "thread (1): MainThread;run (lottery_gevent/session.py:90) 2",
            "thread (2): Thread-1;__run_task (gevent/threadpool.py:170) 2",
        ]
    )

    samples, main_share, spots = parse_pyspy_raw(raw)

    assert samples == 10
    assert main_share == pytest.approx(0.8)
    by_name = {spot[0]: spot for spot in spots}
    assert by_name["store_bets"][2:] == pytest.approx((0.6, 0.6))
    assert by_name["run"][2:] == pytest.approx((0.2, 0.8))
    assert spots[0][0] == "store_bets"
