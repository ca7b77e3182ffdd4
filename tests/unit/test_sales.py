"""The sales close's record and command (lottery_gevent/sales.py), without a server."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from lottery_gevent import sales
from lottery_gevent.contest import LOCK_FILENAME, archive_contest, load_or_create_contest
from lottery_gevent.sales import SALES_CLOSED_FILENAME, close_sales_command, read_close, record_close, signal_server


def test_the_record_is_written_once_and_read_back(tmp_path: Path) -> None:
    assert read_close(tmp_path) is None
    (by, at), new = record_close(tmp_path, "deadline")
    assert (by, new) == ("deadline", True)
    assert read_close(tmp_path) == ("deadline", at)
    assert record_close(tmp_path, "command") == (("deadline", at), False)  # idempotent: the first close stands
    assert sorted(path.name for path in tmp_path.iterdir()) == [SALES_CLOSED_FILENAME]  # no partial file left


def test_the_command_without_a_server_records_the_close(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / LOCK_FILENAME).write_text(f"{os.getpid()}\n")  # a stale pid: ours, and we are no lottery server
    with caplog.at_level(logging.INFO):
        assert close_sales_command(tmp_path) == 0
        assert close_sales_command(tmp_path) == 0
    lines = [record.getMessage() for record in caplog.records]
    assert "new: True | server_pid: none" in lines[0] and "new: False | server_pid: none" in lines[1]
    assert read_close(tmp_path) is not None and read_close(tmp_path)[0] == "command"  # type: ignore[index]


def test_the_command_fails_where_it_cannot_write(tmp_path: Path) -> None:
    assert close_sales_command(tmp_path / "missing") == 1


def test_no_signal_without_a_readable_pid(tmp_path: Path) -> None:
    assert signal_server(tmp_path) is None
    (tmp_path / LOCK_FILENAME).write_text("")  # a server starting: it reads the record once started
    assert signal_server(tmp_path) is None


def test_a_new_contest_archives_the_close(tmp_path: Path) -> None:
    load_or_create_contest(tmp_path, durable=False)
    record_close(tmp_path, "command")
    target = archive_contest(tmp_path)
    assert target is not None and (target / SALES_CLOSED_FILENAME).exists()
    assert read_close(tmp_path) is None  # the next contest's sales are open


def test_the_first_record_wins_a_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The command and the server's deadline may both find no record and both write: the first stays.
    (tmp_path / SALES_CLOSED_FILENAME).write_text("command 2026-12-24T21:00:00.000+00:00\n")
    looks = iter([None])  # the deadline's look for a record came before the command wrote it
    monkeypatch.setattr(sales, "read_close", lambda directory: next(looks, None) or read_close(directory))
    record, new = record_close(tmp_path, "deadline")
    assert (record, new) == (("command", "2026-12-24T21:00:00.000+00:00"), False)
    assert [path.name for path in tmp_path.iterdir()] == [SALES_CLOSED_FILENAME]  # no partial file left
