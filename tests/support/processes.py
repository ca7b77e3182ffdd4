# Contract: run a project program as a child process and read its log as it
# comes. The tests and the benchmarks (bench/) both use these classes, so a
# server is started, awaited and read in one way everywhere.
#
#   - A reader thread collects the child's stdout and stderr line by line;
#     callers wait for a log line (or a number of them) with a timeout, never
#     by sleeping or polling: waits block on a condition the reader notifies.
#   - A wait can also give up when other processes have all ended
#     (`wait_for_line_or_ended`): their readers notify the waiter at EOF.
#   - Every child started is tracked; `kill_all` (an autouse fixture calls it)
#     makes sure none outlives its test. `kill()` always reaps the child and
#     closes its pipes.
from __future__ import annotations

import collections
import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "REPO_ROOT",
    "STOP_TIMEOUT_S",
    "ClientProcess",
    "LoggedProcess",
    "ServerProcess",
    "actions",
    "child_env",
    "kill_all",
    "parse_action",
    "winners_reported",
]

#: The repository root: children import the project from here.
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
#: How long a child gets to exit after SIGTERM, or to be reaped after SIGKILL.
STOP_TIMEOUT_S = 15.0

_ACTION = re.compile(r"action: (?P<body>.*)$")

LinePredicate = Callable[[str], bool] | str

#: Every child started and not yet found dead, for `kill_all`.
_live: list[LoggedProcess] = []
_live_lock = threading.Lock()


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


def python_m(module: str, constants: Mapping[str, object] | None, args: Sequence[str] | None) -> list[str]:
    """The argv after the interpreter that runs `module`, with `constants` set first (tests/support/launch.py)."""
    if not constants:
        return ["-m", module, *(args or [])]
    return ["-m", "tests.support.launch", module, json.dumps(dict(constants)), *(args or [])]


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
        new_session: start the child in a session (and process group) of its own,
            so that `signal_group` can signal it as a terminal's Ctrl-C would.
    """

    def __init__(
        self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], *, stdin: bool = False, new_session: bool = False
    ) -> None:
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
            start_new_session=new_session,
        )
        with _live_lock:
            _live[:] = [child for child in _live if child.process.poll() is None]
            _live.append(self)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        #: Conditions of other processes' waits that want to hear of our EOF.
        self._listeners: list[threading.Condition] = []
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
            listeners = list(self._listeners)
        for listener in listeners:  # outside our lock: a waiter holds its own while it reads `ended`
            with listener:
                listener.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ended(self) -> bool:
        """True once the child's output has ended (it exited, or closed stdout and stderr)."""
        return self._eof

    def _wait(self, predicate: LinePredicate, timeout: float, give_up: Callable[[], bool]) -> str | None:
        test = (lambda line: re.search(predicate, line) is not None) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if test(line):
                        return line
                seen = len(self.lines)
                if give_up():
                    return None
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    tail = "\n".join(self.lines[-20:])
                    raise TimeoutError(f"no line matching {predicate!r} (eof={self._eof}); last lines:\n{tail}")
                self._changed.wait(remaining)

    def wait_for_line(self, predicate: LinePredicate, timeout: float = 10.0) -> str:
        """Block until a log line matches (a regex string, or a predicate); return it.

        Each line is tested once per call, in order, so a stateful predicate may count.

        Raises:
            TimeoutError: no such line within `timeout`, or the output ended first.
        """
        line = self._wait(predicate, timeout, lambda: False)
        assert line is not None
        return line

    def wait_for_line_or_ended(
        self, predicate: LinePredicate, others: Sequence[LoggedProcess], timeout: float = 10.0
    ) -> str | None:
        """Like `wait_for_line`, but return None as soon as every one of `others` has ended.

        Raises:
            TimeoutError: neither happened within `timeout`, or our own output ended first.
        """
        for other in others:
            with other._changed:
                other._listeners.append(self._changed)
        try:
            return self._wait(predicate, timeout, lambda: all(other.ended for other in others))
        finally:
            for other in others:
                with other._changed:
                    other._listeners.remove(self._changed)

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

    def signal_group(self, signum: int) -> None:
        """Signal the child's whole process group (it must have been started with new_session=True)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)

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


class ServerProcess(LoggedProcess):
    """``python -m lottery_gevent`` in `workdir` (where bets.csv is written), on 127.0.0.1.

    Args:
        workdir: the server's working directory.
        agencies: SERVER_AGENCIES.
        env: more environment overrides (any config key).
        args: extra command-line arguments.
        port: SERVER_PORT (0: any free port; `wait_listening` learns which).
        interpreter_args: put before ``-m lottery_gevent`` (e.g. ``-m cProfile -o OUT``).
        constants: module constants to set before the main runs, such as
            ``{"lottery_gevent.lottery.WAIT_LOG_S": 0.2}``.
    """

    def __init__(
        self,
        workdir: Path,
        agencies: int = 5,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] | None = None,
        port: int = 0,
        interpreter_args: Sequence[str] = (),
        constants: Mapping[str, object] | None = None,
    ) -> None:
        settings = {
            "SERVER_IP": "127.0.0.1",
            "SERVER_PORT": str(port),
            "SERVER_AGENCIES": str(agencies),
            "LOGGING_LEVEL": "INFO",
            **(env or {}),
        }
        argv = [sys.executable, *interpreter_args, *python_m("lottery_gevent", constants, args)]
        super().__init__(argv, workdir, settings)
        self.port = 0

    def wait_listening(self, timeout: float = 15.0) -> ServerProcess:
        """Wait for ``action: listen | result: success`` and remember its port in `port`."""
        self.port = int(self.wait_for_action("listen", timeout)["port"])
        return self

    def stored_rows(self) -> list[list[str]]:
        """The rows of bets.csv: agency, first name, last name, document, birthdate, number."""
        path = self.cwd / "bets.csv"
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8") as file:
            return list(csv.reader(file))

    def stored_counts(self) -> collections.Counter[int]:
        """Rows in bets.csv per agency."""
        return collections.Counter(int(row[0]) for row in self.stored_rows())


class ClientProcess(LoggedProcess):
    """``python -m client_gevent`` as agency `agency`, talking to 127.0.0.1:`port` (`constants`: as ServerProcess)."""

    def __init__(
        self,
        workdir: Path,
        agency: int,
        port: int,
        bets_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] | None = None,
        constants: Mapping[str, object] | None = None,
    ) -> None:
        settings = {
            "CLI_ID": str(agency),
            "CLI_SERVER_ADDRESS": f"127.0.0.1:{port}",
            "CLI_LOG_LEVEL": "INFO",
            **({"CLI_BETS_FILE": str(bets_file)} if bets_file is not None else {}),
            **(env or {}),
        }
        super().__init__([sys.executable, *python_m("client_gevent", constants, args)], workdir, settings)


def winners_reported(client: LoggedProcess) -> int | None:
    """The client's `cant_ganadores`, or None if it logged none."""
    found = client.actions("consulta_ganadores")
    successes = [fields for fields in found if fields["result"] == "success"]
    return int(successes[-1]["cant_ganadores"]) if successes else None


def kill_all() -> list[int]:
    """Kill every child still running, reap all of them; return the pids that had to be killed."""
    with _live_lock:
        children = list(_live)
        _live.clear()
    leaked = [child.pid for child in children if child.process.poll() is None]
    for child in children:
        child.kill()
    return leaked
