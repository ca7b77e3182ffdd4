"""Profile the server during a durable ingest of the ingest benchmark's data.

    python -m bench.profile_ingest [--profiler auto|py-spy|cprofile] [--top N]

py-spy (when installed) attaches to the running server once it listens, in two
passes of one ingest each: with --gil it samples only the thread holding the
GIL, which shows where the Python CPU goes; without it, it samples every thread
that is not sleeping, so the fsyncs on gevent's thread pool show too. cProfile
(the fallback, from the standard library) runs the server under ``python -m
cProfile`` and sees the main thread only, where all greenlets run; its overhead
inflates call-heavy code, so its shares are rougher. A profiled ingest is never
one of the timed runs.
"""

from __future__ import annotations

import argparse
import collections
import pstats
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import idle
from bench._procs import REPO_ROOT, Child, ServerChild
from bench.data import Dataset, ingest_dataset
from bench.idle import IdleRun
from bench.ingest import Ingest, ingest_once

#: Samples per second for py-spy.
PYSPY_RATE = 500
#: Where py-spy says it has attached.
_PYSPY_READY = "Sampling process"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class HotSpot:
    """One function's share of the server's busy samples (or of its profiled time)."""

    function: str
    file: str
    #: Share of samples with this function on top of the stack.
    self_share: float
    #: Share of samples with this function anywhere on the stack (NaN if unknown).
    total_share: float


@dataclass(frozen=True)
class Profile:
    tool: str
    samples: int
    #: Share of samples on the server's main thread (the event loop and every greenlet).
    main_thread_share: float
    #: Every function seen, most own samples first.
    spots: list[HotSpot]
    #: The profiled run: a durable ingest, or an idle-benchmark run.
    workload: Ingest | IdleRun

    @property
    def ok(self) -> bool:
        return self.workload.ok if isinstance(self.workload, Ingest) else self.workload.all_correct

    def by_self(self, top: int) -> list[HotSpot]:
        return self.spots[:top]

    def by_total(self, top: int) -> list[HotSpot]:
        """The project's own functions (server and shared code) by total share."""
        project = [spot for spot in self.spots if spot.file.startswith(("lottery_gevent/", "shared/"))]
        return sorted(project, key=lambda spot: spot.total_share, reverse=True)[:top]

    def share(self, *functions: str, total: bool = False) -> float:
        """Summed own (or total) share of the named functions."""
        return sum(spot.total_share if total else spot.self_share for spot in self.spots if spot.function in functions)


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


def _split_frame(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    return match.group("function"), _short_file(match.group("file"))


def parse_pyspy_raw(text: str) -> tuple[int, float, list[HotSpot]]:
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
        if thread.endswith(": MainThread"):
            main += count
        if not frames:
            continue
        keys = [_split_frame(frame) for frame in frames]
        own[keys[-1]] += count
        for key in set(keys):
            total[key] += count
    if samples == 0:
        return 0, float("nan"), []
    ranked = sorted(total, key=lambda key: (own[key], total[key]), reverse=True)
    return (
        samples,
        main / samples,
        [HotSpot(key[0], key[1], own[key] / samples, total[key] / samples) for key in ranked],
    )


def parse_cprofile(path: Path) -> tuple[int, list[HotSpot]]:
    """Hot spots by own time from a cProfile dump (inclusive time is unreliable across greenlets)."""
    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total_time = sum(entry[2] for entry in entries.values()) or 1.0
    calls = sum(entry[1] for entry in entries.values())
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
    spots = [
        HotSpot(function, _short_file(file) if file != "~" else "(built-in)", entry[2] / total_time, float("nan"))
        for (file, _line, function), entry in ranked
    ]
    return calls, spots


def choose_profiler(requested: str) -> str:
    if requested == "auto":
        return "py-spy" if shutil.which("py-spy") else "cprofile"
    return requested


def _pyspy_pass(dataset: Dataset | None, base_dir: Path | None, *, gil: bool, idle_agencies: int = 0) -> Profile:
    """One py-spy pass over a durable ingest of `dataset`, or over the idle benchmark with `idle_agencies`."""
    with tempfile.TemporaryDirectory(prefix="bench-profile-", dir=base_dir) as tmp:
        out = Path(tmp) / "profile.out"
        spies: list[Child] = []

        def attach(server: ServerChild) -> None:
            argv = ["py-spy", "record", "--pid", str(server.pid), "--rate", str(PYSPY_RATE), "--format", "raw"]
            argv += ["--function", "--threads", "--nonblocking", "--output", str(out), *(["--gil"] if gil else [])]
            spy = Child(argv, Path(tmp), {})
            spies.append(spy)
            spy.wait_for_line(lambda line: _PYSPY_READY in line, 30.0)

        try:
            workload: Ingest | IdleRun
            if dataset is not None:
                workload = ingest_once(dataset, base_dir, durable=True, on_listening=attach)
            else:
                workload = idle.run_once(idle_agencies, base_dir, on_listening=attach)
            spies[0].wait(30.0)
            if not out.exists():
                raise RuntimeError("py-spy wrote nothing:\n" + "\n".join(spies[0].lines[-10:]))
            samples, main_share, spots = parse_pyspy_raw(out.read_text(encoding="utf-8"))
        finally:
            for spy in spies:
                spy.kill()
    return Profile("py-spy --gil" if gil else "py-spy", samples, main_share, spots, workload)


def _cprofile_pass(dataset: Dataset, base_dir: Path | None) -> Profile:
    with tempfile.TemporaryDirectory(prefix="bench-profile-", dir=base_dir) as tmp:
        out = Path(tmp) / "profile.out"
        ingest = ingest_once(dataset, base_dir, durable=True, interpreter_args=["-m", "cProfile", "-o", str(out)])
        calls, spots = parse_cprofile(out)
    return Profile("cprofile", calls, 1.0, spots, ingest)


def profile_ingest(dataset: Dataset, base_dir: Path | None, profiler: str = "auto") -> list[Profile]:
    """Durable ingests with the server profiled: with py-spy, one pass sampling only the thread
    that holds the GIL (Python CPU work), then one sampling every busy thread (fsync waits
    included); with cProfile, one pass.

    Raises:
        RuntimeError: the profiler produced nothing.
    """
    if choose_profiler(profiler) == "py-spy":
        return [_pyspy_pass(dataset, base_dir, gil=True), _pyspy_pass(dataset, base_dir, gil=False)]
    return [_cprofile_pass(dataset, base_dir)]


def profile_idle(agencies: int, base_dir: Path | None, profiler: str = "auto") -> Profile | None:
    """The idle benchmark once, with py-spy --gil on the server (None without py-spy)."""
    if choose_profiler(profiler) != "py-spy":
        return None
    return _pyspy_pass(None, base_dir, gil=True, idle_agencies=agencies)


def main(argv: list[str] | None = None, log: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--profiler", choices=("auto", "py-spy", "cprofile"), default="auto")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        profiles = profile_ingest(ingest_dataset(Path(tmp)), None, args.profiler)
    for profile in profiles:
        log(f"{profile.tool}: {profile.samples} samples, main thread {profile.main_thread_share:.0%}")
        log("by own share:")
        for spot in profile.by_self(args.top):
            log(f"  {spot.self_share:6.1%} {spot.total_share:6.1%}  {spot.function}  ({spot.file})")
        log("project functions by total share:")
        for spot in profile.by_total(args.top):
            log(f"  {spot.self_share:6.1%} {spot.total_share:6.1%}  {spot.function}  ({spot.file})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
