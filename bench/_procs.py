# Strategy: read what the kernel knows about a benchmark's child processes.
#
#   - CPU seconds: utime + stime from /proc/<pid>/stat (every thread, so the
#     fsyncs and the draw on gevent's thread pool count too);
#   - memory: VmRSS (now) and VmHWM (peak) from /proc/<pid>/status.
#
# Both are read while the server still runs, right after the measured work and
# before it is told to stop, so shutdown is never part of a figure.
from __future__ import annotations

import os
import resource

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by every thread of a live process."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        # The command name (field 2) may hold spaces; fields after its ')' are fixed.
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM, ...) of a live process, in KiB.

    Raises:
        KeyError: no such field.
    """
    with open(f"/proc/{pid}/status", encoding="ascii") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/{pid}/status")


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
