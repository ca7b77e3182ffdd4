# The only module that touches a socket: everything above holds a `Stream`.
# Guarantees: `send_all` sends every byte; `recv_exact` returns exactly n bytes
# or raises PeerClosed with what arrived; a frame read never reads past its
# frame and yields to the loop between chunks, however the peer cuts them (one-
# byte TLS records included); OSError and TLS errors become shared.errors types
# only in `translated`. Peer deadlines are gevent.Timeouts armed once, never
# socket timeouts. TLS (shared.tls) is a stream over this one.
# Never: decides what a message means, or logs.
from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from typing import Protocol

import gevent
from gevent import socket as gsocket

from shared.errors import ConnectFailed, PeerClosed, ProtocolError, Timeout, TlsRejected
from shared.protocol import FrameDecoder, Message, encode

#: TCP keepalive: a peer gone without a FIN is noticed even by a waiting connection.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_PROBES = 3


class RawSocket(Protocol):
    """What a Stream needs from a socket."""

    def send(self, data: bytes | memoryview, /) -> int: ...
    def recv(self, size: int, flags: int = 0, /) -> bytes: ...
    def settimeout(self, timeout: float | None, /) -> None: ...
    def close(self) -> None: ...


@contextlib.contextmanager
def within(seconds: float | None, what: str) -> Iterator[None]:
    """Raise Timeout(what) if the block has not ended `seconds` from now (None: no bound); nothing moves it."""
    if seconds is not None and seconds <= 0:
        raise Timeout(what)
    with gevent.Timeout(seconds, Timeout(what)):  # None: a timer that never fires
        yield


@contextlib.contextmanager
def translated(what: str, partial: bytes = b"", expected: int = 0) -> Iterator[None]:
    """TimeoutError -> Timeout; a failed verification or a TLS alert -> TlsRejected; other OSError -> PeerClosed."""
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
    """One connected byte stream; it owns its socket (a gevent socket, or a test fake)."""

    def __init__(self, sock: RawSocket) -> None:
        self._sock = sock
        self.bytes_received = 0  # what log budgets are measured in

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def settimeout(self, timeout: float | None) -> None:
        """A socket-level bound on each later wait (None: none); peer deadlines use `within` instead."""
        self._sock.settimeout(timeout)

    def close(self) -> None:
        self._sock.close()

    @property
    def peer_name(self) -> str | None:
        """The subject CN of the peer's verified certificate; None on a plain stream."""
        return None

    def send_all(self, data: bytes) -> None:
        """Write all of `data`, however many send() calls that takes (PeerClosed, Timeout)."""
        view = memoryview(data)
        while view:
            with translated("send", expected=len(data)):
                sent = self._sock.send(view)
            view = view[sent:]

    def recv_some(self, size: int, partial: bytes = b"", expected: int = 0) -> bytes:
        """One recv() of at most `size` bytes; b"" means EOF. `partial`/`expected` describe the read, for errors."""
        with translated("recv", partial, expected):
            chunk = self._sock.recv(size)
        self.bytes_received += len(chunk)
        return chunk

    def recv_exact(self, size: int) -> bytes:
        """Exactly `size` bytes, yielding between chunks; PeerClosed (with `partial`) on an early EOF."""
        chunks = b""
        while len(chunks) < size:
            if chunks:
                gevent.sleep(0)  # buffered TLS records are returned without a switch: let others run
            chunk = self.recv_some(size - len(chunks), chunks, size)
            if not chunk:
                raise PeerClosed(chunks, size)
            chunks += chunk
        return chunks

    def recv_line(self, max_bytes: int) -> bytes:
        """Up to and including the first newline (or what came before EOF); ProtocolError past `max_bytes`."""
        line = bytearray()
        while len(line) < max_bytes:
            chunk = self.recv_some(max_bytes - len(line), bytes(line), max_bytes)
            if not chunk:
                return bytes(line)
            end = chunk.find(b"\n")
            if end >= 0:
                return bytes(line + chunk[: end + 1])
            line += chunk
            gevent.sleep(0)
        raise ProtocolError(f"line longer than {max_bytes} bytes")

    def peek_byte(self) -> bytes:
        """The next byte, left for the next read; b"" on EOF. Waits for ever: bound it with `within`."""
        with translated("waiting for the first byte", expected=1):
            return self._sock.recv(1, socket.MSG_PEEK)


def open_connection(host: str, port: int, timeout: float | None) -> Stream:
    """Connect within `timeout` (left as the socket's timeout); ConnectFailed if unresolved, refused or late."""
    try:
        sock = gsocket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
    configure_stream(sock)
    return Stream(sock)


def send_message(stream: Stream, message: Message, within_s: float | None = None) -> None:
    """Send `message` as one whole frame, within `within_s` seconds (None: no bound)."""
    with within(within_s, f"{type(message).__name__} not sent within {within_s}s"):
        stream.send_all(encode(message))


def receive_message(
    stream: Stream, decoder: FrameDecoder, frame_s: float | None = None, start_within_s: float | None = None,
    end_within_s: float | None = None, late: str = "no frame in time",
) -> Message:
    """One whole message, never reading past it: its first byte within `start_within_s` (else
    Timeout(late)), the rest within `frame_s` of that byte and all within `end_within_s`. Raises
    ProtocolError (not a valid frame), PeerClosed (`mid_frame`: a frame cut short), Timeout."""
    with within(end_within_s, late):
        message = decoder.next_message()
        if message is not None:
            return message
        if not decoder.pending:
            with within(start_within_s, late):
                first = stream.recv_some(decoder.bytes_needed)
            if not first:
                raise PeerClosed(b"", decoder.bytes_needed)
            decoder.feed(first)
        with within(frame_s, f"frame not complete within {frame_s}s"):
            try:
                while (message := decoder.next_message()) is None:
                    decoder.feed(stream.recv_exact(decoder.bytes_needed))
            except PeerClosed as exc:
                pending = decoder.pending + exc.partial
                raise PeerClosed(pending, len(decoder.pending) + exc.expected) from exc
    return message
