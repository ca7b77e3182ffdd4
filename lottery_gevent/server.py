# Strategy: the gevent StreamServer, and the wiring of one connection.
#
#   - One greenlet per connection, spawned from a gevent Pool that bounds how
#     many run at once. When the pool is full the server still accepts, but
#     closes the new connection at once (and logs it) instead of leaving it
#     queued in the kernel's backlog.
#   - Each address may hold at most `max_connections_per_ip` of them; one more
#     is refused the same way, by its own handler, which never blocks on it.
#     Refusals are logged at INFO through one server-wide RateLimiter, as are
#     connections that stay silent past the Hello timeout.
#   - The handler peeks at the first byte: the protocol's start byte means an
#     agency session (session.py), anything else an inline echo (echo.py). The
#     byte stays in the stream for whoever reads it next.
#   - With TLS on (SERVER_TLS_*), a first byte 0x16 is a TLS handshake: bounded
#     by the frame timeout, logged at WARNING if it fails (through the same
#     RateLimiter: any peer can fail one), and followed by an agency session
#     over the TLS stream, which knows the peer's certificate name. A plaintext
#     protocol connection gets Error(TLS_REQUIRED) and is closed. The inline
#     echo stays plaintext on the same port. With TLS off, a handshake is
#     logged once and answered with a fatal TLS alert, so that an agency set up
#     for TLS stops at once instead of retrying.
#   - Sessions get what they need (store, lottery, the agency registry of
#     registry.py, the config) and never see the server.
#   - stop(): close the listener, end every session (also those waiting on the
#     draw), wait a bounded time, then flush and close the store.
from __future__ import annotations

import logging
import socket
import ssl
import time
from typing import Any

from gevent.pool import Pool
from gevent.server import StreamServer

from lottery_gevent.config import ServerConfig
from lottery_gevent.echo import serve_inline_echo
from lottery_gevent.limits import (
    LIMIT_LOG_BURST,
    LIMIT_LOG_RATE_PER_S,
    AddressCounter,
    ConnectionLimits,
    RateLimiter,
)
from lottery_gevent.lottery import Lottery
from lottery_gevent.registry import AgencyRegistry, EndSession
from lottery_gevent.session import AgencySession
from lottery_gevent.storage import BetStore
from shared.errors import LotteryError, PeerClosed, ProtocolError, Timeout, TlsRejected
from shared.logs import Result, log_action
from shared.protocol import START_BYTE, Error, ErrorCode, FrameDecoder, encode
from shared.transport import (
    TLS_HANDSHAKE_BYTE,
    Stream,
    configure_stream,
    receive_message,
    refuse_tls_handshake,
    send_message,
    server_tls_context,
)

logger = logging.getLogger(__name__)


class _HandshakeFailed(LotteryError):
    """A TLS handshake failed, and was logged."""


class _RefusingStreamServer(StreamServer):  # type: ignore[misc]
    """A StreamServer that refuses connections beyond its pool instead of queueing them.

    gevent's own behaviour with a full pool is to stop accepting, which leaves
    new peers waiting in the backlog for as long as the pool stays full.
    """

    def __init__(self, *args: Any, on_full: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_full = on_full
        # set_spawn() made `full` the pool's; keep accepting and decide per connection.
        self.full = lambda: False

    def do_handle(self, *args: Any) -> None:
        if self.pool.full():
            self._on_full(*args)
        else:
            super().do_handle(*args)


class LotteryServer:
    """The lottery's TCP server: listener, connection pool, and agency registry.

    Args:
        config: the server's settings.
        store: the bet store, already open.
        lottery: the draw barrier over that store.

    Raises:
        TlsSetupFailed: TLS is configured, and its files cannot be loaded.
    """

    def __init__(self, config: ServerConfig, store: BetStore, lottery: Lottery) -> None:
        self.config = config
        self.store = store
        self.lottery = lottery
        self._registry = AgencyRegistry(config.stop_timeout_s)
        self._per_address = AddressCounter(config.max_connections_per_ip)
        #: Lines about refused, silent or misbehaving connections, which any number of peers can cause.
        self._limit_log = RateLimiter(LIMIT_LOG_RATE_PER_S, LIMIT_LOG_BURST)
        self._tls: ssl.SSLContext | None = None
        if config.tls_cert is not None and config.tls_key is not None and config.tls_ca is not None:
            self._tls = server_tls_context(config.tls_cert, config.tls_key, config.tls_ca)
        self._pool = Pool(config.max_connections)
        self._port = config.port
        self._listener = _RefusingStreamServer(
            (config.ip, config.port),
            self._handle,
            backlog=config.listen_backlog,
            spawn=self._pool,
            on_full=self._refuse,
        )

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self._port

    def start(self) -> None:
        """Bind and start accepting. Raises OSError if the address cannot be bound."""
        self._listener.start()
        self._port = self._listener.server_port
        log_action(logger, logging.INFO, "listen", Result.SUCCESS, ip=self.config.ip, port=self.port)

    def stop(self) -> None:
        """Stop accepting, end every connection within the stop timeout, close the store."""
        self._listener.close()
        log_action(logger, logging.INFO, "close_listener", Result.SUCCESS, port=self.port)
        self._pool.kill(
            EndSession("server shutting down", ErrorCode.SHUTTING_DOWN), block=True, timeout=self.config.stop_timeout_s
        )
        self.lottery.stop()
        self.store.close()

    # --- connections ------------------------------------------------------

    def _handle(self, sock: socket.socket, address: tuple[str, int]) -> None:
        ip = address[0]
        accepted_at = time.monotonic()
        if not self._per_address.enter(ip):
            self._refuse(sock, address, f"too many connections from {ip} (max {self.config.max_connections_per_ip})")
            return
        try:
            self._serve(sock, ip, accepted_at)
        finally:
            self._per_address.leave(ip)

    def _serve(self, sock: socket.socket, ip: str, accepted_at: float) -> None:
        configure_stream(sock)
        stream = Stream(sock)
        stream.settimeout(self.config.hello_timeout_s)
        try:
            first = stream.peek_byte()
            if not first:
                raise PeerClosed()
            if first[0] == TLS_HANDSHAKE_BYTE and self._tls is not None:
                stream = self._start_tls(stream, self._tls, ip)
                self._serve_agency(stream, ip, accepted_at)
            elif first[0] == TLS_HANDSHAKE_BYTE:
                self._refuse_tls(stream, ip)
            elif first[0] == START_BYTE and self._tls is not None:
                self._refuse_plaintext(stream, ip)
            elif first[0] == START_BYTE:
                self._serve_agency(stream, ip, accepted_at)
            else:
                serve_inline_echo(stream, ip, self.config.echo_max_bytes, self.config.echo_timeout_s)
        except _HandshakeFailed:
            pass
        except PeerClosed as exc:
            log_action(
                logger, logging.DEBUG, "close_connection", Result.SUCCESS, ip=ip, reason=f"nothing received: {exc}"
            )
        except Timeout:
            reason = f"nothing received within {self.config.hello_timeout_s}s"
            self._limit_log.log(logger, logging.INFO, "close_connection", Result.FAIL, ip=ip, reason=reason)
        except EndSession as exc:
            log_action(logger, logging.INFO, "close_connection", Result.SUCCESS, ip=ip, reason=exc.reason)
        finally:
            stream.close()  # a TLS stream's socket is no longer the one the StreamServer closes

    def _serve_agency(self, stream: Stream, ip: str, accepted_at: float) -> None:
        AgencySession(
            stream,
            ip,
            store=self.store,
            lottery=self.lottery,
            registry=self._registry,
            config=self.config,
            limits=ConnectionLimits(self.config, lambda: stream.bytes_received, self._limit_log, accepted_at),
        ).run()

    def _start_tls(self, stream: Stream, context: ssl.SSLContext, ip: str) -> Stream:
        """The handshake, bounded by the frame timeout; a failure is logged once, without a traceback."""
        try:
            return stream.start_tls(context, timeout=self.config.frame_timeout_s)
        except (TlsRejected, PeerClosed, Timeout) as exc:
            reason = exc.__cause__ if isinstance(exc, PeerClosed) and exc.__cause__ is not None else exc
            self._limit_log.log(logger, logging.WARNING, "tls_handshake", Result.FAIL, ip=ip, error=reason)
            raise _HandshakeFailed from exc

    def _refuse_plaintext(self, stream: Stream, ip: str) -> None:
        """Read the peer's first frame (so that closing sends no RST over our reply), answer TLS_REQUIRED, close."""
        detail = "this server requires TLS: connect with the contest's CA and your agency's certificate"
        error = "plaintext protocol connection"
        self._limit_log.log(logger, logging.WARNING, "identify", Result.FAIL, ip=ip, error=error)
        try:
            receive_message(stream, FrameDecoder(), self.config.frame_timeout_s)
            stream.settimeout(self.config.frame_timeout_s)
            send_message(stream, Error(ErrorCode.TLS_REQUIRED, detail))
        except (PeerClosed, Timeout, ProtocolError):
            pass

    def _refuse_tls(self, stream: Stream, ip: str) -> None:
        """A TLS handshake on a server with TLS off: say so once, answer with a fatal alert, close."""
        error = "the peer began a TLS handshake, but this server has TLS off (SERVER_TLS_CERT, _KEY, _CA unset)"
        self._limit_log.log(logger, logging.WARNING, "tls_handshake", Result.FAIL, ip=ip, error=error)
        try:
            refuse_tls_handshake(stream, self.config.frame_timeout_s)
        except (PeerClosed, Timeout, ProtocolError):
            pass

    def _refuse(self, sock: socket.socket, address: tuple[str, int], detail: str | None = None) -> None:
        """Close an excess connection at once, with SERVER_BUSY. Runs in the accept path: never blocks."""
        if detail is None:
            detail = f"too many connections (max {self.config.max_connections})"
        self._limit_log.log(logger, logging.INFO, "accept_connection", Result.FAIL, ip=address[0], error=detail)
        with Stream(sock) as stream:
            stream.send_nowait(encode(Error(ErrorCode.SERVER_BUSY, detail)))
