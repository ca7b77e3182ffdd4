# Watching a contest over HTTP (SERVER_STATUS_PORT), from the server's own
# gevent loop with gevent.pywsgi: GET /metrics (Prometheus text format, from a
# registry of this server's own), GET /status (JSON), GET / (status.html, which
# polls /status). `Metrics` holds what sessions count as they go (refusals by
# error code, acknowledgement latency); everything else is read from the
# server's state when asked. Counts, ids and states only: no document, name or
# birthdate is ever read here.
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gevent.pool import Pool
from gevent.pywsgi import WSGIServer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric, StateSetMetricFamily

from shared.logs import Result, log_action

if TYPE_CHECKING:
    from lottery_gevent.server import LotteryServer

logger = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("status.html")
DRAW_STATES = ("waiting", "running", "done", "failed")
#: HTTP connections served at once; more wait in the listen queue (the lottery's own are apart).
MAX_REQUESTS = 16


class Metrics:
    """What sessions count as they go, in a registry of this server's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.refusals = Counter("lottery_refusals", "Frames refused, by error code", ["code"], registry=self.registry)
        self.ack_latency = Histogram(
            "lottery_ack_latency_seconds", "From a batch received to its BetsAck sent", registry=self.registry
        )

    def refused(self, code: int) -> None:
        self.refusals.labels(getattr(code, "name", str(code))).inc()


class StatusServer:
    """The HTTP side of `server`; start() binds (OSError if it cannot), stop() closes."""

    def __init__(self, server: LotteryServer, port: int) -> None:
        self._server = server
        self._page = PAGE.read_bytes()
        server.metrics.registry.register(self)
        self._http = WSGIServer((server.config.ip, port), self._app, log=None, spawn=Pool(MAX_REQUESTS))

    @property
    def port(self) -> int:
        return int(self._http.server_port)

    def start(self) -> bool:
        """Bind and serve; False (logged) if the port cannot be bound."""
        try:
            self._http.start()
        except OSError as exc:
            log_action(logger, logging.ERROR, "status_listen", Result.FAIL, port=self._http.server_port, error=exc)
            return False
        log_action(logger, logging.INFO, "status_listen", Result.SUCCESS, port=self.port)
        return True

    def stop(self) -> None:
        self._http.stop(timeout=1)

    def status(self) -> dict[str, Any]:
        server = self._server
        lottery, store, connected = server.lottery, server.store, server.connected_agencies()
        counts = store.counts()
        ids = sorted(set(range(1, server.config.agencies + 1)) | set(counts))
        return {
            "contest": store.contest.hex(),
            "sales_open": lottery.sales_open,
            "draw": lottery.state,
            "waiting_for": lottery.pending() if lottery.state == "waiting" else [],
            "open_connections": server.live,
            "agencies": [
                {
                    "agency": agency,
                    "stored": counts.get(agency, 0),
                    "total": lottery.totals.get(agency),
                    "done": store.is_done(agency),
                    "connected": agency in connected,
                }
                for agency in ids
            ],
        }

    def collect(self) -> Iterator[Metric]:
        """The state-derived metrics, built at each scrape."""
        status = self.status()
        stored = GaugeMetricFamily("lottery_bets_stored", "Bets stored, per agency", labels=["agency"])
        for row in status["agencies"]:
            stored.add_metric([str(row["agency"])], row["stored"])
        yield stored
        done = sum(row["done"] for row in status["agencies"])
        yield GaugeMetricFamily("lottery_agencies_done", "Agencies that said Done", value=done)
        yield GaugeMetricFamily("lottery_open_connections", "Open connections", value=status["open_connections"])
        yield GaugeMetricFamily("lottery_sales_open", "1 while sales are open", value=int(status["sales_open"]))
        draw = StateSetMetricFamily("lottery_draw", "The draw's state")
        draw.add_metric([], {state: state == status["draw"] for state in DRAW_STATES})
        yield draw

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            reply = ("405 Method Not Allowed", "text/plain", b"GET only\n")
        elif path == "/metrics":
            reply = ("200 OK", CONTENT_TYPE_LATEST, generate_latest(self._server.metrics.registry))
        elif path == "/status":
            reply = ("200 OK", "application/json", json.dumps(self.status()).encode())
        elif path == "/":
            reply = ("200 OK", "text/html; charset=utf-8", self._page)
        else:
            reply = ("404 Not Found", "text/plain", b"not found\n")
        status, content_type, body = reply
        start_response(status, [("Content-Type", content_type), ("Cache-Control", "no-store")])
        return [body]
