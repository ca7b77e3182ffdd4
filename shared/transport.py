# Strategy: the only module that touches a socket. Everything above it (the
# server's sessions, the inline echo, the client) holds a `Stream` and calls
# its methods; nobody else calls send/recv, peeks, switches a socket to
# non-blocking or starts a loop watcher.
#
# The loops are explicit, because TCP delivers a stream, not messages:
#
#   - send() may accept only part of the data: `send_all` slices off what was
#     sent and sends the rest;
#   - recv() may return fewer bytes than asked, and b"" means the peer closed:
#     `recv_exact` keeps reading until it has exactly `size` bytes, and raises
#     PeerClosed (with what did arrive) on an early EOF.
#
# OSError and socket timeouts are translated here, and only here, into
# shared.errors types, by one context manager (`_translated`), always with
# `raise ... from exc`. A Stream wraps a gevent socket, or anything with the
# same send/recv/timeout behaviour (the tests' fake sockets).
#
# TLS is a stream that wraps a stream: `Stream.start_tls` hands the socket to
# gevent's SSLSocket (cooperative; it reads the socket itself, which is why the
# server only ever *peeks* at the first byte before deciding) and returns a
# TlsStream, which the codec and the sessions use exactly like a Stream. TLS 1.3
# is the floor on both ends, which we own: before 1.3 the client certificate
# travels in clear, telling a watcher which agency connects. An SSLSocket cannot
# MSG_PEEK, so TlsStream reads the peeked byte ahead and holds it, and its
# wait_readable looks at OpenSSL's buffer (`pending()`) and at whether the bytes
# on the socket decrypt to data. A bare TCP close without close_notify (a
# "ragged EOF") reads as EOF, as on a plain socket: our frames are
# length-prefixed and the protocol has its own end (DoneAck, Winners(more=0)),
# so a truncated stream shows up as a cut frame or a missing reply, never as a
# shorter valid message.
from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import gevent
from gevent import socket as gsocket
from gevent import ssl as gssl
from gevent.event import Event

from shared.errors import (
    ConnectFailed,
    FrameTooLarge,
    LineTooLong,
    PeerClosed,
    Timeout,
    TlsRejected,
    TlsSetupFailed,
)
from shared.protocol import FrameDecoder, Message, encode

#: TCP keepalive, so that a peer that vanished without a FIN is noticed even by a
#: connection that is only waiting (for the draw): first probe after this many
#: idle seconds, then every KEEPALIVE_INTERVAL_S, giving up after KEEPALIVE_PROBES.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_PROBES = 3
#: The first byte of a TLS handshake record (ContentType handshake).
TLS_HANDSHAKE_BYTE = 0x16
#: A TLS record header: content type, legacy version (2 bytes), length (2 bytes).
_TLS_RECORD_HEADER = struct.Struct(">BHH")
#: The longest plaintext record (a ClientHello is one): 2**14 bytes.
_TLS_MAX_RECORD = 2**14
#: A plaintext fatal alert record, handshake_failure (40): what a server without
#: TLS answers a ClientHello with, so that the agency stops at once instead of
#: retrying a server that will never speak TLS.
TLS_HANDSHAKE_FAILURE_ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40])
#: The oldest TLS version either end accepts.
TLS_MINIMUM_VERSION = ssl.TLSVersion.TLSv1_3


class RawSocket(Protocol):
    """What a Stream needs from a socket."""

    def send(self, data: bytes | memoryview, /) -> int: ...

    def recv(self, size: int, flags: int = 0, /) -> bytes: ...

    def settimeout(self, timeout: float | None, /) -> None: ...

    def gettimeout(self) -> float | None: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


class Waitable(Protocol):
    """A gevent Event or AsyncResult: something a greenlet can be woken by."""

    def ready(self) -> bool: ...

    def rawlink(self, callback: Callable[[Any], None], /) -> None: ...

    def unlink(self, callback: Callable[[Any], None], /) -> None: ...


@contextlib.contextmanager
def _translated(what: str, partial: bytes = b"", expected: int = 0) -> Iterator[None]:
    """Turn socket and TLS errors into shared.errors.

    TimeoutError -> Timeout; a certificate that fails verification, or a TLS
    alert from the peer -> TlsRejected; any other OSError (ssl.SSLError
    included: a broken record is a broken connection) -> PeerClosed.

    Args:
        what: the operation, for the Timeout's message.
        partial, expected: the read in progress, carried by PeerClosed.
    """
    try:
        yield
    except TimeoutError as exc:
        raise Timeout(f"{what} timed out") from exc
    except ssl.SSLCertVerificationError as exc:
        raise TlsRejected(f"the peer's certificate did not verify: {exc.verify_message}") from exc
    except ssl.SSLError as exc:
        reason = str(getattr(exc, "reason", None) or "")  # OpenSSL's name for it, when it gave one
        if "ALERT" not in reason:
            raise PeerClosed(partial, expected) from exc
        raise TlsRejected(f"the peer refused the TLS handshake: {reason.lower()}") from exc
    except OSError as exc:
        raise PeerClosed(partial, expected) from exc


def configure_stream(sock: socket.socket) -> None:
    """Disable Nagle (small request/response frames) and enable TCP keepalive."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


class Stream:
    """One connected byte stream. It owns its socket: `close()` closes it.

    Args:
        sock: a connected gevent socket (or a fake with the same behaviour).
    """

    def __init__(self, sock: RawSocket) -> None:
        self._sock = sock
        #: Bytes read from the peer so far (a peek does not count): what log budgets are measured in.
        self.bytes_received = 0

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- settings ---------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        """Bound every later wait for the peer (None: wait for ever)."""
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def close(self) -> None:
        self._sock.close()

    @property
    def peer_name(self) -> str | None:
        """The subject CN of the peer's verified certificate; None on a plain stream."""
        return None

    def start_tls(
        self, context: ssl.SSLContext, *, timeout: float | None, server_hostname: str | None = None
    ) -> TlsStream:
        """Run a TLS handshake over this stream, within `timeout` seconds; the TlsStream takes the socket over.

        Args:
            context: from `server_tls_context` (then leave `server_hostname` out)
                or `client_tls_context`.
            timeout: the whole handshake's bound, however the peer trickles it.
            server_hostname: a client's name for the server, checked against its certificate.

        Raises:
            TlsRejected: a certificate did not verify, or the peer refused ours.
            PeerClosed: the connection broke, or the peer spoke no TLS.
            Timeout: the handshake did not complete within `timeout`.
            (The socket is closed in every case.)
        """
        sock = cast(socket.socket, self._sock)
        server_side = server_hostname is None
        tls = context.wrap_socket(
            sock, server_side=server_side, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        try:
            with gevent.Timeout(timeout, Timeout(f"TLS handshake not complete within {timeout}s")):
                with _translated("TLS handshake"):
                    tls.do_handshake()
        except BaseException:
            tls.close()
            raise
        return TlsStream(tls)

    # --- writing ----------------------------------------------------------

    def send_all(self, data: bytes) -> None:
        """Write all of `data`, however many send() calls that takes.

        Raises:
            Timeout: the timeout expired before everything was sent.
            PeerClosed: the connection broke.
        """
        view = memoryview(data)
        while view:
            with _translated("send", expected=len(data)):
                sent = self._sock.send(view)
            view = view[sent:]

    def send_nowait(self, data: bytes) -> bool:
        """Send what fits into the socket buffer at once, never blocking or raising.

        For a last word to a peer that is being refused (the accept path must
        not block): a short frame always fits an empty send buffer.

        Returns:
            True if every byte was handed to the kernel.
        """
        try:
            self._sock.settimeout(0.0)
            return self._sock.send(data) == len(data)
        except OSError:
            return False

    # --- reading ----------------------------------------------------------

    def recv_some(self, size: int, partial: bytes = b"", expected: int = 0) -> bytes:
        """One recv() of at most `size` bytes; b"" means EOF.

        `partial` and `expected` only describe the read in progress, for the
        errors: PeerClosed carries them, Timeout names them.
        """
        with _translated("recv", partial, expected):
            chunk = self._sock.recv(size)
        self.bytes_received += len(chunk)
        return chunk

    def recv_exact(self, size: int) -> bytes:
        """Read exactly `size` bytes, however many recv() calls that takes.

        Raises:
            PeerClosed: EOF (or a broken connection) before `size` bytes arrived;
                `partial` holds those that did.
            Timeout: the timeout expired between two chunks.
        """
        chunks: list[bytes] = []
        received = 0
        while received < size:
            chunk = self.recv_some(size - received, b"".join(chunks), size)
            if not chunk:
                raise PeerClosed(b"".join(chunks), size)
            chunks.append(chunk)
            received += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def recv_line(self, max_bytes: int) -> bytes:
        """Read up to and including the first b"\\n", or until EOF, at most `max_bytes`.

        Returns what arrived (possibly without a newline if the peer closed first;
        possibly empty). Bytes after the newline in the same chunk are dropped.

        Raises:
            LineTooLong: `max_bytes` arrived without a newline.
            Timeout: the timeout expired first.
            PeerClosed: the connection broke.
        """
        line = bytearray()
        while len(line) < max_bytes:
            chunk = self.recv_some(max_bytes - len(line), bytes(line), max_bytes)
            if not chunk:
                return bytes(line)
            end = chunk.find(b"\n")
            if end >= 0:
                line += chunk[: end + 1]
                return bytes(line)
            line += chunk
        raise LineTooLong(f"line longer than {max_bytes} bytes")

    def peek_byte(self) -> bytes:
        """The next byte, left in the stream for the next read; b"" on EOF.

        Waits as long as the timeout allows.

        Raises:
            Timeout, PeerClosed.
        """
        with _translated("waiting for the first byte", expected=1):
            return self._sock.recv(1, socket.MSG_PEEK)

    def wait_readable(self, until: Waitable) -> bool:
        """Block until the peer sends or closes (True), or until `until` is ready (False).

        No timeout applies: the caller's `until` (a draw, a shutdown) ends the wait.
        If both happen, `until` wins.
        """
        if until.ready():
            return False
        wake = Event()

        def on_ready(_: Any) -> None:
            wake.set()

        watcher = gevent.get_hub().loop.io(self._sock.fileno(), 1)
        watcher.start(wake.set)
        until.rawlink(on_ready)
        try:
            wake.wait()
        finally:
            watcher.stop()
            watcher.close()
            until.unlink(on_ready)
        return not until.ready()


class TlsStream(Stream):
    """A Stream over a gevent SSLSocket whose handshake is done (see `Stream.start_tls`)."""

    def __init__(self, sock: gssl.SSLSocket) -> None:
        super().__init__(sock)
        self._tls = sock
        #: A byte read ahead by peek_byte or wait_readable, returned by the next read.
        self._held = b""

    @property
    def peer_name(self) -> str | None:
        certificate = self._tls.getpeercert() or {}
        names = [value for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName"]
        return names[0] if len(names) == 1 else ""

    def recv_some(self, size: int, partial: bytes = b"", expected: int = 0) -> bytes:
        if self._held:
            held, self._held = self._held[:size], self._held[size:]
            return held
        return super().recv_some(size, partial, expected)

    def peek_byte(self) -> bytes:
        if not self._held:
            self._held = super().recv_some(1, expected=1)
        return self._held[:1]

    def wait_readable(self, until: Waitable) -> bool:
        # The socket may be readable with a record that holds no data (a TLS 1.3
        # key update, say): only decrypted data, or EOF, counts as readable.
        while not until.ready():
            if self._held or self._tls.pending() or self._read_ahead():
                return True
            if not super().wait_readable(until):
                return False
        return False

    def _read_ahead(self) -> bool:
        """Read one byte if one can be decrypted without waiting; True if one was, or the stream ended."""
        timeout = self._tls.gettimeout()
        self._tls.settimeout(0.0)
        try:
            self._held = self._tls.recv(1)
        except ssl.SSLWantReadError:
            return False
        except OSError:
            return True  # broken: the next read reports it
        finally:
            self._tls.settimeout(timeout)
        return True


def _tls_context(protocol: int, cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """gevent's SSLContext (cooperative sockets): TLS 1.3 or newer, our certificate, the peer's required."""
    try:
        context: ssl.SSLContext = gssl.SSLContext(protocol)
        context.minimum_version = TLS_MINIMUM_VERSION
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=ca)
        context.load_cert_chain(cert, key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise TlsSetupFailed(f"cannot load the TLS credentials ({cert}, {key}, {ca}): {exc}") from exc
    return context


def server_tls_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """The server's side: its certificate, and a client certificate signed by `ca` required (CERT_REQUIRED).

    Raises:
        TlsSetupFailed: a file is missing or invalid, or the key does not match the certificate.
    """
    context = _tls_context(ssl.PROTOCOL_TLS_SERVER, cert, key, ca)
    context.num_tickets = 0  # agencies never resume a session: skip the two tickets per handshake
    return context


def client_tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """An agency's side: the server must present a certificate signed by `ca`, for the host name dialled.

    Set up as ssl.create_default_context(cafile=ca) would, but built on gevent's
    SSLContext, whose sockets are cooperative.

    Raises:
        TlsSetupFailed: as `server_tls_context`.
    """
    context = _tls_context(ssl.PROTOCOL_TLS_CLIENT, cert, key, ca)
    context.check_hostname = True  # PROTOCOL_TLS_CLIENT's default; never to be turned off
    return context


def open_connection(host: str, port: int, timeout: float | None, tls: ssl.SSLContext | None = None) -> Stream:
    """Connect to host:port, with `timeout` for the connect and for later I/O.

    Args:
        tls: a `client_tls_context`: then complete a TLS handshake (within
            `timeout`), checking the server's certificate against `host`.

    Raises:
        ConnectFailed: the name did not resolve, or the connection was refused or timed out.
        TlsRejected, PeerClosed, Timeout: the TLS handshake failed (see `Stream.start_tls`).
    """
    try:
        sock = gsocket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
    configure_stream(sock)
    stream = Stream(sock)
    return stream if tls is None else stream.start_tls(tls, timeout=timeout, server_hostname=host)


def refuse_tls_handshake(stream: Stream, timeout: float) -> None:
    """Answer a peer that began a TLS handshake on a plaintext server with a fatal alert, within `timeout`.

    Reads the peer's first record whole (so that closing the socket sends no RST
    over the alert), then sends TLS_HANDSHAKE_FAILURE_ALERT. The caller closes.

    Raises:
        FrameTooLarge: the record declares more than a TLS record may hold (nothing more is read).
        PeerClosed: the connection broke.
        Timeout: the record did not arrive within `timeout`.
    """
    with gevent.Timeout(timeout, Timeout(f"TLS record not complete within {timeout}s")):
        _, _, length = _TLS_RECORD_HEADER.unpack(stream.recv_exact(_TLS_RECORD_HEADER.size))
        if length > _TLS_MAX_RECORD:
            raise FrameTooLarge(f"a TLS record of {length} bytes; the most is {_TLS_MAX_RECORD}")
        stream.recv_exact(length)
        stream.send_all(TLS_HANDSHAKE_FAILURE_ALERT)


def send_message(stream: Stream, message: Message) -> None:
    """Encode `message` as one frame and send all of it."""
    stream.send_all(encode(message))


def receive_message(stream: Stream, decoder: FrameDecoder, frame_timeout: float | None = None) -> Message:
    """Read one whole message.

    Waits for the frame's first byte as long as the stream's own timeout allows
    (the idle timeout). From then on the rest of the frame must arrive within
    `frame_timeout` seconds (None: no bound), so a peer cannot hold a reader by
    trickling a frame. Reads exactly what the decoder asks for, never past the
    end of the frame.

    Raises:
        ProtocolError: the bytes are not a valid frame.
        PeerClosed: EOF; `mid_frame` tells whether a frame was cut short.
        Timeout: the idle or frame timeout expired.
    """
    message = decoder.next_message()
    if message is not None:
        return message
    if not decoder.pending:
        # The first read waits as long as the idle timeout allows; it asks for the
        # whole header, which usually arrives in the same segment as its first byte.
        first = stream.recv_some(decoder.bytes_needed)
        if not first:
            raise PeerClosed(b"", decoder.bytes_needed)
        decoder.feed(first)
    with gevent.Timeout(frame_timeout, Timeout(f"frame not complete within {frame_timeout}s")):
        try:
            while (message := decoder.next_message()) is None:
                decoder.feed(stream.recv_exact(decoder.bytes_needed))
        except PeerClosed as exc:
            pending = decoder.pending + exc.partial
            raise PeerClosed(pending, len(decoder.pending) + exc.expected) from exc
    return message
