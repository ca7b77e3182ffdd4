"""tests/support/launch.py: constants a test sets reach the program before its main runs."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import ClientProcess


def test_constants_are_set_before_the_main_runs(tmp_path: Path) -> None:
    # setup_logging reads shared.logs.LOG_FORMAT when main calls it: every line shows the change.
    marked = {"shared.logs.LOG_FORMAT": "MARK %(message)s"}
    client = ClientProcess(tmp_path, 1, 1, tmp_path / "missing.csv", constants=marked)
    assert client.wait(30) == 1  # the missing bets file: one fail line, no connection
    assert client.lines and all(line.startswith("MARK action: ") for line in client.lines), client.output()
