# Strategy: one AgencySession per protocol connection, run by that connection's
# greenlet, which owns the socket. The session is a small state machine:
#
#   AWAITING_HELLO --Hello--> RECEIVING_BETS --Done--> DONE
#                     \____________________________/^
#                      (Hello from an agency already done)
#
# `_HANDLERS` is the whole transition table: which message each state accepts
# and which method handles it. Anything else gets an Error and changes nothing.
# Errors are answered in place and the session goes on, except those after which
# the stream cannot be trusted (a malformed frame, an unknown agency), which
# close it.
#
# Limits: the session yields after every frame (fairness); the
# `max_refusals`-th refused frame closes it (TOO_MANY_REFUSALS); Hello must come
# within `hello_timeout_s`, then a frame that is not refused every
# `idle_timeout_s` (TOO_SLOW); an agency stores at most `max_bets_per_agency`
# bets (QUOTA_EXCEEDED). limits.ConnectionLimits keeps the deadline, the count
# and the bounded warnings.
#
# With TLS on, the agency is the one the peer's certificate names (agency-K):
# a Hello for any other agency is refused (NOT_AUTHORISED) and closes the
# connection before anything is read or stored. The message alone never
# decides who the peer is.
from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any, NoReturn

import gevent

from lottery_gevent.batches import BATCH_REFUSALS, build_bets, refusal_code
from lottery_gevent.config import ServerConfig
from lottery_gevent.limits import ConnectionLimits
from lottery_gevent.lottery import DrawFailed, Lottery
from lottery_gevent.registry import AgencyRegistry, EndSession
from lottery_gevent.storage import BetStore, StorageFailure
from shared.domain import agency_common_name
from shared.errors import LotteryError, PeerClosed, ProtocolError, Timeout
from shared.logs import Result, log_action
from shared.protocol import (
    Bets,
    BetsAck,
    Done,
    DoneAck,
    Error,
    ErrorCode,
    FrameDecoder,
    Hello,
    Message,
    Welcome,
    WinnersQuery,
    split_winners,
)
from shared.transport import Stream, send_message

logger = logging.getLogger(__name__)

#: How long a last Error message (before closing) may take to send.
LAST_WORD_TIMEOUT_S = 1.0


class SessionState(enum.Enum):
    AWAITING_HELLO = "awaiting_hello"
    RECEIVING_BETS = "receiving_bets"
    DONE = "done"


class _Close(LotteryError):
    """Raised inside a session after answering an error that ends it."""


class AgencySession:
    """The protocol conversation with one agency over one connection.

    Args:
        stream: the connection; the session's greenlet owns it.
        ip: the peer's address, for the log.
        store: the bet store.
        lottery: who is done, and the draw.
        registry: the one live session per agency.
        config: the server's settings (timeouts, agencies, limits).
        limits: the connection's deadline, refusals and log budgets (None: fresh
            ones, the Hello deadline counted from now).
    """

    def __init__(
        self,
        stream: Stream,
        ip: str,
        *,
        store: BetStore,
        lottery: Lottery,
        registry: AgencyRegistry,
        config: ServerConfig,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._stream = stream
        self._ip = ip
        self._store = store
        self._lottery = lottery
        self._registry = registry
        self._config = config
        self._decoder = FrameDecoder()
        self.state = SessionState.AWAITING_HELLO
        self.agency: int | None = None
        self._greenlet = gevent.getcurrent()
        #: True while a frame is being written (a kill then must not add another).
        self._sending = False
        self._limits = limits or ConnectionLimits(config, lambda: stream.bytes_received)

    # --- the loop ---------------------------------------------------------

    def run(self) -> None:
        """Serve the connection until it closes. Never raises for peer misbehaviour."""
        try:
            while True:
                message = self._limits.receive(self._stream, self._decoder, self.state is SessionState.AWAITING_HELLO)
                handler = _HANDLERS[self.state].get(type(message))
                if handler is None:
                    self._refuse_unexpected(message)
                else:
                    handler(self, message)
                self._limits.frame_handled()
                # Yield after every frame, so that a peer whose frames are always
                # ready cannot starve other connections' I/O or the signal handler.
                # sleep(0) does let the loop poll I/O and run signal watchers; measured
                # under a pipelining flood, the worst echo took 6-19 ms with it and
                # 21-46 ms with gevent.idle() (never answered with no yield at all).
                gevent.sleep(0)
        except PeerClosed as exc:
            if exc.mid_frame:
                self._log_end(logging.WARNING, Result.FAIL, f"truncated frame: {exc}")
            else:
                self._log_end(logging.INFO, Result.SUCCESS, "peer closed")
        except Timeout as exc:
            self._log_end(logging.WARNING, Result.FAIL, str(exc))
            self._try_send(Error(ErrorCode.TOO_SLOW, str(exc)))
        except ProtocolError as exc:
            self._log_end(logging.WARNING, Result.FAIL, f"{type(exc).__name__}: {exc}")
            self._try_send(Error(ErrorCode.MALFORMED_FRAME, f"{type(exc).__name__}: {exc}"))
        except _Close:
            pass
        except EndSession as exc:
            self._log_end(logging.INFO, Result.SUCCESS, exc.reason)
            if not self._sending:  # never cut into a frame already on its way
                self._try_send(Error(exc.code, exc.reason))
        finally:
            if self.agency is not None:
                self._registry.release(self.agency, self._greenlet)
            self._limits.log_summary(logger, ip=self._ip, agency=self.agency)

    # --- handlers ---------------------------------------------------------

    def _on_hello(self, message: Hello) -> None:
        agency = message.agency
        certified = self._stream.peer_name
        if self._config.tls_enabled and certified != agency_common_name(agency):
            detail = f"this connection's certificate is {certified!r}, not {agency_common_name(agency)!r}"
            self._limits.limit_log.log(
                logger, logging.WARNING, "identify", Result.FAIL, ip=self._ip, agency=agency, error=detail
            )
            self._try_send(Error(ErrorCode.NOT_AUTHORISED, detail))
            raise _Close
        if not self._lottery.knows(agency):
            detail = f"agency {agency} is not one of 1..{self._config.agencies}"
            self._limits.limit_log.log(
                logger, logging.WARNING, "identify", Result.FAIL, ip=self._ip, agency=agency, error=detail
            )
            self._try_send(Error(ErrorCode.UNKNOWN_AGENCY, detail))
            raise _Close
        self._registry.claim(agency, self._greenlet)
        self.agency = agency
        stored, digest = self._store.durable_resume(agency)
        done = self._lottery.is_done(agency)
        self.state = SessionState.DONE if done else SessionState.RECEIVING_BETS
        log_action(
            logger, logging.INFO, "identify", Result.SUCCESS, ip=self._ip, agency=agency, stored=stored, done=done
        )
        self._send(Welcome(stored, done, self._store.contest, digest))

    def _on_bets(self, batch: Bets) -> None:
        agency = self._require_agency()
        count = len(batch.bets)
        try:
            bets = build_bets(agency, batch, self._config.max_bets_per_agency)
            ticket = self._store.append(agency, batch.start, bets)
            self._store.wait_durable(ticket)
        except BATCH_REFUSALS as exc:
            self._refuse_batch(count, refusal_code(exc), str(exc))
            return
        if logger.isEnabledFor(logging.DEBUG):
            for bet in bets:
                log_action(
                    logger, logging.DEBUG, "apuesta_almacenada", Result.SUCCESS, dni=bet.document, numero=bet.number
                )
        log_action(logger, logging.INFO, "apuesta_recibida", Result.SUCCESS, cantidad=count, agency=agency)
        self._send(BetsAck(batch.start + count))

    def _on_bets_after_done(self, batch: Bets) -> None:
        self._refuse_batch(len(batch.bets), ErrorCode.BETS_AFTER_DONE, f"agency {self.agency} already sent Done")

    def _on_done(self, _: Done) -> None:
        agency = self._require_agency()
        try:
            self._lottery.mark_done(agency)
        except StorageFailure as exc:
            log_action(logger, logging.ERROR, "agency_done", Result.FAIL, agency=agency, error=exc)
            self._send(Error(ErrorCode.STORAGE_FAILURE, str(exc)))
            return
        if self.state is not SessionState.DONE:
            log_action(logger, logging.INFO, "agency_done", Result.SUCCESS, agency=agency)
        self.state = SessionState.DONE
        self._send(DoneAck())

    def _on_winners_query(self, _: WinnersQuery) -> None:
        agency = self._require_agency()
        if not self._lottery.await_draw(self._stream):
            self._refuse_while_waiting()
        try:
            documents = self._lottery.winners(agency)
        except DrawFailed as exc:
            self._send(Error(ErrorCode.DRAW_FAILED, str(exc)))
            return
        log_action(logger, logging.INFO, "winners_sent", Result.SUCCESS, cant_ganadores=len(documents), agency=agency)
        for part in split_winners(documents):
            self._send(part)

    # --- helpers ----------------------------------------------------------

    def _require_agency(self) -> int:
        assert self.agency is not None, "the transition table admits this only after Hello"
        return self.agency

    def _refuse_while_waiting(self) -> NoReturn:
        """The peer sent or closed while its winners query waits: end the session."""
        if not self._stream.peek_byte():
            raise PeerClosed()
        detail = "nothing may be sent while a winners query is pending"
        self._log_end(logging.WARNING, Result.FAIL, detail)
        self._try_send(Error(ErrorCode.UNEXPECTED_MESSAGE, detail))
        raise _Close

    def _refuse_batch(self, count: int, code: ErrorCode, detail: str) -> None:
        self._limits.warnings.log(
            logger, logging.WARNING, "apuesta_recibida", Result.FAIL, cantidad=count, agency=self.agency, error=detail
        )
        self._refuse(code, detail)

    def _refuse_unexpected(self, message: Message) -> None:
        detail = f"{type(message).__name__} is not allowed in state {self.state.value}"
        self._limits.warnings.log(
            logger, logging.WARNING, "unexpected_message", Result.FAIL, ip=self._ip, agency=self.agency, error=detail
        )
        self._refuse(ErrorCode.UNEXPECTED_MESSAGE, detail)

    def _refuse(self, code: ErrorCode, detail: str) -> None:
        """Answer a refused frame; the `max_refusals`-th closes the connection (raises _Close).

        A storage failure is the server's fault, not the peer's: it does not count.
        """
        self._send(Error(code, detail))
        if code is not ErrorCode.STORAGE_FAILURE and self._limits.refused():
            reason = f"{self._limits.refusals} refused frames; the last: {detail}"
            self._log_end(logging.WARNING, Result.FAIL, reason)
            self._try_send(Error(ErrorCode.TOO_MANY_REFUSALS, reason))
            raise _Close

    def _send(self, message: Message) -> None:
        # No try/finally on purpose: if the send is interrupted (a kill, a broken
        # connection) the flag stays set, since the frame on the wire is cut short.
        self._sending = True
        send_message(self._stream, message)
        self._sending = False

    def _try_send(self, message: Message) -> None:
        """Send a last message if the peer can still take it; never raises."""
        try:
            with gevent.Timeout(LAST_WORD_TIMEOUT_S, Timeout("send")):
                self._send(message)
        except (PeerClosed, Timeout):
            pass

    def _log_end(self, level: int, outcome: Result, reason: str) -> None:
        """The connection's close line; one that ends in failure goes through the server-wide limiter."""
        if outcome is Result.FAIL:
            self._limits.limit_log.log(
                logger, level, "close_connection", outcome, ip=self._ip, agency=self.agency, reason=reason
            )
        else:
            log_action(logger, level, "close_connection", outcome, ip=self._ip, agency=self.agency, reason=reason)


_Handler = Callable[[AgencySession, Any], None]

#: state -> {message class -> handler}. Messages missing here are refused.
_HANDLERS: dict[SessionState, dict[type, _Handler]] = {
    SessionState.AWAITING_HELLO: {Hello: AgencySession._on_hello},
    SessionState.RECEIVING_BETS: {
        Bets: AgencySession._on_bets,
        Done: AgencySession._on_done,
    },
    SessionState.DONE: {
        Bets: AgencySession._on_bets_after_done,
        Done: AgencySession._on_done,
        WinnersQuery: AgencySession._on_winners_query,
    },
}
