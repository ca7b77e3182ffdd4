# Strategy: run a project program as a child process and read its log as it
# comes. Tests (tests/harness.py) and benchmarks (bench/_procs.py) both build on
# this one class. A reader thread collects the child's stdout and stderr line
# by line; callers wait for a log line (or a number of them) with a timeout,
# never by sleeping. `kill()` always reaps the child and closes its pipes.
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: The repository root: children import the project from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: How long a child gets to exit after SIGTERM, or to be reaped after SIGKILL.
STOP_TIMEOUT_S = 15.0

_ACTION = re.compile(r"action: (?P<body>.*)$")

LinePredicate = Callable[[str], bool] | str


def parse_action(line: str) -> dict[str, str] | None:
    """Split an ``action: NAME | result: success|fail|in_progress | key: value`` line into fields (None if not one)."""
    match = _ACTION.search(line)
    if match is None:
        return None
    fields: dict[str, str] = {}
    for part in ("action: " + match.group("body")).split(" | "):
        key, _, value = part.partition(": ")
        fields[key] = value
    return fields


def actions(lines: Sequence[str], name: str | None = None) -> list[dict[str, str]]:
    """The parsed action lines, optionally only those of action `name`."""
    parsed = [fields for fields in map(parse_action, lines) if fields is not None]
    return [fields for fields in parsed if name is None or fields["action"] == name]


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """Our environment, with the repository importable, unbuffered output, and `extra` on top."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **extra}


class LoggedProcess:
    """A child process whose combined stdout/stderr is collected line by line.

    Args:
        argv: the command.
        cwd: its working directory.
        env: environment overrides (on top of `child_env`).
        stdin: give the child a pipe on stdin (see `send_line`).
    """

    def __init__(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], *, stdin: bool = False) -> None:
        self.cwd = cwd
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

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for_line(self, predicate: LinePredicate, timeout: float = 10.0) -> str:
        """Block until a log line matches (a regex string, or a predicate); return it.

        Each line is tested once per call, in order, so a stateful predicate may count.

        Raises:
            TimeoutError: no such line within `timeout`, or the output ended first.
        """
        test = (lambda line: re.search(predicate, line) is not None) if isinstance(predicate, str) else predicate
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
                    tail = "\n".join(self.lines[-20:])
                    raise TimeoutError(f"no line matching {predicate!r} (eof={self._eof}); last lines:\n{tail}")
                self._changed.wait(remaining)

    def wait_for_count(self, pattern: str, count: int, timeout: float = 10.0) -> str:
        """Block until `count` log lines match the regex `pattern`; return the last of them."""
        matches = 0

        def enough(line: str) -> bool:
            nonlocal matches
            matches += re.search(pattern, line) is not None
            return matches >= count

        return self.wait_for_line(enough, timeout)

    def wait_for_action(self, action: str, timeout: float = 10.0, outcome: str = "success") -> dict[str, str]:
        """Wait for an `action` line whose result is `outcome`; return its fields."""
        fields = parse_action(self.wait_for_line(rf"action: {re.escape(action)} \| result: {outcome}\b", timeout))
        assert fields is not None
        return fields

    def actions(self, name: str | None = None) -> list[dict[str, str]]:
        with self._changed:
            return actions(list(self.lines), name)

    def output(self) -> str:
        return "\n".join(self.lines)

    def send_line(self, text: str) -> None:
        """Write one line to the child's stdin (it must have been started with stdin=True)."""
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the exit and for all output to be read; return the exit code."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then wait for the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """Kill the child if it still runs, reap it, close its pipes. Safe to call twice."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_TIMEOUT_S)
        self._reader.join(STOP_TIMEOUT_S)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
