# Strategy: start the real server (and other helpers) as child processes and
# read what the kernel knows about them, so every figure is attributed to the
# process that spent it:
#
#   - CPU seconds: utime + stime from /proc/<pid>/stat (all of the process's
#     threads, so the fsyncs and the draw on gevent's thread pool count too);
#   - memory: VmRSS (now) and VmHWM (peak) from /proc/<pid>/status.
#
# Both are read while the process is still alive, right after the measured
# work and before it is told to stop, so shutdown is never part of a figure.
# A child's output is collected by a reader thread; callers wait for a log line
# with a timeout, never by sleeping. Every child is killed in `close()`.
from __future__ import annotations

import collections
import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

#: The repository root: children import the project from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: How long a child gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 15.0

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_ACTION = re.compile(r"action: (?P<body>.*)$")


def parse_action(line: str) -> dict[str, str] | None:
    """Split an ``action: X | result: Y | k: v`` log line into fields (None if not one)."""
    match = _ACTION.search(line)
    if match is None:
        return None
    fields: dict[str, str] = {}
    for part in ("action: " + match.group("body")).split(" | "):
        key, _, value = part.partition(": ")
        fields[key] = value
    return fields


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for a project child: ours, the repo on PYTHONPATH, unbuffered output."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **extra}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by every thread of a live process."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        # The command name (field 2) may hold spaces; fields after its ')' are fixed.
        fields = file.read().rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def memory_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM, ...) of a live process, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/{pid}/status")


class Child:
    """A child process whose stdout+stderr lines are collected by a reader thread.

    Args:
        argv: the command.
        cwd: its working directory.
        env: environment overrides (on top of `child_env`).
        stdin: give the child a pipe on stdin (see `send_line`).
    """

    def __init__(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], *, stdin: bool = False) -> None:
        self.process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=child_env(env),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        stream: IO[str] | None = self.process.stdout
        assert stream is not None
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for(self, test: Callable[[str], bool], timeout: float, what: str = "a line") -> str:
        """Block until an output line passes `test`; return it.

        Raises:
            TimeoutError: no such line within `timeout`, or the output ended first.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if test(line):
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    tail = "\n".join(self.lines[-15:])
                    raise TimeoutError(f"{what} never came (eof={self._eof}); last output:\n{tail}")
                self._changed.wait(remaining)

    def wait_for_action(self, action: str, timeout: float, result: str = "success") -> dict[str, str]:
        """Wait for an ``action: <action> | result: <result>`` line; return its fields."""

        def matches(line: str) -> bool:
            fields = parse_action(line)
            return fields is not None and fields.get("action") == action and fields.get("result") == result

        fields = parse_action(self.wait_for(matches, timeout, f"'action: {action} | result: {result}'"))
        assert fields is not None
        return fields

    def count_actions(self, action: str, result: str = "success") -> int:
        with self._changed:
            lines = list(self.lines)
        return sum(
            1
            for fields in map(parse_action, lines)
            if fields is not None and fields.get("action") == action and fields.get("result") == result
        )

    def send_line(self, text: str) -> None:
        """Write one line to the child's stdin (it must have been started with stdin=True)."""
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def wait(self, timeout: float) -> int:
        """Wait for the exit and the end of its output; return the exit code."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def close(self) -> None:
        """Kill the child if it still runs, and reap it. Safe to call twice."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_TIMEOUT_S)
        self._reader.join(STOP_TIMEOUT_S)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class ServerChild(Child):
    """``python -m lottery_gevent`` on 127.0.0.1, any free port, in `workdir`.

    Args:
        workdir: its working directory (bets.csv is written there).
        env: config overrides (SERVER_AGENCIES, SERVER_FSYNC, ...).
        interpreter_args: put before ``-m lottery_gevent`` (e.g. ``-m cProfile -o OUT``).
    """

    def __init__(self, workdir: Path, env: Mapping[str, str], interpreter_args: Sequence[str] = ()) -> None:
        settings = {"SERVER_IP": "127.0.0.1", "SERVER_PORT": "0", "LOGGING_LEVEL": "INFO", **env}
        super().__init__([sys.executable, *interpreter_args, "-m", "lottery_gevent"], workdir, settings)
        self.workdir = workdir
        self.port = 0

    def wait_listening(self, timeout: float = 30.0) -> int:
        """Wait for ``action: listen | result: success``; return (and remember) the port."""
        self.port = int(self.wait_for_action("listen", timeout)["port"])
        return self.port

    def stored_rows(self) -> collections.Counter[int]:
        """Rows in the server's bets.csv, per agency."""
        rows: collections.Counter[int] = collections.Counter()
        path = self.workdir / "bets.csv"
        if path.exists():
            with open(path, newline="", encoding="utf-8") as file:
                rows.update(int(row[0]) for row in csv.reader(file))
        return rows


def run_python(
    module: str, args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, *, stdin: bool = False
) -> Child:
    """Start ``python -m module args...`` as a Child."""
    return Child([sys.executable, "-m", module, *args], cwd, env or {}, stdin=stdin)
