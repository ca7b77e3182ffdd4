"""The load generator: many agencies as greenlets in one process, each through the client's peer.

    python -m bench.loadgen PLAN   (a Plan as JSON; bench.fleets writes it)

scale: agencies 1..N upload at once (messages and certificates loaded before the clock starts),
each batch timed from send to ack, then Done and the winners. idle: each agency identifies, sends
one bet and, all but the last, Done and the winners query, where it blocks; then {"event": "ready"}
is printed and, on a line on stdin, the last sends Done and its query. crowd: agency 2N+1 warms up,
1..N upload alone, then bad_peers raw sockets open (half trickle a Hello) and N+1..2N upload beside
them. Guarantees: at most `concurrency` agencies connect (idle: set up) at once; all is bounded by
timeout_s; the result goes to `out` as JSON, with exit code 0 whatever the agencies got.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
from gevent.event import Event
from gevent.lock import BoundedSemaphore

from bench.data import agency_context, batched, idle_bet
from bench.host import raise_fd_limit
from client_gevent.connection import ServerConnection
from shared.errors import LotteryError, UnexpectedReply
from shared.protocol import Bets, BetsAck, Done, DoneAck, Hello, Welcome, encode

HOST = "127.0.0.1"
#: Who the trickling peers claim to be, if they ever finished their Hello.
UNKNOWN_AGENCY = 999


@dataclass(frozen=True)
class Plan:
    mode: str  # scale, idle or crowd
    agencies: int  # crowd: uploads on each side
    port: int
    out: str
    data: str = "."  # directory of agency-K.csv files
    tls: str | None = None  # credentials directory: connect over TLS
    batch: int = 100
    concurrency: int = 250
    bad_peers: int = 0
    trickle_every_s: float = 0.4
    timeout_s: float = 300.0


class Fleet:
    """The agencies of one plan: what each got (winners or error) and when."""

    def __init__(self, plan: Plan, agencies: range, preload: bool) -> None:
        self.plan, self.agencies = plan, agencies
        self.winners: dict[int, list[str] | None] = dict.fromkeys(agencies)
        self.errors: dict[int, str] = {}
        self.latencies_s: list[float] = []
        self.answered_at: list[float] = []
        self.contexts = {k: agency_context(Path(plan.tls), k) for k in agencies} if plan.tls and preload else {}

    def connect(self, agency: int) -> ServerConnection:
        """Agency `agency`'s connection, over TLS with its own certificate if the plan says TLS."""
        context = self.contexts.get(agency) or (agency_context(Path(self.plan.tls), agency) if self.plan.tls else None)
        return ServerConnection.open(HOST, self.plan.port, self.plan.timeout_s, context)

    def guarded(self, agency: int, work: Callable[[int], None]) -> bool:
        """Run `work(agency)`; an error is the agency's outcome, not the generator's. True if it succeeded."""
        try:
            work(agency)
        except (LotteryError, OSError) as exc:
            self.errors[agency] = f"{type(exc).__name__}: {exc}"
            return False
        return True

    def spawn(self, work: Callable[[int], None]) -> list[gevent.Greenlet]:
        return [gevent.spawn(self.guarded, agency, work) for agency in self.agencies]

    def join(self, greenlets: list[gevent.Greenlet]) -> bool:
        """Wait for `greenlets` up to timeout_s, then kill the rest; True if all finished in time."""
        if len(gevent.joinall(greenlets, timeout=self.plan.timeout_s)) < len(greenlets):
            gevent.killall(greenlets, block=True, timeout=5)
            return False
        return True

    def messages(self, agency: int) -> list[tuple[int, Bets]]:
        """The agency's Bets messages, each with the stored count its ack must report."""
        upload, start = [], 0
        for bets in batched(Path(self.plan.data) / f"agency-{agency}.csv", self.plan.batch):
            upload.append((start + len(bets), Bets(start, tuple(bets))))
            start += len(bets)
        return upload

    def upload(self, conn: ServerConnection, agency: int, messages: list[tuple[int, Bets]]) -> None:
        welcome = conn.request(Hello(agency), Welcome)
        if welcome.stored != 0 or welcome.done:
            raise UnexpectedReply(f"fresh server reports {welcome}")
        for stored, message in messages:
            sent_at = time.perf_counter()
            ack = conn.request(message, BetsAck)
            self.latencies_s.append(time.perf_counter() - sent_at)
            if ack.stored != stored:
                raise UnexpectedReply(f"ack of {ack.stored} bets, expected {stored}")
        conn.request(Done(), DoneAck)

    def report(self, in_time: bool, **figures: Any) -> dict[str, Any]:
        return {**figures, "finished_in_time": in_time, "winners": self.winners, "errors": self.errors}


def scale(plan: Plan) -> dict[str, Any]:
    fleet = Fleet(plan, range(1, plan.agencies + 1), preload=True)
    uploads = {agency: fleet.messages(agency) for agency in fleet.agencies}
    connecting = BoundedSemaphore(plan.concurrency)

    def job(agency: int) -> None:
        with connecting:
            conn = fleet.connect(agency)
        with conn:
            fleet.upload(conn, agency, uploads[agency])
            fleet.winners[agency] = conn.query_winners()

    started = time.perf_counter()
    in_time = fleet.join(fleet.spawn(job))
    return fleet.report(in_time, elapsed_s=time.perf_counter() - started, latencies_s=fleet.latencies_s)


def idle(plan: Plan) -> dict[str, Any]:
    fleet, last = Fleet(plan, range(1, plan.agencies + 1), preload=False), plan.agencies
    setting_up, all_set_up, go, set_up, go_at = BoundedSemaphore(plan.concurrency), Event(), Event(), [0], [0.0]

    def job(agency: int) -> None:
        with contextlib.ExitStack() as stack:
            try:
                with setting_up:
                    conn = stack.enter_context(fleet.connect(agency))
                    conn.request(Hello(agency), Welcome)
                    conn.request(Bets(0, (idle_bet(agency),)), BetsAck)
                    if agency != last:
                        conn.request(Done(), DoneAck)
            finally:
                set_up[0] += 1
                if set_up[0] == last:
                    all_set_up.set()
            if agency == last:
                go.wait()
                go_at[0] = time.perf_counter()
                conn.request(Done(), DoneAck)
            # Sends the query, then blocks on the answer (no other greenlet runs in between).
            fleet.winners[agency] = conn.query_winners()
            fleet.answered_at.append(time.perf_counter())

    started = time.perf_counter()
    greenlets = fleet.spawn(job)
    all_set_up.wait(plan.timeout_s)
    setup_s = time.perf_counter() - started
    print(json.dumps({"event": "ready", "setup_s": setup_s}), flush=True)
    gevent.get_hub().threadpool.apply(sys.stdin.readline)  # blocks this greenlet, not the loop
    go.set()
    in_time = fleet.join(greenlets)
    answer_s = max(fleet.answered_at) - go_at[0] if fleet.answered_at and go_at[0] else None
    return fleet.report(in_time, setup_s=setup_s, answer_s=answer_s)


def crowd(plan: Plan) -> dict[str, Any]:
    n, fleet = plan.agencies, Fleet(plan, range(1, 2 * plan.agencies + 2), preload=False)
    uploads = {agency: fleet.messages(agency) for agency in fleet.agencies}
    durations: dict[int, float] = {}
    window: dict[str, float] = {}

    def upload(agency: int) -> None:
        with fleet.connect(agency) as conn:
            fleet.upload(conn, agency, uploads[agency])

    def upload_each(first: int, last: int) -> None:
        for agency in range(first, last + 1):
            started = time.perf_counter()
            if fleet.guarded(agency, upload):
                durations[agency] = time.perf_counter() - started

    def trickle(peers: list[gevent.socket.socket], stop: Event) -> None:
        frame = encode(Hello(UNKNOWN_AGENCY))
        for offset in range(len(frame)):
            for peer in peers:
                with contextlib.suppress(OSError):  # cut off by the server: what it should do
                    peer.sendall(frame[offset : offset + 1])
            if stop.wait(plan.trickle_every_s):
                return

    def crowd_job() -> None:
        upload_each(2 * n + 1, 2 * n + 1)
        upload_each(1, n)
        stop = Event()
        with contextlib.ExitStack() as stack:
            opened = time.perf_counter()
            bad = [
                stack.enter_context(gevent.socket.create_connection((HOST, plan.port))) for _ in range(plan.bad_peers)
            ]
            trickler = gevent.spawn(trickle, bad[len(bad) // 2 :], stop)
            upload_each(n + 1, 2 * n)
            window["loaded_window_s"] = time.perf_counter() - opened
            stop.set()
            trickler.join()

    in_time = fleet.join([gevent.spawn(crowd_job)])
    alone = [durations[agency] for agency in range(1, n + 1) if agency in durations]
    loaded = [durations[agency] for agency in range(n + 1, 2 * n + 1) if agency in durations]
    return fleet.report(in_time, alone_s=alone, loaded_s=loaded, **window)


def main() -> int:
    plan = Plan(**json.loads(sys.argv[1]))
    raise_fd_limit()
    result = {"scale": scale, "idle": idle, "crowd": crowd}[plan.mode](plan)
    Path(plan.out).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
