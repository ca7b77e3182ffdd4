"""The load generator: many agencies as greenlets in one process, each talking through
client_gevent.connection.ServerConnection (the client's own peer), timed.

    python -m bench.loadgen scale|idle|crowd --port P --out FILE [--data DIR] --agencies N [...]

scale: agency K uploads DIR/agency-K.csv (frames encoded before the clock starts),
    timing each batch from its first byte sent to its ack; then Done and the winners.
idle:  every agency identifies, sends one bet (bench.data.idle_bet) and, all but the
    last, Done and the winners query, where it blocks. The generator then prints
    {"event": "ready", ...} and waits for a line on stdin; on it, the last agency
    sends Done and its query, and it times how long until every agency is answered.
crowd: agency 2N+1 uploads (a warm-up), then 1..N one after the other, alone; then
    --bad-peers connections open, half silent, half trickling a Hello one byte every
    --trickle-every seconds (slowloris), and N+1..2N upload beside them. Each upload
    of 1..2N is timed from connect to DoneAck.

At most --connect-concurrency agencies connect (idle: set up) at once. All is bounded
by --timeout. The result, per-agency documents and errors included, is written as
JSON to --out; exit code 0 once it is written, whatever the agencies' outcome.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore

from bench import tls
from bench._procs import raise_fd_limit
from bench.data import idle_bet
from client_gevent.batching import batches
from client_gevent.bets_source import CsvBets
from client_gevent.connection import ServerConnection
from shared.errors import LotteryError, UnexpectedReply
from shared.protocol import Bets, BetsAck, Done, DoneAck, Hello, Welcome, WinnersQuery, encode

HOST = "127.0.0.1"
#: What the trickling peers would say, if they ever finished their frame.
UNKNOWN_AGENCY = 999
Frames = list[tuple[int, bytes]]


@dataclass
class Outcome:
    """What one agency got."""

    winners: list[str] | None = None
    error: str | None = None
    latencies_s: list[float] = field(default_factory=list)
    answered_at: float | None = None


def _connect(port: int, timeout: float, context: ssl.SSLContext | None = None) -> ServerConnection:
    """Every connection the generator opens; over TLS with `context` (bench.tls.agency_context)."""
    return ServerConnection.open(HOST, port, timeout, context)


def _guarded(outcome: Outcome, work: Callable[[], None]) -> None:
    try:
        work()
    except (LotteryError, OSError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"


def _join(jobs: list[gevent.Greenlet], timeout: float) -> bool:
    """Wait for every job; kill the rest after `timeout`. True if all finished in time."""
    done = gevent.joinall(jobs, timeout=timeout)
    if len(done) < len(jobs):
        gevent.killall(jobs, block=True, timeout=5)
        return False
    return True


def _report(outcomes: dict[int, Outcome], finished_in_time: bool, **figures: Any) -> dict[str, Any]:
    return {
        **figures,
        "finished_in_time": finished_in_time,
        "winners": {agency: outcome.winners for agency, outcome in outcomes.items()},
        "errors": {agency: outcome.error for agency, outcome in outcomes.items() if outcome.error},
    }


def _encoded_batches(path: Path, batch: int) -> Frames:
    """The agency's Bets frames, encoded, with the stored count each ack must report."""
    frames, start = [], 0
    for bets in batches(CsvBets(path).rows(), batch):
        frames.append((start + len(bets), encode(Bets(start, tuple(bets)))))
        start += len(bets)
    return frames


def _upload(conn: ServerConnection, agency: int, frames: Frames, outcome: Outcome) -> None:
    """Hello, every batch (each ack timed and checked), Done."""
    welcome = conn.request(Hello(agency), Welcome)
    if welcome.stored != 0 or welcome.done:
        raise UnexpectedReply(f"fresh server reports {welcome}")
    for stored, frame in frames:
        sent_at = time.perf_counter()
        conn.send_bytes(frame)
        ack = conn.expect(BetsAck)
        outcome.latencies_s.append(time.perf_counter() - sent_at)
        if ack.stored != stored:
            raise UnexpectedReply(f"ack of {ack.stored} bets, expected {stored}")
    conn.request(Done(), DoneAck)


def run_scale(args: argparse.Namespace) -> dict[str, Any]:
    port, timeout = args.port, args.timeout
    agencies = range(1, args.agencies + 1)
    frames = {agency: _encoded_batches(args.data / f"agency-{agency}.csv", args.batch) for agency in agencies}
    # Like the frames, each agency's certificate is loaded before the clock starts (TLS twin only).
    contexts = {agency: tls.agency_context(agency) for agency in agencies}
    outcomes = {agency: Outcome() for agency in frames}
    connecting = BoundedSemaphore(args.connect_concurrency)

    def agency_job(agency: int) -> None:
        with connecting:
            conn = _connect(port, timeout, contexts[agency])
        with conn:
            _upload(conn, agency, frames[agency], outcomes[agency])
            outcomes[agency].winners = conn.query_winners()
            outcomes[agency].answered_at = time.perf_counter()

    started = time.perf_counter()
    jobs = [gevent.spawn(_guarded, outcomes[agency], lambda agency=agency: agency_job(agency)) for agency in frames]
    in_time = _join(jobs, timeout)
    latencies = [latency for outcome in outcomes.values() for latency in outcome.latencies_s]
    return _report(outcomes, in_time, elapsed_s=time.perf_counter() - started, latencies_s=latencies)


def _wait_for_go() -> None:
    """Block this greenlet (not the loop) until a line arrives on stdin."""
    gevent.get_hub().threadpool.apply(sys.stdin.readline)


def run_idle(args: argparse.Namespace) -> dict[str, Any]:
    port, agencies, timeout = args.port, args.agencies, args.timeout
    outcomes = {agency: Outcome() for agency in range(1, agencies + 1)}
    setting_up = BoundedSemaphore(args.connect_concurrency)
    all_set_up, go = Event(), Event()
    set_up = 0
    go_at: list[float] = []

    def agency_job(agency: int) -> None:
        nonlocal set_up
        last = agency == agencies
        with contextlib.ExitStack() as stack:
            try:
                with setting_up:
                    conn = stack.enter_context(_connect(port, timeout, tls.agency_context(agency)))
                    conn.request(Hello(agency), Welcome)
                    conn.request(Bets(0, (idle_bet(agency),)), BetsAck)
                    if not last:
                        conn.request(Done(), DoneAck)
                        conn.send_message(WinnersQuery())
            finally:
                set_up += 1
                if set_up == agencies:
                    all_set_up.set()
            if last:
                go.wait()
                go_at.append(time.perf_counter())
                conn.request(Done(), DoneAck)
                conn.send_message(WinnersQuery())
            outcomes[agency].winners = conn.read_winners()
            outcomes[agency].answered_at = time.perf_counter()

    started = time.perf_counter()
    jobs = [gevent.spawn(_guarded, outcomes[agency], lambda agency=agency: agency_job(agency)) for agency in outcomes]
    all_set_up.wait(timeout)
    setup_s = time.perf_counter() - started
    errors = sum(1 for outcome in outcomes.values() if outcome.error)
    print(json.dumps({"event": "ready", "setup_s": setup_s, "errors": errors}), flush=True)
    _wait_for_go()
    go.set()
    in_time = _join(jobs, timeout)
    answers = [outcome.answered_at for outcome in outcomes.values() if outcome.answered_at is not None]
    answer_s = (max(answers) - go_at[0]) if answers and go_at else None
    return _report(outcomes, in_time, setup_s=setup_s, answer_s=answer_s)


def _trickle(peers: list[ServerConnection], frame: bytes, every_s: float, stop: Event) -> None:
    """Send `frame` one byte at a time, far too slowly, on every peer until stopped."""
    for offset in range(len(frame)):
        for peer in peers:
            try:
                peer.send_bytes(frame[offset : offset + 1])
            except LotteryError:
                pass  # cut off by the server: what it should do
        if stop.wait(every_s):
            return


def run_crowd(args: argparse.Namespace) -> dict[str, Any]:
    uploads, timeout = args.agencies, args.timeout
    #: Agency 2N+1 warms the server up, untimed; 1..N upload alone, N+1..2N beside the bad peers.
    agencies = range(1, 2 * uploads + 2)
    frames = {agency: _encoded_batches(args.data / f"agency-{agency}.csv", args.batch) for agency in agencies}
    outcomes = {agency: Outcome() for agency in frames}
    durations: dict[int, float] = {}
    window: dict[str, float] = {}

    def upload(agency: int) -> None:
        started = time.perf_counter()
        with _connect(args.port, timeout, tls.agency_context(agency)) as conn:
            _upload(conn, agency, frames[agency], outcomes[agency])
        durations[agency] = time.perf_counter() - started

    def uploads_of(first: int, last: int) -> None:
        for agency in range(first, last + 1):
            _guarded(outcomes[agency], functools.partial(upload, agency))

    def crowd_job() -> None:
        uploads_of(2 * uploads + 1, 2 * uploads + 1)
        uploads_of(1, uploads)
        stop = Event()
        with contextlib.ExitStack() as peers:
            opened = time.perf_counter()
            bad = [peers.enter_context(_connect(args.port, timeout)) for _ in range(args.bad_peers)]
            trickler = gevent.spawn(
                _trickle, bad[len(bad) // 2 :], encode(Hello(UNKNOWN_AGENCY)), args.trickle_every, stop
            )
            uploads_of(uploads + 1, 2 * uploads)
            window["loaded_window_s"] = time.perf_counter() - opened
            stop.set()
            trickler.join()

    in_time = _join([gevent.spawn(crowd_job)], timeout)
    alone = [durations[agency] for agency in range(1, uploads + 1) if agency in durations]
    loaded = [durations[agency] for agency in range(uploads + 1, 2 * uploads + 1) if agency in durations]
    return _report(outcomes, in_time, alone_s=alone, loaded_s=loaded, **window)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("scale", "idle", "crowd"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--agencies", type=int, required=True, help="crowd: uploads on each side")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="scale, crowd: directory of agency-K.csv files")
    parser.add_argument("--batch", type=int, default=100, help="scale, crowd: bets per batch")
    parser.add_argument("--connect-concurrency", type=int, default=250)
    parser.add_argument("--bad-peers", type=int, default=500, help="crowd: silent + trickling connections")
    parser.add_argument("--trickle-every", type=float, default=0.4, help="crowd: seconds between bytes")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on the whole run, in seconds")
    args = parser.parse_args(argv)
    needed = max(args.agencies, args.bad_peers if args.mode == "crowd" else 0) + 64
    if raise_fd_limit() < needed:
        parser.error(f"{needed} file descriptors are needed, more than this process's limit")
    if args.mode != "idle" and args.data is None:
        parser.error(f"{args.mode} needs --data")
    result = {"scale": run_scale, "idle": run_idle, "crowd": run_crowd}[args.mode](args)
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
