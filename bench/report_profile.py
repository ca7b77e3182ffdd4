# Strategy: the profile part of BENCHMARKS.md: one table per profiler view,
# each row a function with its own and total share of samples and what it is
# in this server, then the suggestions (bench.hotspots) built from them.
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from bench.idle import IdleRun
from bench.ingest import Ingest
from bench.profile_ingest import HotSpot, Profile

#: Rows in each profile table.
TOP_SPOTS = 15


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _spot_rows(spots: Sequence[HotSpot], describe: Callable[[HotSpot], str]) -> list[str]:
    rows = ["| own | total | function | file | what it is |", "|---|---|---|---|---|"]
    for spot in spots:
        total = "—" if math.isnan(spot.total_share) else f"{spot.total_share:.1%}"
        rows.append(f"| {spot.self_share:.1%} | {total} | `{spot.function}` | {spot.file} | {describe(spot)} |")
    return rows


_PROFILE_VIEWS = {
    "py-spy --gil": "py-spy `--gil`: samples of whichever server thread holds the GIL, i.e. where its Python CPU "
    "goes (thread-pool work shows only while it holds the GIL; a thread in fsync or epoll does not)",
    "py-spy": "py-spy, every server thread that is not sleeping: running, runnable but waiting for a core, or in "
    "an uninterruptible disk wait (fsync), so kernel work inside a syscall lands on the Python function that "
    "made it",
    "cprofile": "cProfile, the server's main thread only (where every greenlet runs); thread-pool work (fsync, "
    "the draw) is not seen, and its overhead inflates call-heavy code; counts are calls, shares are of own time "
    "(`pip install py-spy` for the sampling views)",
}


def render_profiles(
    profiles: Sequence[Profile],
    idle_profile: Profile | None,
    describe: Callable[[HotSpot], str],
    notes: Sequence[str],
) -> list[str]:
    """The profile section: the ingest views, the idle view, then the suggestions."""
    if not profiles and idle_profile is None:
        return []
    lines = [
        "## Profile of the server",
        "",
        "Run after the timed runs, one extra run per view, never a timed run (`bench.profile_ingest`; "
        "`python3 -m bench.profile_ingest` runs the ingest views alone). 'own' is the share of samples with the "
        "function on top of the stack; 'total', anywhere on it.",
        "",
    ]
    for index, profile in enumerate(profiles, start=1):
        wall = profile.workload.wall_s if isinstance(profile.workload, Ingest) else math.nan
        lines += [
            f"### View {index}: {_PROFILE_VIEWS.get(profile.tool, profile.tool)}",
            "",
            f"{profile.samples:,} samples; main thread (event loop and every greenlet): "
            f"{profile.main_thread_share:.0%}. The profiled ingest took {wall:.3f} s wall, "
            f"correct: {yes(profile.ok)}.",
            "",
            "Top functions by own share:",
            "",
            *_spot_rows(profile.by_self(TOP_SPOTS), describe),
            "",
        ]
        if profile.tool == "py-spy --gil":
            lines += ["Project functions by total share:", "", *_spot_rows(profile.by_total(TOP_SPOTS), describe), ""]
    lines += _idle_profile(idle_profile, len(profiles) + 1, describe)
    if notes:
        lines += ["### What this run's profiles say", ""]
        lines += [f"- {note}" for note in notes]
        lines.append("")
    lines += ["### What was done about the hot spots, and what was not", ""]
    lines += [f"- {item}" for item in DONE_ABOUT_HOT_SPOTS]
    lines.append("")
    return lines


#: The changes made after profiling, in the order they were made (the figures
#: above are measured on the code with all of them; git log has each one's
#: before and after).
DONE_ABOUT_HOT_SPOTS = [
    "**Per-batch costs** (frame decode, `store_bets` open/close, fsync hand-off, log line, ack round trip): "
    "`batch.maxAmount` went from 100 to 125, the most that no real bet (at most 65 bytes on the wire) "
    "can push past 8 KiB; 20% fewer batches.",
    "**Reading a frame** took three `recv` calls (first byte, rest of the header, payload); the first "
    "read now asks for the whole header, so two.",
    "**Validation**: the UTF-8 check loops only over names that are not ASCII, and a bet's wire size "
    "is measured on its joined text.",
    "**Acknowledgements waiting on fsync**: a thread-pool worker whose fsync had returned waited up to "
    "CPython's 5 ms switch interval for the busy loop to release the GIL; the server sets 0.5 ms.",
    "**10,000 agencies**: each Hello and Done copied the set of done agencies (quadratic), and each "
    "group commit copied every agency's count in case of a rollback; both are now O(1) per operation.",
    "**Left alone**: the storage contract (`store_bets`, `Bet`, `load_bets`, `has_won`: about half of "
    "the server's GIL time) is fixed by the exercise; the clients' start-up (interpreter, gevent, "
    "PyYAML: about 0.1 s of CPU each, five of them beside the server on 2 cores) is the system's shape "
    "(one process per agency); the client validates every row before sending it, which the "
    "exercise requires (a bad row must stop the upload before it is sent); done marks are still "
    "fsync'ed one by one (only the idle set-up pays for it).",
]


def _idle_profile(profile: Profile | None, view: int, describe: Callable[[HotSpot], str]) -> list[str]:
    if profile is None or not isinstance(profile.workload, IdleRun):
        return []
    run = profile.workload
    return [
        f"### View {view}: {_PROFILE_VIEWS[profile.tool]}, during one run of the idle benchmark",
        "",
        f"{run.agencies} agencies, an extra run after the timed ones; {profile.samples:,} samples. Set-up took "
        f"{run.setup_s:.2f} s and {run.server_cpu_s:.2f} s of server CPU; correct: {yes(profile.ok)}.",
        "",
        "Project functions by total share:",
        "",
        *_spot_rows(profile.by_total(TOP_SPOTS), describe),
        "",
    ]
