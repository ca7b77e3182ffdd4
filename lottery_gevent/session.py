# One AgencySession per protocol connection, run by its greenlet, which owns
# the stream. `_TRANSITIONS` is the whole state machine: for each (state,
# message type) the handler and the state it leads to; any other message is
# refused (UNEXPECTED_MESSAGE) and changes nothing.
# Guarantees: with TLS on, the agency is the one the certificate names
# (NOT_AUTHORISED otherwise, before anything is read or stored); a BetsAck is
# sent only once its batch is durable; refusals are answered in place and the
# MAX_REFUSALS-th closes the connection (TOO_MANY_REFUSALS); deadlines come
# from the ConnectionPolicy and refused frames never move them; the session
# yields after every frame.
# Never: raises for what the peer does, or decides from an error's text.
from __future__ import annotations

import enum
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import gevent

from lottery_gevent.batches import store_batch
from lottery_gevent.config import ServerConfig
from lottery_gevent.contract import LOTTERY_WINNER_NUMBER
from lottery_gevent.lottery import Lottery
from lottery_gevent.policy import LAST_WORD_S, ConnectionPolicy
from lottery_gevent.registry import AgencyRegistry, EndSession
from lottery_gevent.status import Metrics
from lottery_gevent.storage import BetStore, StorageFailure
from shared.domain import agency_common_name
from shared.errors import InvalidBet, PeerClosed, ProtocolError, ServerRefused, Timeout, TlsRejected
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
from shared.transport import Stream, receive_message, send_message

logger = logging.getLogger(__name__)


class SessionState(enum.Enum):
    AWAITING_HELLO = "awaiting_hello"
    RECEIVING_BETS = "receiving_bets"
    DONE = "done"
    CLOSED = "closed"


class AgencySession:
    """The protocol conversation with one agency over `stream`, which the session's greenlet owns.

    `policy` holds the connection's deadlines, refusals and log budgets (None: fresh, the Hello
    deadline counted from now); `metrics` counts refusals and ack latencies (None: a registry of its own).
    """

    def __init__(
        self, stream: Stream, ip: str, *, store: BetStore, lottery: Lottery, registry: AgencyRegistry,
        config: ServerConfig, policy: ConnectionPolicy | None = None, metrics: Metrics | None = None
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
        self._winners_sent = False
        self._policy = policy or ConnectionPolicy(config, lambda: stream.bytes_received)
        self._metrics = metrics or Metrics()

    def run(self) -> None:
        try:
            while self.state is not SessionState.CLOSED:
                self._step(receive_message(self._stream, self._decoder, *self._policy.read_bounds()))
                self._policy.frame_handled()
                gevent.sleep(0)  # a peer whose frames are always ready must not starve the others
        except TlsRejected as exc:  # a TLS alert from the peer after the handshake
            self._log_end(logging.WARNING, Result.FAIL, str(exc))
        except PeerClosed as exc:
            if isinstance(exc.__cause__, ssl.SSLError):  # a record that fails to decrypt, or worse
                self._log_end(logging.WARNING, Result.FAIL, f"TLS protocol violation: {exc.__cause__}")
            elif exc.mid_frame:
                self._log_end(logging.WARNING, Result.FAIL, f"truncated frame: {exc}")
            else:
                self._log_end(logging.INFO, Result.SUCCESS, "peer closed")
        except Timeout as exc:
            self._close(ErrorCode.TOO_SLOW, str(exc))
        except ProtocolError as exc:
            self._close(ErrorCode.MALFORMED_FRAME, str(exc))
        except EndSession as exc:
            self._log_end(logging.INFO, Result.SUCCESS, exc.reason)
            self._try_send(Error(exc.code, exc.reason))
        finally:
            if self.agency is not None:
                self._registry.release(self.agency, self._greenlet)
            self._policy.log_summary(logger, ip=self._ip, agency=self.agency)

    def _step(self, message: Message) -> None:
        """Apply one transition; a refusal leaves the state as it was."""
        handler, target = _TRANSITIONS.get((self.state, type(message)), (None, self.state))
        if handler is None:
            detail = f"{type(message).__name__} is not allowed in state {self.state.value}"
            self._refuse(ServerRefused(ErrorCode.UNEXPECTED_MESSAGE, detail), "unexpected_message")
            return
        before = self.state
        try:
            handler(self, message)
        except ServerRefused as exc:
            if isinstance(message, Bets):
                self._refuse(exc, "apuesta_recibida", cantidad=len(message.bets))
            else:
                self._refuse(exc, "refuse")
            return
        if self.state is before:  # a handler that closed, or knew better (Hello of a done agency), has set it
            self.state = target

    def _on_hello(self, message: Hello) -> None:
        agency = message.agency
        certified = self._stream.peer_name
        if self._config.tls_enabled and certified != agency_common_name(agency):
            detail = f"this connection's certificate is {certified!r}, not {agency_common_name(agency)!r}"
            self._close(ErrorCode.NOT_AUTHORISED, detail, action="identify", agency=agency)
            return
        if not self._lottery.knows(agency):
            detail = f"agency {agency} is not one of 1..{self._config.agencies}"
            self._close(ErrorCode.UNKNOWN_AGENCY, detail, action="identify", agency=agency)
            return
        self.agency = agency  # before the claim, which may block: a session ended meanwhile still releases it
        self._registry.claim(agency, self._greenlet)
        if message.total:
            self._lottery.totals[agency] = message.total
        self._policy.identified()
        try:
            stored, digest = self._store.durable_resume(agency)
        except StorageFailure as exc:  # the store has failed: the server is ending
            self._close(ErrorCode.STORAGE_FAILURE, str(exc), action="identify", agency=agency)
            return
        done = self._lottery.is_done(agency)
        if done:
            self.state = SessionState.DONE
        log_action(
            logger, logging.INFO, "identify", Result.SUCCESS, ip=self._ip, agency=agency, stored=stored, done=done
        )
        self._send(Welcome(stored, done, self._store.contest, digest))

    def _on_bets(self, batch: Bets) -> None:
        agency, received_at = self._agency(), time.monotonic()
        if not self._lottery.sales_open:
            raise ServerRefused(ErrorCode.SALES_CLOSED, "sales are closed: nothing of the batch was stored")
        try:
            bets = store_batch(self._store, agency, batch, self._config.max_bets_per_agency)
        except InvalidBet as exc:
            raise ServerRefused(ErrorCode.INVALID_BET, str(exc)) from exc
        except StorageFailure as exc:
            raise ServerRefused(ErrorCode.STORAGE_FAILURE, str(exc)) from exc
        if logger.isEnabledFor(logging.DEBUG):
            for bet in bets:
                log_action(
                    logger, logging.DEBUG, "apuesta_almacenada", Result.SUCCESS, dni=bet.document, numero=bet.number
                )
        log_action(logger, logging.INFO, "apuesta_recibida", Result.SUCCESS, cantidad=len(bets), agency=agency)
        self._send(BetsAck(batch.start + len(bets)))
        self._metrics.ack_latency.observe(time.monotonic() - received_at)

    def _on_bets_after_done(self, batch: Bets) -> None:
        raise ServerRefused(ErrorCode.BETS_AFTER_DONE, f"agency {self.agency} already sent Done")

    def _on_done(self, _: Done) -> None:
        agency = self._agency()
        try:
            self._lottery.mark_done(agency)
        except StorageFailure as exc:
            log_action(logger, logging.ERROR, "agency_done", Result.FAIL, agency=agency, error=exc)
            raise ServerRefused(ErrorCode.STORAGE_FAILURE, str(exc)) from exc
        if self.state is not SessionState.DONE:
            log_action(logger, logging.INFO, "agency_done", Result.SUCCESS, agency=agency)
        self._send(DoneAck())

    def _on_early_winners_query(self, query: WinnersQuery) -> None:
        """Before Done, the winners are asked for only once sales are closed."""
        if self._lottery.sales_open:
            raise ServerRefused(ErrorCode.UNEXPECTED_MESSAGE, "WinnersQuery before Done while sales are open")
        self._on_winners_query(query)

    def _on_winners_query(self, _: WinnersQuery) -> None:
        agency = self._agency()
        if self._winners_sent:  # once per connection: a repeated query would buy log lines and winners for 5 bytes
            raise ServerRefused(ErrorCode.UNEXPECTED_MESSAGE, "the winners were already sent on this connection")
        sent = self._lottery.await_draw(self._stream.peek_byte)  # the peer sending or closing ends the wait
        if sent is not None:
            if sent:
                self._close(ErrorCode.UNEXPECTED_MESSAGE, "nothing may be sent while a winners query is pending")
                return
            raise PeerClosed()
        try:
            documents = self._lottery.winners(agency)
        except StorageFailure as exc:
            raise ServerRefused(ErrorCode.DRAW_FAILED, str(exc)) from exc
        log_action(logger, logging.INFO, "winners_sent", Result.SUCCESS, cant_ganadores=len(documents), agency=agency)
        for part in split_winners(documents, LOTTERY_WINNER_NUMBER):
            self._send(part)
        self._winners_sent = True

    def _agency(self) -> int:
        assert self.agency is not None, "the transition table admits this only after Hello"
        return self.agency

    def _refuse(self, refusal: ServerRefused, action: str, **details: object) -> None:
        """Answer a refused frame; the MAX_REFUSALS-th closes (our own failures do not count)."""
        details.update(ip=self._ip, agency=self.agency, error=refusal.detail)
        self._policy.warnings.log(logger, logging.WARNING, action, Result.FAIL, **details)
        self._metrics.refused(refusal.code)
        self._send(Error(ErrorCode(refusal.code), refusal.detail))
        if refusal.code not in _OURS and self._policy.refused():
            reason = f"{self._policy.refusals} refused frames; the last: {refusal.detail}"
            self._close(ErrorCode.TOO_MANY_REFUSALS, reason)

    def _close(self, code: ErrorCode, detail: str, action: str = "close_connection", agency: int | None = None) -> None:
        """Log why, tell the peer if it still listens, and end the session."""
        self._log_end(logging.WARNING, Result.FAIL, detail, action, agency)
        self._metrics.refused(code)
        self._try_send(Error(code, detail))
        self.state = SessionState.CLOSED

    def _send(self, message: Message) -> None:
        # No try/finally on purpose: an interrupted send leaves a cut frame on the wire.
        self._sending = True
        send_message(self._stream, message, self._config.frame_timeout_s)
        self._sending = False

    def _try_send(self, message: Message) -> None:
        if self._sending:  # a frame was cut short: nothing after it can be read
            return
        try:
            send_message(self._stream, message, LAST_WORD_S)
        except (PeerClosed, Timeout):
            pass

    def _log_end(
        self, level: int, outcome: Result, reason: str, action: str = "close_connection", agency: int | None = None
    ) -> None:
        """The closing line, naming the certificate if any; a failure, or an end before Hello, is limited."""
        details: dict[str, object] = {"ip": self._ip, "agency": agency or self.agency, "reason": reason}
        if self._stream.peer_name:
            details["cert"] = self._stream.peer_name
        if outcome is Result.FAIL or self.agency is None:  # any peer can cause these
            self._policy.limit_log.log(logger, level, action, outcome, **details)
        else:
            log_action(logger, level, action, outcome, **details)


_Handler = Callable[[AgencySession, Any], None]
S = SessionState
#: Refusals that are the server's fault, not the peer's: they never count towards MAX_REFUSALS.
_OURS = (ErrorCode.STORAGE_FAILURE, ErrorCode.DRAW_FAILED)

#: (state, message type) -> (handler, next state). Whatever is missing is refused. A handler
#: that closes goes to CLOSED; Hello from an agency already done goes to DONE.
_TRANSITIONS: dict[tuple[SessionState, type], tuple[_Handler, SessionState]] = {
    (S.AWAITING_HELLO, Hello): (AgencySession._on_hello, S.RECEIVING_BETS),
    (S.RECEIVING_BETS, Bets): (AgencySession._on_bets, S.RECEIVING_BETS),
    (S.RECEIVING_BETS, Done): (AgencySession._on_done, S.DONE),
    (S.RECEIVING_BETS, WinnersQuery): (AgencySession._on_early_winners_query, S.RECEIVING_BETS),
    (S.DONE, Bets): (AgencySession._on_bets_after_done, S.DONE),
    (S.DONE, Done): (AgencySession._on_done, S.DONE),
    (S.DONE, WinnersQuery): (AgencySession._on_winners_query, S.DONE),
}
