# Strategy: describe the machine a report was measured on, from the kernel's own
# files, so a figure is never quoted without its context (cores, CPU model,
# Python, the filesystem the benchmark wrote to, how loaded the machine was).
from __future__ import annotations

import os
import platform
import resource
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gevent


@dataclass(frozen=True)
class Machine:
    nproc: str
    cpu_count: int | None
    cpu_model: str
    python: str
    gevent: str
    kernel: str
    temp_dir: str
    temp_fs: str
    fd_hard_limit: int


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(len(os.sched_getaffinity(0)))


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding `path` (longest matching mount point)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as file:
            for line in file:
                _, mount_point, fs_type, *_ = line.split()
                inside = str(path) == mount_point or str(path).startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, kind = mount_point, fs_type
    except OSError:
        pass
    return kind


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def describe(base_dir: Path | None) -> Machine:
    temp = Path(base_dir or tempfile.gettempdir()).resolve()
    return Machine(
        nproc=_nproc(),
        cpu_count=os.cpu_count(),
        cpu_model=_cpu_model(),
        python=platform.python_version(),
        gevent=gevent.__version__,
        kernel=platform.release(),
        temp_dir=str(temp),
        temp_fs=_filesystem(temp),
        fd_hard_limit=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    )
