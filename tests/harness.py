"""Run the real server and clients as processes, and read their logs.

Tests never sleep to synchronise: they wait for a log line (`wait_for_line`) or
a process exit, always with a timeout. Every process started here is tracked,
and `kill_all` (called by an autouse fixture) makes sure none outlives its test.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tools.processes import REPO_ROOT, LoggedProcess, actions, parse_action

__all__ = ["REPO_ROOT", "ClientProcess", "ManagedProcess", "ServerProcess", "actions", "kill_all", "parse_action"]

_live: list[subprocess.Popen[str]] = []


class ManagedProcess(LoggedProcess):
    """A LoggedProcess that `kill_all` knows about, so no test can leak it."""

    def __init__(self, argv: list[str], cwd: Path, env: Mapping[str, str]) -> None:
        super().__init__(argv, cwd, env)
        _live.append(self.process)


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
        self.port = int(self.wait_for_action("listen", timeout)["port"])
        return self

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
