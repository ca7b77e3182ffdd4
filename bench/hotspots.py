# Strategy: say what each hot spot of the server profile is, and turn the
# profile plus the ingest figures of the same invocation into suggestions. The
# words are fixed here; every number in them is read from this invocation's
# measurements, so the page never quotes a figure from another day.
from __future__ import annotations

import statistics
from collections.abc import Sequence

from bench.floor import BATCH
from bench.idle import IdleRun
from bench.ingest import IngestRun
from bench.profile_ingest import HotSpot, Profile

#: function name (as py-spy / cProfile print it) -> what it is in this server.
DESCRIPTIONS = {
    "SocketMixin.send": "gevent `send()`: acks and winners going out; on loopback the sender's syscall also "
    "delivers into the peer's socket and wakes the client, which on 2 cores often preempts the server",
    "SocketMixin.recv": "gevent `recv()`: reading frames",
    "store_bets": "the contract's append: open bets.csv, one `csv.writer.writerow` per bet, close; once per batch",
    "Hub.run": "gevent's event loop (libev) and all of gevent's Cython-compiled internals it runs (greenlet "
    "switches, events, semaphores, timers), which have no Python frame of their own",
    "_WorkerGreenlet.__run_task": "a thread-pool worker inside the C call it was given: mostly `os.fsync` "
    "(group commit); its Python callees (the draw) are listed separately",
    "acquire_with_timeout": "thread-pool workers waiting for work (a lock wait py-spy does not always see as idle)",
    "Bet.__init__": "the contract's `Bet`: `int()` twice and `date.fromisoformat` per bet, at ingest and in the draw",
    "load_bets": "the draw's read-back: `csv.reader` over bets.csv, on the thread pool",
    "_scan_winners": "the draw: `load_bets` + `has_won`, grouping documents by agency",
    "validate_bet": "server-side validation of each bet: regex on the date, `date.fromisoformat`, digit checks",
    "_build_bets": "the session's loop over a batch: `validate_bet`, then `Bet(...)`",
    "StreamHandler.emit": "writing a log line (one INFO `apuesta_recibida` per batch) to stderr",
    "Logger._log": "building a log record",
    "_unpack_text_list": "decoding a Bets payload: UTF-8 decode, then cutting the text at the field lengths",
    "_unpack_text_list.<locals>.<listcomp>": "cutting a Bets frame's text into fields",
    "_decode_bets": "turning the fields into `BetFields` tuples",
    "FrameDecoder.next_message": "the sans-I/O decoder: header checks and payload slicing",
    "BetStore.append": "the storage semaphore around `store_bets`, plus an `fstat` for the durable size",
    "BetStore.wait_durable": "group commit: wait for (or start) the fsync that covers this batch",
    "BetStore._sync": "one group-commit fsync handed to the thread pool",
    "_Condition.notify_one": "handing a task (an fsync, the draw) to a thread-pool worker",
    "AgencySession.run": "one connection's loop: receive, dispatch on the state table",
    "AgencySession._on_bets": "one batch: build, append, wait durable, log, ack",
    "LotteryServer._handle": "the connection handler (everything a session does)",
    "receive_message": "read one frame through the decoder, under the frame timeout",
    "send_message": "encode and send one frame",
    "send_all": "the explicit send loop",
    "recv_exact": "the explicit recv loop",
    "log_action": "the one log-line builder (`action: NAME | result: success|fail|in_progress | ...`)",
    "Timeout.__exit__": "gevent's frame timeout, armed and cancelled per frame",
    "Timeout.__init__": "gevent's frame timeout, armed and cancelled per frame",
    "Lottery._draw_if_complete": "on every Done: count the done agencies to see whether the draw can start",
    "Lottery._draw_if_complete.<locals>.<genexpr>": "the count above: one step per agency already done",
    "Lottery.knows": "is an agency id within 1..SERVER_AGENCIES (called once per done agency, per Done)",
    "BetStore.done_agencies": "a frozenset copy of every done agency",
    "BetStore.mark_done": "append the agency to the done log and fsync it, under the storage semaphore",
    "Lottery.mark_done": "record a Done, then check whether the draw can start",
    "AgencySession._on_done": "handle Done: mark it durably, ack",
    "AgencySession._on_hello": "handle Hello: claim the agency, durable count, Welcome",
    "AgencySession._on_winners_query": "handle the winners query: wait on the draw barrier, send the documents",
    "AgencySession._await_draw": "block on the draw result while watching the socket",
    "BetStore.durable_count": "the agency's stored count, after syncing any append in flight",
    "has_won": "the contract's winner test, once per stored bet in the draw",
    "namedtuple.<locals>._make": "building a `BetFields` tuple per decoded bet",
    "decode_payload": "dispatch from the frame type to its payload decoder",
    "_RefusingStreamServer.do_handle": "accepting a connection: pool check, spawn the handler greenlet",
    "StreamServer.do_read": "gevent's accept()",
    "ThreadResult._on_async": "a thread-pool result handed back to the event loop",
    "Queue.put": "queueing a task for the thread pool",
    "Queue.get": "a thread-pool worker taking its next task",
}


def describe(spot: HotSpot) -> str:
    return DESCRIPTIONS.get(spot.function, "")


#: A share of samples worth a suggestion of its own.
SIGNIFICANT = 0.05


def _find(profiles: Sequence[Profile], tool: str) -> Profile | None:
    return next((profile for profile in profiles if profile.tool == tool), None)


def _wall_note(ingest: Sequence[IngestRun]) -> str:
    wall = statistics.median(run.durable.wall_s for run in ingest)
    ready = statistics.median(run.durable.server_ready_s for run in ingest)
    server_cpu = statistics.median(run.durable.server_cpu_s for run in ingest)
    clients_cpu = statistics.median(run.durable.clients_cpu_s for run in ingest)
    floor = statistics.median(run.floor.total_s for run in ingest)
    return (
        f"**Where the ingest's wall time goes.** Durable ingest {wall:.2f} s wall against a {floor:.2f} s floor "
        f"(medians). The server needs {ready:.2f} s from exec to listening (interpreter and imports) before any "
        f"client can start; then {server_cpu:.2f} s of server CPU and {clients_cpu:.2f} s of client CPU (5 client "
        "processes, each importing gevent and PyYAML, parsing and validating its file and encoding frames) share "
        f"2 cores: the clients' CPU alone is {clients_cpu / wall:.0%} of the wall time. The floor parses once; the "
        "ingest parses in the clients, then decodes and validates again in the server."
    )


def _ingest_notes(gil: Profile, active: Profile | None, ingest: Sequence[IngestRun]) -> list[str]:
    contract = gil.share("store_bets", "Bet.__init__", "load_bets", "has_won")
    build = gil.share("validate_bet", "_build_bets")
    logging_share = gil.share("log_action", total=True)
    decode = gil.share("FrameDecoder.next_message", total=True)  # the decoder calls all the rest
    loop = gil.share("Hub.run")
    found = [
        f"**The contract** (`store_bets`, `Bet.__init__`, `load_bets`): {contract:.0%} of GIL samples. This is "
        "floor work the issue fixes; only fewer, larger `store_bets` calls reduce its per-call part (one `open` "
        "and `close` of bets.csv per batch).",
        f"**Validation and building** (`validate_bet`, `_build_bets`): {build:.0%} own. The server validates text "
        "it has just decoded from UTF-8 and then builds a `Bet`, whose `__init__` parses the birthdate again; "
        "every check that the decode or `Bet.__init__` already makes is work done twice.",
        f"**Logging**: {logging_share:.0%} of GIL samples under `log_action` (one INFO line per batch, part of the "
        "interface); it scales with batches, not bets.",
        f"**Decoding** (`FrameDecoder.next_message` and everything under it): {decode:.0%} of GIL samples; "
        f"cutting the text into fields (`_unpack_text_list` and its list comprehension) is "
        f"{gil.share('_unpack_text_list', '_unpack_text_list.<locals>.<listcomp>'):.0%} own, one slice per field.",
        f"**gevent itself** (`Hub.run`: the loop and its Cython internals): {loop:.0%} own.",
    ]
    if active is not None:
        fsync = active.share("_WorkerGreenlet.__run_task")
        waits = active.share("acquire_with_timeout")
        send = active.share("SocketMixin.send")
        found.append(
            f"**Durability.** Counting every busy thread, {fsync:.0%} of samples are thread-pool workers inside "
            f"`os.fsync` (group commit) and {waits:.0%} workers waiting for a task; `send` of the acks is "
            f"{send:.0%}."
        )
    if ingest:
        floor = ingest[0].floor
        found.append(
            f"**Batch size.** Every batch costs one frame decode, one `store_bets` open/close, one fsync "
            f"hand-off, one log line and one ack round trip. At {BATCH} bets (the default, the most that "
            f"no real bet can push past 8 KiB) the data takes {floor.store_calls} batches; if only the 8 KiB "
            f"frame limited them it would take {floor.frame_limited_batches} "
            f"({1 - floor.frame_limited_batches / floor.store_calls:.0%} fewer), at the price of batches cut "
            "early by the frame limit on real data, which issue 2 rules out for the default."
        )
    return found


def _idle_notes(profile: Profile, idle: Sequence[IdleRun]) -> list[str]:
    found: list[str] = []
    if idle:
        cpu = statistics.median(run.server_cpu_s for run in idle)
        setup = statistics.median(run.setup_s for run in idle)
        found.append(
            f"**Idle set-up cost.** Setting up {idle[0].agencies} agencies took {setup:.1f} s and the whole run "
            f"{cpu:.1f} s of server CPU (medians), about {cpu / idle[0].agencies * 1000:.1f} ms per agency; "
            "only the RSS and the answer time are targets, but this is where a larger fleet would wait."
        )
    shares = {
        "Done (`AgencySession._on_done`, durable done mark)": profile.share("AgencySession._on_done", total=True),
        "Hello (`AgencySession._on_hello`)": profile.share("AgencySession._on_hello", total=True),
        "the one bet (`AgencySession._on_bets`)": profile.share("AgencySession._on_bets", total=True),
        "reading frames (`receive_message`)": profile.share("receive_message", total=True),
        "logging (`log_action`, four INFO lines per agency)": profile.share("log_action", total=True),
    }
    listed = ", ".join(f"{name} {share:.0%}" for name, share in sorted(shares.items(), key=lambda kv: -kv[1]))
    found.append(
        f"**Where the idle run's GIL time goes** (total shares; logging overlaps the handlers it is called from): "
        f"{listed}."
    )
    mark = profile.share("BetStore.mark_done", total=True)
    if mark >= SIGNIFICANT:
        found.append(
            f"**Done marks** (`BetStore.mark_done`, {mark:.0%} of GIL samples) are written and fsync'ed one agency "
            "at a time under the storage semaphore; the group commit that bets use could cover the done log too, "
            "so that thousands of simultaneous Dones share fsyncs."
        )
    return found


def notes(
    profiles: Sequence[Profile], idle_profile: Profile | None, ingest: Sequence[IngestRun], idle: Sequence[IdleRun]
) -> list[str]:
    """Suggestions, each with its evidence from this invocation."""
    found = [_wall_note(ingest)] if ingest else []
    gil = _find(profiles, "py-spy --gil")
    if gil is not None:
        found += _ingest_notes(gil, _find(profiles, "py-spy"), ingest)
    if idle_profile is not None:
        found += _idle_notes(idle_profile, idle)
    return found
