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
from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import gevent
from gevent import socket as gsocket
from gevent.event import Event

from shared.errors import ConnectFailed, LineTooLong, PeerClosed, Timeout
from shared.protocol import FrameDecoder, Message, encode

#: TCP keepalive, so that a peer that vanished without a FIN is noticed even by a
#: connection that is only waiting (for the draw): first probe after this many
#: idle seconds, then every KEEPALIVE_INTERVAL_S, giving up after KEEPALIVE_PROBES.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_PROBES = 3


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
    """Turn socket errors into shared.errors: TimeoutError -> Timeout, any other OSError -> PeerClosed.

    Args:
        what: the operation, for the Timeout's message.
        partial, expected: the read in progress, carried by PeerClosed.
    """
    try:
        yield
    except TimeoutError as exc:
        raise Timeout(f"{what} timed out") from exc
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


def open_connection(host: str, port: int, timeout: float | None) -> Stream:
    """Connect to host:port, with `timeout` for the connect and for later I/O.

    Raises:
        ConnectFailed: the name did not resolve, or the connection was refused or timed out.
    """
    try:
        sock = gsocket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
    configure_stream(sock)
    return Stream(sock)


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
