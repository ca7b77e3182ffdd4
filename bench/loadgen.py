"""The load generator: many agencies as greenlets in one process, each a raw, timed
protocol peer built on shared.protocol and shared.transport.

    python -m bench.loadgen scale --port P --data DIR --agencies N --out FILE
    python -m bench.loadgen idle  --port P --agencies N --out FILE

scale: agency K uploads DIR/agency-K.csv in batches of --batch, timing each
    batch from its first byte sent to its acknowledgement; then Done and the
    winners query. The files are parsed and every frame encoded before the
    clock starts, so the timed part is socket work and the server's.
idle:  every agency connects, identifies, sends its one bet (bench.data.idle_bet)
    and, all but the last, Done and the winners query, where it blocks. Then
    the generator prints one JSON line {"event": "ready", ...} and waits for a
    line on stdin; on it, the last agency sends Done and its query, and the
    generator times how long until every agency has its answer.

Connects are spread: at most --connect-concurrency agencies are connecting
(idle: setting up) at once. Everything is bounded by --timeout, socket waits
included, and the process always ends. The result, per agency documents and
errors included, is written as JSON to --out. Exit code 0 once the result is
written, whatever the agencies' outcome (the result says), 1 on a bad argument.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore

from bench.data import idle_bet
from client_gevent.batching import batches
from client_gevent.bets_source import CsvBets
from shared.errors import LotteryError
from shared.protocol import (
    Bets,
    BetsAck,
    Done,
    DoneAck,
    FrameDecoder,
    Hello,
    Message,
    Welcome,
    Winners,
    WinnersQuery,
    encode,
)
from shared.transport import open_connection, receive_message, send_all, send_message

ReplyT = TypeVar("ReplyT")


class UnexpectedReply(LotteryError):
    """The server answered with something else than the protocol step expects."""


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Peer:
    """One agency connection: request/reply over a gevent socket."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = open_connection("127.0.0.1", port, timeout)
        self.decoder = FrameDecoder()

    def close(self) -> None:
        self.sock.close()

    def expect(self, reply_type: type[ReplyT]) -> ReplyT:
        reply = receive_message(self.sock, self.decoder)
        if not isinstance(reply, reply_type):
            raise UnexpectedReply(f"expected {reply_type.__name__}, got {reply!r}")
        return reply

    def request(self, message: Message, reply_type: type[ReplyT]) -> ReplyT:
        send_message(self.sock, message)
        return self.expect(reply_type)

    def winners(self) -> list[str]:
        """Read Winners parts until the last one (the query must have been sent)."""
        documents: list[str] = []
        while True:
            part = self.expect(Winners)
            documents.extend(part.documents)
            if not part.more:
                return documents


@dataclass
class Outcome:
    """What one agency got."""

    winners: list[str] | None = None
    error: str | None = None
    latencies_s: list[float] = field(default_factory=list)
    answered_at: float | None = None


def _guarded(outcome: Outcome, work: Callable[[], None]) -> None:
    try:
        work()
    except (LotteryError, OSError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"


# --- scale ----------------------------------------------------------------


def _encoded_batches(path: Path, batch: int) -> list[tuple[int, bytes]]:
    """The agency's Bets frames, encoded, with the stored count each ack must report."""
    frames, start = [], 0
    for bets in batches(CsvBets(path).rows(), batch):
        frames.append((start + len(bets), encode(Bets(start, tuple(bets)))))
        start += len(bets)
    return frames


def run_scale(
    port: int, data: Path, agencies: int, batch: int, connect_concurrency: int, timeout: float
) -> dict[str, Any]:
    frames = {agency: _encoded_batches(data / f"agency-{agency}.csv", batch) for agency in range(1, agencies + 1)}
    outcomes = {agency: Outcome() for agency in frames}
    connecting = BoundedSemaphore(connect_concurrency)

    def agency_job(agency: int) -> None:
        outcome = outcomes[agency]
        with connecting:
            peer = Peer(port, timeout)
        try:
            welcome = peer.request(Hello(agency), Welcome)
            if welcome.stored != 0 or welcome.done:
                raise UnexpectedReply(f"fresh server reports {welcome}")
            for stored, frame in frames[agency]:
                sent_at = time.perf_counter()
                send_all(peer.sock, frame)
                ack = peer.expect(BetsAck)
                outcome.latencies_s.append(time.perf_counter() - sent_at)
                if ack.stored != stored:
                    raise UnexpectedReply(f"ack of {ack.stored} bets, expected {stored}")
            peer.request(Done(), DoneAck)
            send_message(peer.sock, WinnersQuery())
            outcome.winners = peer.winners()
            outcome.answered_at = time.perf_counter()
        finally:
            peer.close()

    started = time.perf_counter()
    jobs = [gevent.spawn(_guarded, outcomes[agency], lambda agency=agency: agency_job(agency)) for agency in frames]
    finished_in_time = _join(jobs, timeout)
    elapsed = time.perf_counter() - started
    return {
        "elapsed_s": elapsed,
        "finished_in_time": finished_in_time,
        "latencies_s": [latency for outcome in outcomes.values() for latency in outcome.latencies_s],
        "winners": {agency: outcome.winners for agency, outcome in outcomes.items()},
        "errors": {agency: outcome.error for agency, outcome in outcomes.items() if outcome.error},
    }


# --- idle -----------------------------------------------------------------


def _wait_for_go() -> None:
    """Block this greenlet (not the loop) until a line arrives on stdin."""
    gevent.get_hub().threadpool.apply(sys.stdin.readline)


def run_idle(port: int, agencies: int, connect_concurrency: int, timeout: float) -> dict[str, Any]:
    outcomes = {agency: Outcome() for agency in range(1, agencies + 1)}
    setting_up = BoundedSemaphore(connect_concurrency)
    all_set_up, go = Event(), Event()
    set_up = 0
    go_at: list[float] = []

    def agency_job(agency: int) -> None:
        nonlocal set_up
        outcome = outcomes[agency]
        last = agency == agencies
        peer: Peer | None = None
        try:
            with setting_up:
                try:
                    peer = Peer(port, timeout)
                    peer.request(Hello(agency), Welcome)
                    peer.request(Bets(0, (idle_bet(agency),)), BetsAck)
                    if not last:
                        peer.request(Done(), DoneAck)
                        send_message(peer.sock, WinnersQuery())
                finally:
                    set_up += 1
                    if set_up == agencies:
                        all_set_up.set()
            assert peer is not None
            if last:
                go.wait()
                go_at.append(time.perf_counter())
                peer.request(Done(), DoneAck)
                send_message(peer.sock, WinnersQuery())
            outcome.winners = peer.winners()
            outcome.answered_at = time.perf_counter()
        finally:
            if peer is not None:
                peer.close()

    started = time.perf_counter()
    jobs = [gevent.spawn(_guarded, outcomes[agency], lambda agency=agency: agency_job(agency)) for agency in outcomes]
    all_set_up.wait(timeout)
    setup_s = time.perf_counter() - started
    errors = sum(1 for outcome in outcomes.values() if outcome.error)
    print(json.dumps({"event": "ready", "setup_s": setup_s, "errors": errors}), flush=True)
    _wait_for_go()
    go.set()
    finished_in_time = _join(jobs, timeout)
    answers = [outcome.answered_at for outcome in outcomes.values() if outcome.answered_at is not None]
    return {
        "setup_s": setup_s,
        "answer_s": (max(answers) - go_at[0]) if answers and go_at else None,
        "finished_in_time": finished_in_time,
        "winners": {agency: outcome.winners for agency, outcome in outcomes.items()},
        "errors": {agency: outcome.error for agency, outcome in outcomes.items() if outcome.error},
    }


# --- main -----------------------------------------------------------------


def _join(jobs: list[gevent.Greenlet], timeout: float) -> bool:
    """Wait for every job; kill the rest after `timeout`. True if all finished in time."""
    done = gevent.joinall(jobs, timeout=timeout)
    if len(done) < len(jobs):
        gevent.killall(jobs, block=True, timeout=5)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("scale", "idle"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--agencies", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="scale: directory of agency-K.csv files")
    parser.add_argument("--batch", type=int, default=100, help="scale: bets per batch")
    parser.add_argument("--connect-concurrency", type=int, default=250)
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on the whole run, in seconds")
    args = parser.parse_args(argv)
    fd_limit = raise_fd_limit()
    if fd_limit < args.agencies + 64:
        parser.error(f"{args.agencies} connections need more file descriptors than the limit {fd_limit}")
    if args.mode == "scale":
        if args.data is None:
            parser.error("scale needs --data")
        result = run_scale(args.port, args.data, args.agencies, args.batch, args.connect_concurrency, args.timeout)
    else:
        result = run_idle(args.port, args.agencies, args.connect_concurrency, args.timeout)
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
