"""The benchmark code in its small CI configuration: 50 agencies for scale, 1,000
idle connections, a small ingest. Assertions are about correctness only (every
agency got exactly its winners, all answered, bets.csv holds every bet), never
about time. Each test checks that it left no child process and no file behind.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import idle, ingest, scale
from bench.__main__ import main as bench_main
from bench.data import IDLE_WINNER_EVERY, idle_winners, ingest_dataset
from bench.profile_ingest import parse_pyspy_raw

pytestmark = pytest.mark.bench

SCALE_AGENCIES = 50
IDLE_AGENCIES = 1_000
#: Fraction of the course's bets per agency in the small ingest.
INGEST_SCALE = 0.02
#: File descriptors the idle test's processes need, with room to spare.
IDLE_FDS = IDLE_AGENCIES + 256


def _children() -> set[int]:
    """Pids of this process's live children (every thread's)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


@pytest.fixture(autouse=True)
def leaves_nothing_behind(tmp_path: Path) -> Iterator[Path]:
    """The benchmark's work directory; after the test, no new child process and no leftover file."""
    before = _children()
    work = tmp_path / "work"
    work.mkdir()
    yield work
    assert _children() - before == set(), "benchmark left processes running"
    assert list(work.iterdir()) == [], "benchmark left files behind"


@pytest.fixture
def fd_limit() -> Iterator[int]:
    """Raise this process's soft RLIMIT_NOFILE (children inherit it) for the idle test; restore it after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE_FDS:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} < {IDLE_FDS}")
    wanted = IDLE_FDS if hard == resource.RLIM_INFINITY else min(max(soft, IDLE_FDS), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield wanted
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_scale_every_agency_gets_exactly_its_winners(leaves_nothing_behind: Path, tmp_path: Path) -> None:
    dataset = scale.make_dataset(tmp_path / "data", SCALE_AGENCIES, scale.BETS_PER_AGENCY)
    assert sum(map(len, dataset.winners.values())) > 0

    run = scale.run_once(dataset, leaves_nothing_behind)

    assert run.errors == {}
    assert run.correct_agencies == SCALE_AGENCIES
    assert run.rows_ok and run.exits_ok and run.all_correct
    assert run.acks == SCALE_AGENCIES  # one batch of 100 per agency, each acknowledged


def test_idle_connections_all_answered_correctly(leaves_nothing_behind: Path, fd_limit: int) -> None:
    run = idle.run_once(IDLE_AGENCIES, leaves_nothing_behind)

    assert run.errors == {}
    assert run.correct_agencies == IDLE_AGENCIES
    assert run.rows_ok and run.exits_ok and run.all_correct
    assert run.loaded_rss_kib > run.baseline_rss_kib > 0
    winners = sum(1 for agency in range(1, IDLE_AGENCIES + 1) if idle_winners(agency))
    assert winners == IDLE_AGENCIES // IDLE_WINNER_EVERY


def test_ingest_durable_and_not_with_floor(leaves_nothing_behind: Path, tmp_path: Path) -> None:
    dataset = ingest_dataset(tmp_path / "data", scale=INGEST_SCALE)

    run = ingest.run_once(dataset, leaves_nothing_behind, durable_first=True)

    for measured in (run.durable, run.plain):
        assert measured.exits_ok, "a client or the server exited non-zero"
        assert measured.winners_ok, "a client reported the wrong number of winners"
        assert measured.rows_ok, "bets.csv does not hold exactly each agency's bets"
        assert measured.server_peak_rss_kib > 0
    assert run.floor.bets == dataset.bets
    assert run.floor.winners == {agency: docs for agency, docs in dataset.winners.items() if docs}
    assert run.floor_winners_ok


def test_quick_cli_writes_a_page_with_a_profile(leaves_nothing_behind: Path, tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"

    code = bench_main(["--quick", "--only", "profile", "--profiler", "cprofile", "--output", str(page)])

    assert code == 0
    text = page.read_text(encoding="utf-8")
    assert "## Machine" in text
    assert "## Profile of the server" in text
    assert "cProfile, the server's main thread only" in text
    assert "correct: yes" in text
    assert "| own | total | function | file | what it is |" in text


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
    by_name = {spot.function: spot for spot in spots}
    assert by_name["store_bets"].self_share == pytest.approx(0.6)
    assert by_name["run"].self_share == pytest.approx(0.2)
    assert by_name["run"].total_share == pytest.approx(0.8)
    assert spots[0].function == "store_bets"
