# The gevent StreamServer: one greenlet per connection, from a Pool.
# Guarantees: past `max_connections` (or `max_connections_per_ip` per address, or
# CONNECTIONS_PER_IDENTITY per certificate, after the handshake) a new connection
# gets Error(SERVER_BUSY), over TLS to a TLS peer, and is closed; those not yet
# past Hello hold UNAUTHENTICATED_SHARE of the pool, the oldest giving way; the
# first byte decides: the start byte is a session (TLS on: TLS_REQUIRED), a TLS
# handshake byte TLS then a session (TLS off: a fatal alert), else the inline
# echo; first byte, handshake and Hello all come within the Hello timeout of the
# accept; reload_crl (SIGHUP) refuses and ends revoked certificates; stop() ends
# every session (SHUTTING_DOWN) within STOP_TIMEOUT_S, then the lottery and store.
# Never: reads or writes a socket itself (shared.transport does).
from __future__ import annotations

import logging
import socket
import ssl
import time

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer

from lottery_gevent.config import ServerConfig
from lottery_gevent.echo import ECHO_LOG_BURST, serve_inline_echo
from lottery_gevent.lottery import Lottery
from lottery_gevent.policy import (
    CONNECTIONS_PER_IDENTITY,
    LAST_WORD_S,
    LIMIT_LOG_RATE_PER_S,
    UNAUTHENTICATED_SHARE,
    AddressCounter,
    ConnectionPolicy,
    LogLimiter,
    OldestFirst,
    certificate_log_limiter,
    server_log_limiter,
)
from lottery_gevent.registry import AgencyRegistry, EndSession
from lottery_gevent.revocation import tls_context
from lottery_gevent.session import AgencySession
from lottery_gevent.status import Metrics
from lottery_gevent.storage import BetStore
from shared.errors import ConfigError, PeerClosed, ProtocolError, Timeout, TlsRejected
from shared.logs import Result, log_action
from shared.protocol import START_BYTE, Error, ErrorCode, FrameDecoder
from shared.tls import TLS_HANDSHAKE_BYTE, TlsStream, refuse_tls_handshake, start_tls
from shared.transport import Stream, configure_stream, receive_message, send_message, within

logger = logging.getLogger(__name__)

#: Seconds stop() gives the sessions to end (and a superseded session to go).
STOP_TIMEOUT_S = 2.0
#: Handlers beyond max_connections, there only to refuse the excess at once.
REFUSING_HANDLERS = 16


class LotteryServer:
    """The lottery's TCP server: listener, connection pool, and agency registry.

    Raises:
        ConfigError: TLS is configured, and its files cannot be loaded.
    """

    def __init__(self, config: ServerConfig, store: BetStore, lottery: Lottery) -> None:
        self.config = config
        self.store = store
        self.lottery = lottery
        self._registry = AgencyRegistry(STOP_TIMEOUT_S)
        self._per_address = AddressCounter(config.max_connections_per_ip)
        #: Connections being served now.
        self.live = 0
        self.metrics = Metrics()
        self._per_identity = AddressCounter(CONNECTIONS_PER_IDENTITY)
        self._unauthenticated: OldestFirst[gevent.Greenlet] = OldestFirst(
            int(config.max_connections * UNAUTHENTICATED_SHARE)
        )
        #: The certificate serial number of each live TLS connection's greenlet.
        self._certified: dict[gevent.Greenlet, int] = {}
        #: Lines about refused, silent or misbehaving connections, which any number of peers can cause.
        self._limit_log = server_log_limiter()
        #: The inline echo's lines, on a budget of their own, and each certificate's refusals.
        self._echo_log = LogLimiter(ECHO_LOG_BURST, LIMIT_LOG_RATE_PER_S)
        self._certificate_logs: dict[str, LogLimiter] = {}
        self._tls, self._revoked = tls_context(config)
        self._pool = Pool(config.max_connections + REFUSING_HANDLERS)
        self._listener = StreamServer(
            (config.ip, config.port), self._handle, backlog=config.listen_backlog, spawn=self._pool
        )
        self._port = config.port

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self._port

    def connected_agencies(self) -> frozenset[int]:
        return self._registry.agencies()

    def start(self) -> None:
        """Bind and start accepting. Raises OSError if the address cannot be bound."""
        self._listener.start()
        self._port = self._listener.server_port
        log_action(logger, logging.INFO, "listen", Result.SUCCESS, ip=self.config.ip, port=self.port)

    def stop(self) -> None:
        """Stop accepting, end every connection within STOP_TIMEOUT_S, close the store."""
        self._listener.close()
        log_action(logger, logging.INFO, "close_listener", Result.SUCCESS, port=self.port)
        self._pool.kill(EndSession("server shutting down", ErrorCode.SHUTTING_DOWN), block=True, timeout=STOP_TIMEOUT_S)
        self.lottery.stop()
        self.store.close()

    def _handle(self, sock: socket.socket, address: tuple[str, int]) -> None:
        accepted_at = time.monotonic()
        ip = address[0]
        stream = Stream(sock)
        try:
            if not self._per_address.enter(ip):  # first: an address over its cap must not push others out
                cap = self.config.max_connections_per_ip
                stream = self._refuse(stream, ip, f"too many connections from {ip} (max {cap})")
                return
            try:
                full = self.live >= self.config.max_connections
                if full and not self._give_way(self._unauthenticated.evict()):  # those giving way count till they end
                    stream = self._refuse(stream, ip, f"too many connections (max {self.config.max_connections})")
                    return
                self.live += 1
                me = gevent.getcurrent()
                self._give_way(self._unauthenticated.admit(me))
                try:
                    configure_stream(sock)
                    stream = self._dispatch(stream, ip, accepted_at)
                finally:
                    self._unauthenticated.leave(me)
                    self.live -= 1
            finally:
                self._per_address.leave(ip)
        finally:
            stream.close()  # a TLS stream's socket is no longer the one the StreamServer closes

    def _give_way(self, oldest: gevent.Greenlet | None) -> bool:
        if oldest is not None:
            oldest.kill(EndSession("gave way to a newer connection", ErrorCode.SERVER_BUSY), block=False)
        return oldest is not None

    def _dispatch(self, stream: Stream, ip: str, accepted_at: float) -> Stream:
        """Serve one connection by its first byte; returns the stream to close (TLS may have replaced it)."""
        hello_by = accepted_at + self.config.hello_timeout_s
        silent = f"nothing received within {self.config.hello_timeout_s}s"
        try:
            with within(hello_by - time.monotonic(), silent):
                first = stream.peek_byte()
            if not first:
                raise PeerClosed()
            if first[0] == TLS_HANDSHAKE_BYTE and self._tls is not None:
                tls = self._start_tls(stream, self._tls, ip, hello_by)
                if tls is not None:
                    stream = tls
                    self._serve_certified(tls, ip, accepted_at)
            elif first[0] == TLS_HANDSHAKE_BYTE:
                self._refuse_tls(stream, ip)
            elif first[0] == START_BYTE and self._tls is not None:
                self._refuse_plaintext(stream, ip)
            elif first[0] == START_BYTE:
                self._serve_agency(stream, ip, accepted_at)
            else:
                serve_inline_echo(stream, ip, self._echo_log)
        except PeerClosed as exc:
            log_action(
                logger, logging.DEBUG, "close_connection", Result.SUCCESS, ip=ip, reason=f"nothing received: {exc}"
            )
        except Timeout:
            self._limit_log.log(logger, logging.INFO, "close_connection", Result.FAIL, ip=ip, reason=silent)
        except EndSession as exc:
            self._limit_log.log(logger, logging.INFO, "close_connection", Result.SUCCESS, ip=ip, reason=exc.reason)
        return stream

    def reload_crl(self) -> None:
        """Take the revocation list again (SIGHUP): new handshakes check it, revoked sessions end."""
        if self.config.tls_crl is None:
            return
        try:
            context, revoked = tls_context(self.config)
        except ConfigError as exc:
            log_action(logger, logging.ERROR, "reload_crl", Result.FAIL, error=exc)
            return
        self._tls, self._revoked = context, revoked
        ended = [greenlet for greenlet, serial in self._certified.items() if serial in revoked]
        for greenlet in ended:
            greenlet.kill(EndSession("the certificate was revoked", ErrorCode.NOT_AUTHORISED), block=False)
        log_action(logger, logging.INFO, "reload_crl", Result.SUCCESS, revoked=len(revoked), sessions_ended=len(ended))

    def _serve_certified(self, tls: TlsStream, ip: str, accepted_at: float) -> None:
        """A TLS session, unless its certificate already holds CONNECTIONS_PER_IDENTITY connections."""
        name = tls.peer_name or ""
        limiter = self._certificate_logs.setdefault(name, certificate_log_limiter())
        if tls.peer_serial in self._revoked:  # its handshake began before the list was reloaded
            limiter.log(logger, logging.WARNING, "identify", Result.FAIL, ip=ip, cert=name, error="revoked")
            return self._last_word(tls, Error(ErrorCode.NOT_AUTHORISED, "this certificate is revoked"))
        if not self._per_identity.enter(name):
            detail = f"certificate {name} already holds {CONNECTIONS_PER_IDENTITY} connections"
            limiter.log(logger, logging.WARNING, "accept_connection", Result.FAIL, ip=ip, cert=name, error=detail)
            return self._last_word(tls, Error(ErrorCode.SERVER_BUSY, detail))
        me = gevent.getcurrent()
        self._certified[me] = tls.peer_serial
        try:
            self._serve_agency(tls, ip, accepted_at, limiter)
        finally:
            del self._certified[me]
            self._per_identity.leave(name)

    def _serve_agency(self, stream: Stream, ip: str, accepted_at: float, limit_log: LogLimiter | None = None) -> None:
        me = gevent.getcurrent()
        policy = ConnectionPolicy(
            self.config,
            lambda: stream.bytes_received,
            limit_log or self._limit_log,
            accepted_at,
            on_identified=lambda: self._unauthenticated.leave(me),
        )
        AgencySession(
            stream, ip, store=self.store, lottery=self.lottery, registry=self._registry,
            config=self.config, policy=policy, metrics=self.metrics,
        ).run()

    def _start_tls(self, stream: Stream, context: ssl.SSLContext, ip: str, hello_by: float) -> TlsStream | None:
        """The handshake, by the Hello deadline; a failure is logged once, without a traceback (then None)."""
        try:
            with within(hello_by - time.monotonic(), f"no Hello within {self.config.hello_timeout_s}s"):
                return start_tls(stream, context)
        except (TlsRejected, PeerClosed, Timeout) as exc:
            reason = exc.__cause__ if isinstance(exc, PeerClosed) and exc.__cause__ is not None else exc
            self._limit_log.log(logger, logging.WARNING, "tls_handshake", Result.FAIL, ip=ip, error=reason)
            return None

    def _refuse_plaintext(self, stream: Stream, ip: str) -> None:
        """Read the peer's first frame (so that closing sends no RST over our reply), answer TLS_REQUIRED."""
        detail = "this server requires TLS: connect with the contest's CA and your agency's certificate"
        self._limit_log.log(
            logger, logging.WARNING, "identify", Result.FAIL, ip=ip, error="plaintext protocol connection"
        )
        frame_s = self.config.frame_timeout_s
        try:
            receive_message(stream, FrameDecoder(), frame_s, start_within_s=frame_s)
            send_message(stream, Error(ErrorCode.TLS_REQUIRED, detail), LAST_WORD_S)
        except (PeerClosed, Timeout, ProtocolError):
            pass

    def _refuse_tls(self, stream: Stream, ip: str) -> None:
        """A TLS handshake on a server with TLS off: say so once, answer with a fatal alert."""
        error = "the peer began a TLS handshake, but this server has TLS off (SERVER_TLS_CERT, _KEY, _CA unset)"
        self._limit_log.log(logger, logging.WARNING, "tls_handshake", Result.FAIL, ip=ip, error=error)
        try:
            refuse_tls_handshake(stream, self.config.frame_timeout_s)
        except (PeerClosed, Timeout, ProtocolError):
            pass

    def _refuse(self, stream: Stream, ip: str, detail: str) -> Stream:
        """Answer SERVER_BUSY (over TLS to a TLS peer); returns the stream to close."""
        self._limit_log.log(logger, logging.INFO, "accept_connection", Result.FAIL, ip=ip, error=detail)
        self.metrics.refused(ErrorCode.SERVER_BUSY)
        try:
            if self._tls is not None:
                with within(LAST_WORD_S, "no TLS handshake to refuse"):
                    if stream.peek_byte()[:1] == bytes([TLS_HANDSHAKE_BYTE]):
                        stream = start_tls(stream, self._tls)
        except (PeerClosed, Timeout, TlsRejected):
            return stream
        self._last_word(stream, Error(ErrorCode.SERVER_BUSY, detail))
        return stream

    def _last_word(self, stream: Stream, error: Error) -> None:
        """Send `error` if the peer takes it within LAST_WORD_S (the frame fits an empty send buffer)."""
        try:
            send_message(stream, error, LAST_WORD_S)
        except (PeerClosed, Timeout, ProtocolError):
            pass
