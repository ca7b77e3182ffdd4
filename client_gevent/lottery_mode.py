# Contract: the agency's whole job, resumable at any point: check the bets file,
# connect, Hello -> Welcome(stored, done, contest, digest); check the digest of
# the file's first `stored` rows (resume.py), upload the rest in batches,
# UPLOAD_WINDOW of them unacknowledged, each BetsAck matching the oldest; Done ->
# DoneAck; WinnersQuery -> Winners, bounded by the agency's documents and count,
# then exactly its bets with the drawn number the reply carries. A lost connection
# or a retryable refusal reconnects after a backoff pause; only real progress
# restarts the give-up window; the stored count means a retry never skips or
# repeats a bet. Bad data, a forbidden reply, a certificate problem or another
# protocol version end the run at once with one `fail` line. Told SALES_CLOSED,
# it logs how many of its bets are stored, asks for its winners on a new
# connection and exits SALES_CLOSED_EXIT instead of 0.
from __future__ import annotations

import collections
import logging
import ssl
from collections import Counter

import gevent

from client_gevent.backoff import Backoff
from client_gevent.bets_source import BetsFileError, CsvBets, batches
from client_gevent.config import ClientConfig
from client_gevent.connection import ServerConnection
from client_gevent.resume import check_resume
from shared.errors import (
    ConfigError,
    ConnectFailed,
    LotteryError,
    PeerClosed,
    ProtocolError,
    ServerRefused,
    Timeout,
    TlsRejected,
    UnexpectedReply,
    VersionMismatch,
)
from shared.logs import Result, log_action
from shared.protocol import Bets, BetsAck, Done, DoneAck, ErrorCode, Hello, Welcome
from shared.tls import client_tls_context

logger = logging.getLogger(__name__)

#: Refusals that a fresh connection may get past (the server is busy, restarting,
#: or out of step with us); any other refusal ends the run.
RETRYABLE_CODES = frozenset(
    {
        ErrorCode.OUT_OF_SEQUENCE,
        ErrorCode.STORAGE_FAILURE,
        ErrorCode.SHUTTING_DOWN,
        ErrorCode.SUPERSEDED,
        ErrorCode.SERVER_BUSY,
    }
)
#: The exit code of an agency whose upload was cut short by the sales close.
SALES_CLOSED_EXIT = 3
#: Batches sent ahead of their acknowledgements. Two keep the server busy with
#: the next batch while the previous one is being made durable.
UPLOAD_WINDOW = 2
#: While the winners query waits for the draw, log `wait_draw` this often (seconds).
WAIT_LOG_S = 5.0
#: Failures another connection may get past (`run` catches UnexpectedReply and VersionMismatch first).
_CONNECTION_ERRORS = (ConnectFailed, PeerClosed, Timeout, ProtocolError)


class LotteryAgency:
    """Uploads one agency's bets from `source` and fetches its winners; `backoff` paces reconnections."""

    def __init__(self, config: ClientConfig, source: CsvBets, backoff: Backoff) -> None:
        self._config = config
        self._source = source
        self._backoff = backoff
        self._agency = config.client_id
        self._phase = "connect"
        #: The most bets the server has acknowledged in this run, and whether it acknowledged Done.
        self._acknowledged = 0
        self._done_acknowledged = False
        self._tls: ssl.SSLContext | None = None
        self._contest = b""
        #: (document, number) of every bet in the file, in order, once a pass over the whole file has seen them.
        self._bets: list[tuple[str, str]] | None = None
        self._total = 0
        #: Once told SALES_CLOSED: how many of its bets the server stores (None: sales were open).
        self._closed_with: int | None = None

    def run(self) -> int:
        """Do the whole job; returns the exit code (0 on success)."""
        config = self._config
        try:
            self._phase = "bets_file"
            self._source.check(allow_empty=config.allow_empty)
            self._total = self._source.count()
            self._phase = "connect"
            if config.tls_ca is not None and config.tls_cert is not None and config.tls_key is not None:
                self._tls = client_tls_context(config.tls_ca, config.tls_cert, config.tls_key)
        except (BetsFileError, ConfigError) as exc:
            return self._fail(exc)
        while True:
            try:
                winners = self._attempt()
            except UnexpectedReply as exc:
                resuming = self._phase == "resume"
                return self._fail(exc, **({"contest": self._contest.hex()} if resuming else {}))
            except (TlsRejected, VersionMismatch, BetsFileError) as exc:
                return self._fail(exc)
            except _CONNECTION_ERRORS as exc:
                error: LotteryError = exc
            except ServerRefused as exc:
                if exc.code == ErrorCode.SALES_CLOSED and self._closed_with is None:
                    self._closed_with = -1  # the next connection asks for the winners only
                    continue
                if exc.code not in RETRYABLE_CODES:
                    return self._fail(exc)
                error = exc
            else:
                documents, number = winners
                details = {"cant_ganadores": len(documents), "client_id": self._agency, "numero": number}
                log_action(logger, logging.INFO, "consulta_ganadores", Result.SUCCESS, **details)
                return 0 if self._closed_with is None else SALES_CLOSED_EXIT
            if not self._backoff.failed("connect", error):
                return self._fail(error, gave_up_after_s=self._config.retry_timeout.seconds)

    def _attempt(self) -> tuple[list[str], int]:
        self._phase = "connect"
        host, port = self._config.server_host, self._config.server_port
        with ServerConnection.open(host, port, self._config.reply_timeout.seconds, self._tls) as server:
            welcome = server.request(Hello(self._agency, self._total), Welcome)
            self._phase, self._contest = "resume", welcome.contest
            check_resume(welcome, self._source, self._agency)
            if self._closed_with == -1:
                self._closed_with = welcome.stored
                details = {"client_id": self._agency, "stored": welcome.stored, "total": self._total}
                log_action(logger, logging.WARNING, "upload", Result.FAIL, **details, error="sales closed")
            elif self._closed_with is None:
                self._upload_and_finish(server, welcome)
            self._phase = "consulta_ganadores"
            bets = self._own_bets()
            documents, count = frozenset(document for document, _ in bets), len(bets)
            reporter = gevent.spawn(self._report_waiting, WAIT_LOG_S)
            try:
                winners = server.query_winners(allowed=documents, limit=count)
            finally:
                reporter.kill(block=False)
            number = server.drawn or 0
            self._check_winners(winners, number)
            return winners, number

    def _check_winners(self, winners: list[str], number: int) -> None:
        """UnexpectedReply unless `winners` are exactly the documents of this agency's stored bets on `number`."""
        stored = self._own_bets()[: self._closed_with]  # after a close: those stored only
        expected = Counter(document for document, drawn in stored if int(drawn) == number)
        got = Counter(winners)
        missing, extra = sum((expected - got).values()), sum((got - expected).values())
        if missing or extra:
            detail = f"{missing} missing, {extra} extra or repeated"
            raise UnexpectedReply(f"the winners are not this agency's bets on number {number}: {detail}")

    def _upload_and_finish(self, server: ServerConnection, welcome: Welcome) -> None:
        if not welcome.done:
            self._phase = "apuesta_enviada"
            self._upload(server, welcome.stored)
        self._phase = "agency_done"
        server.request(Done(), DoneAck)
        if not self._done_acknowledged:  # progress only once: a server may ack Done and then fail for ever
            self._done_acknowledged = True
            self._backoff.succeeded()

    def _report_waiting(self, interval_s: float) -> None:
        """Log `wait_draw` every `interval_s` while the winners query waits (killed when it ends)."""
        waited = 0.0
        while True:
            gevent.sleep(interval_s)
            waited += interval_s
            log_action(
                logger, logging.INFO, "wait_draw", Result.IN_PROGRESS, client_id=self._agency, waited_s=round(waited, 3)
            )

    def _own_bets(self) -> list[tuple[str, str]]:
        """(document, number) of the file's bets: noted by an upload from the first row, else read once."""
        if self._bets is None:
            self._bets = [(bet.document, bet.number) for bet in self._source.rows()]
        return self._bets

    def _upload(self, server: ServerConnection, stored: int) -> None:
        index = stored
        # The `stored` count each batch on its way should be acknowledged with, oldest first.
        in_flight: collections.deque[int] = collections.deque()
        level = logging.INFO if self._config.single_bet is not None else logging.DEBUG
        # An upload from the first row reads the whole file: it notes the bets on the way.
        noted: list[tuple[str, str]] | None = [] if stored == 0 else None
        for batch in batches(self._source.rows(skip=stored), self._config.batch_max_amount):
            if noted is not None:
                noted.extend((bet.document, bet.number) for bet in batch)
            if logger.isEnabledFor(level):
                for bet in batch:
                    log_action(logger, level, "apuesta_enviada", Result.SUCCESS, dni=bet.document, numero=bet.number)
            server.send_message(Bets(index, tuple(batch)))
            index += len(batch)
            in_flight.append(index)
            if len(in_flight) == UPLOAD_WINDOW:
                self._take_ack(server, in_flight.popleft())
        if noted is not None:
            self._bets = noted
        while in_flight:
            self._take_ack(server, in_flight.popleft())
        log_action(
            logger, logging.INFO, "upload", Result.SUCCESS, client_id=self._agency, sent=index - stored, stored=index
        )

    def _take_ack(self, server: ServerConnection, expected: int) -> None:
        """Read the acknowledgement of the oldest batch on its way, which must count `expected` bets stored."""
        ack = server.expect(BetsAck)
        if ack.stored != expected:
            raise UnexpectedReply(f"server acknowledged {ack.stored} bets, expected {expected}")
        if expected > self._acknowledged:  # progress: bets never acknowledged before
            self._acknowledged = expected
            self._backoff.succeeded()

    def _fail(self, error: Exception, **details: object) -> int:
        log_action(logger, logging.ERROR, self._phase, Result.FAIL, client_id=self._agency, **details, error=error)
        return 1
