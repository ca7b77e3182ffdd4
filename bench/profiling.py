# Strategy: where the server spends its time, in extra runs that are never
# timed (``python3 -m bench --only profile`` runs them alone).
#
# py-spy (when installed) attaches to the running server once it listens. With
# --gil it samples only the thread holding the GIL (where the Python CPU goes);
# without it, every thread that is not sleeping, so the fsyncs on gevent's thread
# pool show too. Two durable ingests are profiled (one per view), and one idle
# run with --gil. cProfile (the fallback, from the standard library) runs the
# server under ``python -m cProfile`` and sees the main thread only, where all
# greenlets run; its overhead inflates call-heavy code. A profile is data: the
# top functions by own and by total share, and the profiled run's own figures.
from __future__ import annotations

import collections
import functools
import pstats
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import fleets
from bench.data import Dataset
from bench.ingest import VARIANTS as INGEST_VARIANTS
from bench.ingest import ingest_once
from bench.spec import Record
from tests.support.processes import REPO_ROOT, LoggedProcess, ServerProcess

#: Samples per second for py-spy.
PYSPY_RATE = 500
#: Functions kept per table.
TOP = 15
_PYSPY_READY = "Sampling process"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
#: A hot spot: function, file, own share, total share (None if unknown).
Spot = tuple[str, str, float, float | None]


def _short_file(path: str) -> str:
    """A file as the report shows it: relative to the repo, or the stdlib/site-package tail."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except (ValueError, OSError):
        pass
    for marker in ("site-packages/", "python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def parse_pyspy_raw(text: str) -> tuple[int, float | None, list[Spot]]:
    """Aggregate py-spy's raw (collapsed stacks) output by function.

    Returns:
        samples, the main thread's share of them, every function by own share.
    """
    own: collections.Counter[tuple[str, str]] = collections.Counter()
    total: collections.Counter[tuple[str, str]] = collections.Counter()
    samples = main = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        samples += count
        main += count if thread.endswith(": MainThread") else 0
        keys = []
        for frame in frames:
            match = _FRAME.match(frame)
            keys.append((match["function"], _short_file(match["file"])) if match else (frame, ""))
        if keys:
            own[keys[-1]] += count
            total.update(dict.fromkeys(set(keys), count))
    if samples == 0:
        return 0, None, []
    ranked = sorted(total, key=lambda key: (own[key], total[key]), reverse=True)
    return samples, main / samples, [(*key, own[key] / samples, total[key] / samples) for key in ranked]


def parse_cprofile(path: Path) -> tuple[int, list[Spot]]:
    """Hot spots by own time from a cProfile dump (inclusive time is unreliable across greenlets)."""
    entries = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    own_time = sum(entry[2] for entry in entries.values()) or 1.0
    calls = sum(entry[1] for entry in entries.values())
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
    return calls, [
        (function, _short_file(file) if file != "~" else "(built-in)", entry[2] / own_time, None)
        for (file, _line, function), entry in ranked
    ]


def _profile(view: str, workload: str, samples: int, main: float | None, spots: list[Spot], run: Record) -> Record:
    project = [spot for spot in spots if spot[1].startswith(("lottery_gevent/", "shared/"))]
    by_total = sorted(project, key=lambda spot: spot[3] or 0.0, reverse=True)
    return {
        "view": view,
        "workload": workload,
        "samples": samples,
        "main_thread_share": main,
        "by_own": spots[:TOP],
        "by_total": by_total[:TOP] if spots and spots[0][3] is not None else [],
        "run": run,
    }


def _pyspy_pass(workload: Callable[..., Record], name: str, gil: bool) -> Record:
    """One py-spy recording of the server during `workload(on_listening=...)`.

    Raises:
        RuntimeError: py-spy wrote nothing.
    """
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        out = Path(tmp) / "profile.out"
        spies: list[LoggedProcess] = []

        def attach(server: ServerProcess) -> None:
            argv = ["py-spy", "record", "--pid", str(server.pid), "--rate", str(PYSPY_RATE), "--format", "raw"]
            argv += ["--function", "--threads", "--nonblocking", "--output", str(out), *(["--gil"] if gil else [])]
            spies.append(LoggedProcess(argv, Path(tmp), {}))
            spies[0].wait_for_line(lambda line: _PYSPY_READY in line, 30.0)

        try:
            run = workload(on_listening=attach)
            spies[0].wait(30.0)
            if not out.exists():
                raise RuntimeError("py-spy wrote nothing:\n" + "\n".join(spies[0].lines[-10:]))
            samples, main, spots = parse_pyspy_raw(out.read_text(encoding="utf-8"))
        finally:
            for spy in spies:
                spy.kill()
    return _profile("py-spy --gil" if gil else "py-spy", name, samples, main, spots, run)


def choose_profiler(requested: str) -> str:
    if requested == "auto":
        return "py-spy" if shutil.which("py-spy") else "cprofile"
    return requested


def profile(dataset: Dataset, idle_agencies: int | None, profiler: str = "auto") -> list[Record]:
    """The profiles: two durable ingests with py-spy (GIL, then every busy thread) and, if
    `idle_agencies`, one idle run; or one ingest under cProfile.

    Raises:
        RuntimeError: the profiler produced nothing.
    """
    durable = INGEST_VARIANTS[0]
    if choose_profiler(profiler) == "cprofile":
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
            out = Path(tmp) / "profile.out"
            run = ingest_once(dataset, durable, interpreter_args=["-m", "cProfile", "-o", str(out)])
            calls, spots = parse_cprofile(out)
        return [_profile("cprofile", "ingest", calls, 1.0, spots, run)]
    ingest = functools.partial(ingest_once, dataset, durable)
    profiles = [_pyspy_pass(ingest, "ingest", gil=True), _pyspy_pass(ingest, "ingest", gil=False)]
    if idle_agencies:
        idle = functools.partial(fleets.idle_once, idle_agencies, fleets.VARIANTS[0])
        profiles.append(_pyspy_pass(idle, "idle", gil=True))
    return profiles
