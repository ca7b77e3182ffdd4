"""Where the server spends its time, in extra runs that are never timed.

py-spy (on PATH or beside this interpreter) attaches to the server once it listens: with --gil it
samples the thread holding the GIL (where the Python CPU goes); without, every thread not sleeping,
so fsyncs on the thread pool show too. Two durable ingests (one per view) and one idle run are
profiled; cProfile, the fallback, runs one ingest's server under ``python -m cProfile`` (the main
thread only; its overhead inflates call-heavy code). Guarantees: a profile is data (the top
functions by own and by total share, and the profiled run's figures); the profiler is always reaped.
"""

from __future__ import annotations

import collections
import pstats
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import fleets
from bench.data import Dataset
from bench.ingest import ingest_once
from bench.runs import Record
from tests.support.processes import REPO_ROOT, LoggedProcess, ServerProcess

PYSPY = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
PYSPY_RATE = 500
TOP = 15
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
GIL = "py-spy `--gil`: samples of whichever server thread holds the GIL, i.e. where its Python CPU goes"
BUSY = "py-spy, every server thread that is not sleeping (running, runnable, or in a disk wait such as fsync)"
CPROFILE = "cProfile, the server's main thread only (every greenlet); shares are of own time"
#: A hot spot: function, file, own share, total share (None: unknown).
Spot = tuple[str, str, float, float | None]


def _short(path: str) -> str:
    """A file as its package path (site-packages, stdlib), else relative to the repository; "~": a built-in."""
    if marker := next((marker for marker in ("site-packages/", "python3.11/") if marker in path), None):
        return path.split(marker, 1)[1]
    if Path(path).is_absolute() and Path(path).is_relative_to(REPO_ROOT):
        return str(Path(path).relative_to(REPO_ROOT))
    return "(built-in)" if path == "~" else path


def parse_pyspy_raw(text: str) -> tuple[int, float | None, list[Spot]]:
    """py-spy's raw (collapsed stacks) output by function: samples, the main thread's share, every spot."""
    own: collections.Counter[tuple[str, str]] = collections.Counter()
    total: collections.Counter[tuple[str, str]] = collections.Counter()
    samples = main = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, (thread, *frames) = int(count_text), stack.split(";")
        samples += count
        main += count if thread.endswith(": MainThread") else 0
        keys = [(m["function"], _short(m["file"])) if (m := _FRAME.match(f)) else (f, "") for f in frames]
        own.update({keys[-1]: count} if keys else {})
        total.update(dict.fromkeys(set(keys), count))
    ranked = sorted(total, key=lambda key: (own[key], total[key]), reverse=True)
    spots: list[Spot] = [(*key, own[key] / samples, total[key] / samples) for key in ranked]
    return samples, main / samples if samples else None, spots


def _record(view: str, samples: int, main: float | None, spots: list[Spot], run: Record, what: str) -> Record:
    project = [spot for spot in spots if spot[1].startswith(("lottery_gevent/", "shared/"))]
    by_total = sorted(project, key=lambda spot: spot[3] or 0.0, reverse=True)[:TOP] if view == GIL else []
    share = f"; main thread (event loop and every greenlet): {main:.0%}" if main is not None else ""
    summary = f"{samples:,} samples{share}. Profiled: {what}; correct: {'yes' if run['ok'] else '**no**'}."
    by_own = [] if what.startswith("idle") else spots[:TOP]
    title = f"{view}; {what.split(':')[0]}"
    return {"title": title, "summary": summary, "ok": run["ok"], "by_own": by_own, "by_total": by_total}


Workload = Callable[[Callable[[ServerProcess], None]], Record]


def _pyspy(workload: Workload, view: str, what: Callable[[Record], str]) -> Record:
    """One py-spy recording of the server during `workload(on_listening)`."""
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        out, spies = Path(tmp) / "profile.out", []

        def attach(server: ServerProcess) -> None:
            argv = [str(PYSPY), "record", "--pid", str(server.pid), "--rate", str(PYSPY_RATE), "--format", "raw"]
            argv += ["--function", "--threads", "--nonblocking", "--output", str(out)] + ["--gil"] * (view == GIL)
            spies.append(LoggedProcess(argv, Path(tmp), {}))
            spies[0].wait_for_line(lambda line: "Sampling process" in line, 30.0)

        try:
            run = workload(attach)
            spies[0].wait(30.0)
            if not out.exists():
                raise RuntimeError("py-spy wrote nothing:\n" + "\n".join(spies[0].lines[-10:]))
            return _record(view, *parse_pyspy_raw(out.read_text(encoding="utf-8")), run, what(run))
        finally:
            for spy in spies:
                spy.kill()


def profile(dataset: Dataset, idle_agencies: int, profiler: str, tls_dir: Path) -> list[Record]:
    """The profiles (py-spy when `profiler` is auto and it is installed, else cProfile).

    Raises:
        RuntimeError: the profiler produced nothing.
    """
    ingest: Callable[[Record], str] = lambda run: f"one durable ingest: {run['wall_s']:.3f} s wall"  # noqa: E731
    if profiler == "cprofile" or (profiler == "auto" and not PYSPY):
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
            run = ingest_once(dataset, "durable", tls_dir, ("-m", "cProfile", "-o", f"{tmp}/profile.out"))
            entries = pstats.Stats(f"{tmp}/profile.out").stats  # type: ignore[attr-defined]
        own, calls = sum(entry[2] for entry in entries.values()) or 1.0, sum(entry[1] for entry in entries.values())
        ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
        spots: list[Spot] = [(name, _short(file), entry[2] / own, None) for (file, _, name), entry in ranked]
        return [_record(CPROFILE, calls, 1.0, spots, run, ingest(run))]
    on_ingest = lambda attach: ingest_once(dataset, "durable", tls_dir, on_listening=attach)  # noqa: E731
    on_idle = lambda attach: fleets.idle_once(idle_agencies, None, attach)  # noqa: E731
    idle: Callable[[Record], str] = lambda run: f"idle: {idle_agencies:,} agencies, set-up {run['setup_s']:.2f} s"  # noqa: E731
    return [_pyspy(on_ingest, GIL, ingest), _pyspy(on_ingest, BUSY, ingest), _pyspy(on_idle, GIL, idle)]
