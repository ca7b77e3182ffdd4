"""Run the real server and clients as processes, and read their logs.

Tests never sleep to synchronise: they wait for a log line (`wait_for_line`) or
a process exit, always with a timeout. Every process started here is tracked,
and `kill_all` (called by an autouse fixture) makes sure none outlives its test.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ACTION_LINE = re.compile(r"action: (?P<body>.*)$")

_live: list[subprocess.Popen[str]] = []


def parse_action(line: str) -> dict[str, str] | None:
    """Parse an ``action: X | result: Y | key: value`` line into a dict (None if not one)."""
    match = ACTION_LINE.search(line)
    if match is None:
        return None
    fields: dict[str, str] = {}
    for part in ("action: " + match.group("body")).split(" | "):
        key, _, value = part.partition(": ")
        fields[key] = value
    return fields


def actions(lines: list[str], name: str | None = None) -> list[dict[str, str]]:
    """The parsed action lines, optionally only those of action `name`."""
    parsed = [fields for fields in map(parse_action, lines) if fields is not None]
    return [fields for fields in parsed if name is None or fields["action"] == name]


class ManagedProcess:
    """A child process whose combined stdout/stderr is collected line by line."""

    def __init__(self, argv: list[str], cwd: Path, env: Mapping[str, str]) -> None:
        self.cwd = cwd
        full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **env}
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
        )
        _live.append(self.process)
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

    def wait_for_line(self, predicate: Callable[[str], bool] | str, timeout: float = 10.0) -> str:
        """Block until a log line matches (a regex string, or a predicate); return it.

        Raises:
            TimeoutError: no such line within `timeout`, or the process's output ended.
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

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for exit and for all output to be read; return the exit code."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)

    def actions(self, name: str | None = None) -> list[dict[str, str]]:
        return actions(self.lines, name)

    def output(self) -> str:
        return "\n".join(self.lines)


class ServerProcess(ManagedProcess):
    """``python -m lottery_gevent`` in `workdir` (where bets.csv is written), on a free port.

    Args:
        workdir: the server's working directory.
        agencies: SERVER_AGENCIES.
        env: more environment overrides (any config key).
        args: extra command-line arguments.
    """

    def __init__(
        self,
        workdir: Path,
        agencies: int = 5,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        port: int = 0,
    ) -> None:
        settings = {
            "SERVER_IP": "127.0.0.1",
            "SERVER_PORT": str(port),
            "SERVER_AGENCIES": str(agencies),
            "LOGGING_LEVEL": "INFO",
            **(env or {}),
        }
        super().__init__([sys.executable, "-m", "lottery_gevent", *(args or [])], workdir, settings)
        self.port = 0

    def wait_listening(self, timeout: float = 15.0) -> ServerProcess:
        line = self.wait_for_line(r"action: listen \| result: success", timeout)
        fields = parse_action(line)
        assert fields is not None
        self.port = int(fields["port"])
        return self

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait for the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def stored_rows(self) -> list[list[str]]:
        """The rows of bets.csv: agency, first name, last name, document, birthdate, number."""
        path = self.cwd / "bets.csv"
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8") as file:
            return list(csv.reader(file))


class ClientProcess(ManagedProcess):
    """``python -m client_gevent`` as agency `agency`, talking to 127.0.0.1:`port`."""

    def __init__(
        self,
        workdir: Path,
        agency: int,
        port: int,
        bets_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        settings = {
            "CLI_ID": str(agency),
            "CLI_SERVER_ADDRESS": f"127.0.0.1:{port}",
            "CLI_LOG_LEVEL": "INFO",
            **({"CLI_BETS_FILE": str(bets_file)} if bets_file is not None else {}),
            **(env or {}),
        }
        super().__init__([sys.executable, "-m", "client_gevent", *(args or [])], workdir, settings)


def winners_reported(client: ManagedProcess) -> int | None:
    """The client's `cant_ganadores`, or None if it logged none."""
    found = client.actions("consulta_ganadores")
    successes = [fields for fields in found if fields["result"] == "success"]
    return int(successes[-1]["cant_ganadores"]) if successes else None


def kill_all() -> list[int]:
    """Kill every process still running; return the pids that had to be killed."""
    leaked = []
    for process in _live:
        if process.poll() is None:
            leaked.append(process.pid)
            process.kill()
            process.wait(10)
    _live.clear()
    return leaked
