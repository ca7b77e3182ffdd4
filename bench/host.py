"""What the kernel and git know about a measurement: the machine, the commit, a child's CPU and memory.

Guarantees: every figure is read from /proc, getrlimit or git when asked for; a missing tool gives
"unknown", never an exception. Never changes the machine, except `raise_fd_limit`, which raises
this process's soft descriptor limit to its hard one (children inherit it).
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import gevent

from tests.support.processes import REPO_ROOT


def _first_line(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10, cwd=REPO_ROOT)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (done.stdout.strip().splitlines() or [""])[0]


def git_commit() -> dict[str, Any]:
    """The commit measured, and whether tracked files had uncommitted changes."""
    dirty = bool(_first_line("git", "status", "--porcelain", "--untracked-files=no"))
    return {"commit": _first_line("git", "rev-parse", "--short", "HEAD") or "unknown", "dirty": dirty}


def describe() -> dict[str, Any]:
    """The machine, as the page's Machine table shows it."""
    temp = Path(tempfile.gettempdir()).resolve()
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor() or "unknown",
        "python": platform.python_version(),
        "gevent": gevent.__version__,
        "kernel": platform.release(),
        "temp_dir": str(temp),
        "temp_fs": _first_line("findmnt", "--noheadings", "--output", "FSTYPE", "--target", str(temp)) or "unknown",
        "fd_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every thread of a live process (fsyncs on its thread pool included)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field of a live process (VmRSS: now, VmHWM: peak), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as file:
        return int(next(line.split()[1] for line in file if line.startswith(field + ":")))


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
