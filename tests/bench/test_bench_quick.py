"""The benchmark code in its small CI configuration (``python3 -m bench --quick``): a small ingest
(durable, non-durable, TLS), 50 agencies for scale and 1,000 idle connections (each also over TLS),
an agency beside 100 bad peers, and a profile. Assertions are about correctness only (every agency
got exactly its winners, bets.csv holds every bet) and about the results file and the page rendered
from it, never about time. The test checks that it left no child process and no file behind.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import render
from bench.__main__ import main as bench_main

pytestmark = pytest.mark.bench

#: File descriptors the idle run's processes need, with room to spare.
IDLE_FDS = 1_000 + 256
HEADINGS = (
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
    sections = {section["key"]: section for section in results["sections"]}
    assert list(sections) == ["ingest", "scale", "idle", "crowd"]
    for key, section in sections.items():
        assert [run["ok"] for run in section["runs"]] == [True], key
    ingest = sections["ingest"]["runs"][0]
    assert set(ingest["figures"]) == {"floor", "durable", "nondurable", "tls"}
    assert all(figures["ok"] for figures in ingest["figures"].values())
    for column in ("plaintext", "tls"):  # the TLS column runs in the same run
        scale, idle = sections["scale"]["runs"][0]["figures"][column], sections["idle"]["runs"][0]["figures"][column]
        assert scale["correct_agencies"] == 50 and scale["errors"] == {}
        assert idle["correct_agencies"] == 1_000 and idle["loaded_rss_kib"] > idle["baseline_rss_kib"] > 0
    crowd = sections["crowd"]["runs"][0]["figures"]["plaintext"]
    assert crowd["alone_s"] is not None and crowd["loaded_s"] is not None and crowd["errors"] == {}
    assert [profile["ok"] for profile in results["profiles"]] == [True]
    assert results["git"]["commit"] and results["machine"]["nproc"]

    page = page_path.read_text(encoding="utf-8")
    positions = [page.find(heading) for heading in HEADINGS]
    assert -1 not in positions and positions == sorted(positions), "a section is missing or out of order"
    assert "**no**" not in page and "not measured" not in page
    notes = render.PROFILE_NOTES.read_text(encoding="utf-8")
    assert render.render(results, notes) == page, "the page is not rendered from the results file alone"
