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
# Children are tools.processes.LoggedProcess (the tests' wrapper too): callers
# wait for a log line with a timeout, never by sleeping; `kill()` reaps them.
from __future__ import annotations

import collections
import csv
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import REPO_ROOT, STOP_TIMEOUT_S, LoggedProcess, child_env, parse_action

__all__ = [
    "REPO_ROOT",
    "STOP_TIMEOUT_S",
    "Child",
    "ServerChild",
    "child_env",
    "cpu_seconds",
    "memory_kib",
    "parse_action",
    "run_python",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: A benchmark child: the same process wrapper the tests use.
Child = LoggedProcess


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


@dataclass(frozen=True)
class LoadOutcome:
    """What a load-generator run left: its JSON report and the server's figures."""

    report: dict[str, Any]
    server_cpu_s: float
    server_peak_rss_kib: int
    server_code: int
    stored_rows: collections.Counter[int]


def finish_load(server: ServerChild, loadgen: Child, report: Path, timeout: float) -> LoadOutcome:
    """Wait for the load generator, read the server's CPU and peak RSS while it still runs,
    stop it, and read the generator's report.

    Raises:
        RuntimeError: the load generator failed.
    """
    loadgen_code = loadgen.wait(timeout + 30)
    cpu = cpu_seconds(server.pid)
    peak = memory_kib(server.pid, "VmHWM")
    server_code = server.stop()
    rows = server.stored_rows()
    if loadgen_code != 0:
        raise RuntimeError("load generator failed:\n" + "\n".join(loadgen.lines[-20:]))
    return LoadOutcome(json.loads(report.read_text(encoding="utf-8")), cpu, peak, server_code, rows)
