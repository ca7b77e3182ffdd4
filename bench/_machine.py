# Strategy: describe the machine and the code a result was measured on, from
# the kernel's own files and git, so a figure is never quoted without its
# context (cores, CPU model, Python, the filesystem the benchmark wrote to, how
# loaded the machine was, which commit ran).
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


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10, cwd=REPO_ROOT)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (result.stdout.strip().splitlines() or [""])[0]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> dict[str, Any]:
    """The commit being measured, and whether the tree had uncommitted changes."""
    return {
        "commit": _first_line(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
        "dirty": bool(_first_line(["git", "status", "--porcelain", "--untracked-files=no"])),
    }


def describe() -> dict[str, Any]:
    temp = Path(tempfile.gettempdir()).resolve()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "gevent": gevent.__version__,
        "kernel": platform.release(),
        "temp_dir": str(temp),
        "temp_fs": _first_line(["findmnt", "--noheadings", "--output", "FSTYPE", "--target", str(temp)]) or "unknown",
        "fd_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }
