# The sales close. Its record, SALES_CLOSED_FILENAME in the data directory
# ("<by> <ISO time>"), is written durably before the close takes effect and
# never rewritten: a second close is a no-op (--new-contest archives it).
# `close_sales_command` (python -m lottery_gevent close-sales) writes it, with or
# without a server, then sends SIGUSR1 to the server whose pid the lock file
# holds, if it runs. `SalesWatch` runs in the server: it reads the record at
# start and on SIGUSR1, and closes at the deadline (SERVER_SALES_CLOSE_AT).
# Never: opens sales again, or touches a connection.
from __future__ import annotations

import datetime
import logging
import os
import signal
from pathlib import Path
from typing import Any

import gevent

from lottery_gevent.contest import LOCK_FILENAME, fsync_dir, write_durably
from lottery_gevent.lottery import Lottery
from shared.logs import Result, log_action

logger = logging.getLogger(__name__)

SALES_CLOSED_FILENAME = "sales-closed"


def read_close(directory: Path) -> tuple[str, str] | None:
    """(who closed sales, when), or None while sales are open."""
    try:
        by, _, at = (directory / SALES_CLOSED_FILENAME).read_text(encoding="ascii").strip().partition(" ")
    except FileNotFoundError:
        return None
    return by, at


def record_close(directory: Path, by: str) -> tuple[tuple[str, str], bool]:
    """Write the close record unless one exists (OSError if it cannot); (the record, whether it is new)."""
    existing = read_close(directory)
    if existing is not None:
        return existing, False
    at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    path = directory / SALES_CLOSED_FILENAME
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    write_durably(partial, f"{by} {at}\n")
    try:  # a link, not a rename: the command and the server's deadline may race, and the first record wins
        os.link(partial, path)
    except FileExistsError:
        return read_close(directory) or (by, at), False
    finally:
        partial.unlink()
    fsync_dir(directory)
    return (by, at), True


def signal_server(directory: Path) -> int | None:
    """SIGUSR1 to the server whose pid the lock file holds, if it runs; its pid (None: no server runs).

    The lock is not tried (that could make a server starting now fail); a pid that is stale is
    either gone or no lottery server, and a lottery server of another directory finds no record.
    """
    try:
        pid = int((directory / LOCK_FILENAME).read_text(encoding="ascii").strip())
        if b"lottery_gevent" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
        os.kill(pid, signal.SIGUSR1)
    except (OSError, ValueError):
        return None
    return pid


def close_sales_command(directory: Path) -> int:
    """Record the close (idempotent), then wake the server if one runs; the exit code."""
    try:
        (by, at), new = record_close(directory, "command")
    except OSError as exc:
        log_action(logger, logging.ERROR, "close_sales", Result.FAIL, data_dir=directory, error=exc)
        return 1
    pid = signal_server(directory)
    log_action(logger, logging.INFO, "close_sales", Result.SUCCESS, by=by, at=at, new=new, server_pid=pid or "none")
    return 0


class SalesWatch:
    """In the server: applies a close recorded by the command (at start, on SIGUSR1) or due at `close_at`."""

    def __init__(self, directory: Path, lottery: Lottery, close_at: datetime.datetime | None) -> None:
        self._directory = directory
        self._lottery = lottery
        self._close_at = close_at
        self._watchers: list[Any] = []

    def start(self) -> None:
        """Apply a close already recorded; else wait for the command and the deadline."""
        self._watchers.append(gevent.signal_handler(signal.SIGUSR1, self.apply))
        self.apply()
        if self._close_at is not None and self._lottery.sales_open:
            delay = (self._close_at - datetime.datetime.now(datetime.UTC)).total_seconds()
            self._watchers.append(gevent.spawn_later(max(0.0, delay), self.apply, "deadline"))

    def apply(self, by: str = "") -> None:
        """Apply the recorded close; with `by` (the deadline), record it first if none is (logged if it cannot)."""
        try:
            record = record_close(self._directory, by)[0] if by else read_close(self._directory)
        except OSError as exc:
            log_action(logger, logging.ERROR, "sales_close", Result.FAIL, by=by or "command", error=exc)
            return
        if record is not None:
            self._lottery.close_sales(*record)

    def stop(self) -> None:
        for watcher in self._watchers:
            watcher.kill(block=False) if isinstance(watcher, gevent.Greenlet) else watcher.cancel()
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # a late close-sales must not end the server mid-stop
