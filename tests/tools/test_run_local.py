"""`make run` (tools/run_local.py): one contest as local processes, a final table, and
nothing left running when it is interrupted.

Each test runs in a scratch copy of the repository, so its .data/ is its own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT, LoggedProcess
from tools.generate_agencies import DEFAULT_BETS, default_winners, generate

#: Bound on a whole `make run`, and on each wait for one of its lines.
RUN_TIMEOUT_S = 180.0
COPIED = ("shared", "lottery_gevent", "client_gevent", "tools")
_PID = re.compile(r"^(?P<name>\S+) +\| run_local: started, pid (?P<pid>\d+)$")
_LISTEN = re.compile(r"^server +\| .*action: listen \| result: success .*port: (?P<port>\d+)")
_TABLE_ROW = re.compile(r"^ *(?P<agency>\d+) \| +(?P<bets>\S+) \| +(?P<winners>\S+) \| +(?P<code>\S+)$")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in COPIED:
        shutil.copytree(REPO_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copyfile(REPO_ROOT / name, root / name)
    (root / ".data").mkdir()
    return root


def make_run(repo: Path, agencies: int, *, new_session: bool = False) -> LoggedProcess:
    argv = [
        "make",
        "--no-print-directory",
        "run",
        f"AGENCIES={agencies}",
        "PORT=0",
        f"PYTHON={sys.executable}",
        "SHARED_DATASET=/nonexistent.zip",
    ]
    env = {"MAKEFLAGS": "", "MAKELEVEL": ""}
    return LoggedProcess(argv, repo, env, new_session=new_session)


def table(run: LoggedProcess) -> dict[int, tuple[str, str, str]]:
    """agency -> (bets, winners, exit code), from the final table."""
    return {
        int(match["agency"]): (match["bets"], match["winners"], match["code"])
        for match in map(_TABLE_ROW.match, run.lines)
        if match is not None
    }


def children(run: LoggedProcess) -> dict[str, int]:
    return {match["name"]: int(match["pid"]) for match in map(_PID.match, run.lines) if match is not None}


@pytest.fixture
def reap() -> Iterator[list[LoggedProcess]]:
    """Runs whose children must be gone at the end; kills any left, so none outlives a failed test."""
    runs: list[LoggedProcess] = []
    yield runs
    for run in runs:
        for pid in children(run).values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_make_run_plays_one_contest_and_prints_the_table(repo: Path, reap: list[LoggedProcess]) -> None:
    run = make_run(repo, 3)
    reap.append(run)
    assert run.wait(RUN_TIMEOUT_S) == 0, run.output()

    winners = default_winners(3)
    assert table(run) == {k: (str(DEFAULT_BETS), str(winners[k - 1]), "0") for k in (1, 2, 3)}
    assert any(line.startswith("server   | ") and "action: sorteo | result: success" in line for line in run.lines)
    assert any(line.startswith("agency-2 | ") and "action: consulta_ganadores" in line for line in run.lines)
    assert set(children(run)) == {"server", "agency-1", "agency-2", "agency-3"}
    assert (repo / ".data" / "server" / "bets.csv").exists()


def broken_third_agency(repo: Path) -> None:
    """Agencies 1 and 2 have good files; agency 3's first row is bad, so the draw never comes."""
    generate(repo / ".data", 3, 200, [1, 1, 0], 7)
    (repo / ".data" / "agency-3.csv").write_text("Ana,Lorca,not-a-dni,1990-01-01,1\r\n", encoding="utf-8")


def assert_all_gone(run: LoggedProcess) -> None:
    """Every child the runner started has ended and been reaped, and the server's port is free."""
    pids = children(run)
    assert set(pids) == {"server", "agency-1", "agency-2", "agency-3"}
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    (port,) = {int(match["port"]) for match in map(_LISTEN.search, run.lines) if match is not None}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_make_run_interrupted_leaves_nothing_running(repo: Path, reap: list[LoggedProcess]) -> None:
    broken_third_agency(repo)
    run = make_run(repo, 3, new_session=True)
    reap.append(run)
    run.wait_for_line(r"^agency-3 +\| .*result: fail", RUN_TIMEOUT_S)
    for k in (1, 2):
        run.wait_for_line(rf"^agency-{k} +\| .*action: upload \| result: success", RUN_TIMEOUT_S)

    run.signal_group(signal.SIGINT)  # as Ctrl-C in a terminal: make and the runner both get it
    assert run.wait(RUN_TIMEOUT_S) != 0

    assert table(run) == {1: ("200", "-", "0"), 2: ("200", "-", "0"), 3: ("1", "-", "1")}
    assert_all_gone(run)


def test_sigterm_to_the_runner_stops_every_child(repo: Path, reap: list[LoggedProcess]) -> None:
    broken_third_agency(repo)
    argv = [sys.executable, "-m", "tools.run_local", "--agencies", "3", "--data", ".data", "--port", "0"]
    run = LoggedProcess(argv, repo, {})
    reap.append(run)
    run.wait_for_line(r"^agency-3 +\| .*result: fail", RUN_TIMEOUT_S)
    run.wait_for_line(r"^server +\| .*action: agency_done", RUN_TIMEOUT_S)

    run.signal(signal.SIGTERM)
    assert run.wait(RUN_TIMEOUT_S) == 1
    assert "stopped by SIGTERM" in run.output()
    assert_all_gone(run)


def test_progress_mode_shows_one_line_per_agency_and_logs_to_files(repo: Path, reap: list[LoggedProcess]) -> None:
    """What a terminal gets (forced with --progress on): live lines per agency, the full logs in files."""
    generate(repo / ".data", 2, 150, [1, 0], 7)
    argv = [sys.executable, "-m", "tools.run_local", "--agencies", "2", "--port", "0", "--progress", "on"]
    run = LoggedProcess(argv, repo, {})
    reap.append(run)
    assert run.wait(RUN_TIMEOUT_S) == 0, run.output()
    logs = repo / ".data" / "server" / "logs"
    screen = run.output()
    final = [line.rsplit("\x1b[2K", 1)[-1] for line in run.lines if "\x1b[2K" in line][-2:]
    assert re.fullmatch(r"agency-1 +\[#{30}\] 150/150 bets, exit code 0, winners: 1", final[0]), final
    assert re.fullmatch(r"agency-2 +\[#{30}\] 150/150 bets, exit code 0, winners: 0", final[1]), final
    assert "action:" not in screen  # no log line on the screen
    assert table(run) == {1: ("150", "1", "0"), 2: ("150", "0", "0")}
    assert "action: sorteo | result: success" in (logs / "server.log").read_text()
    for k in (1, 2):
        assert "action: consulta_ganadores | result: success" in (logs / f"agency-{k}.log").read_text()
