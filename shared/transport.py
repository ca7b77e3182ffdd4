# Strategy: the only module that calls send/recv on a socket. Both loops are
# explicit, because TCP delivers a stream, not messages:
#
#   - send() may accept only part of the data: send_all slices off what was
#     sent and sends the rest;
#   - recv() may return fewer bytes than asked, and b"" means the peer closed:
#     recv_exact keeps reading until it has exactly `size` bytes, and raises
#     PeerClosed (with what did arrive) on an early EOF.
#
# OSError and socket timeouts are translated here, and only here, into
# shared.errors types, with `raise ... from exc`. Sockets are gevent sockets
# (or anything with the same send/recv/timeout behaviour, as in the tests).
from __future__ import annotations

import socket
from typing import Protocol

import gevent
from gevent import socket as gsocket

from shared.errors import ConnectFailed, PeerClosed, Timeout
from shared.protocol import FrameDecoder, Message, encode


class StreamSocket(Protocol):
    """What the transport needs from a socket."""

    def send(self, data: bytes | memoryview, /) -> int: ...

    def recv(self, size: int, /) -> bytes: ...


#: TCP keepalive, so that a peer that vanished without a FIN is noticed even by a
#: connection that is only waiting (for the draw): first probe after this many
#: idle seconds, then every KEEPALIVE_INTERVAL_S, giving up after KEEPALIVE_PROBES.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_PROBES = 3


def configure_stream(sock: socket.socket) -> None:
    """Disable Nagle (small request/response frames) and enable TCP keepalive."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


def open_connection(host: str, port: int, timeout: float) -> socket.socket:
    """Connect to host:port (a gevent socket), with `timeout` for the connect and later I/O.

    Raises:
        ConnectFailed: the name did not resolve, or the connection was refused or timed out.
    """
    try:
        sock: socket.socket = gsocket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
    configure_stream(sock)
    return sock


def send_all(sock: StreamSocket, data: bytes) -> None:
    """Write all of `data`, however many send() calls that takes.

    Raises:
        Timeout: the socket's timeout expired before everything was sent.
        PeerClosed: the connection broke.
    """
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except TimeoutError as exc:
            raise Timeout(f"send timed out with {len(view)} bytes unsent") from exc
        except OSError as exc:
            raise PeerClosed(expected=len(data)) from exc
        view = view[sent:]


def _recv(sock: StreamSocket, size: int, partial: bytes, expected: int) -> bytes:
    """One recv() of at most `size` bytes, errors translated; b"" means EOF."""
    try:
        return sock.recv(size)
    except TimeoutError as exc:
        raise Timeout(f"recv timed out after {len(partial)} of {expected} bytes") from exc
    except OSError as exc:
        raise PeerClosed(partial, expected) from exc


def recv_exact(sock: StreamSocket, size: int) -> bytes:
    """Read exactly `size` bytes, however many recv() calls that takes.

    Raises:
        PeerClosed: EOF (or a broken connection) before `size` bytes arrived;
            `partial` holds those that did.
        Timeout: the socket's timeout expired between two chunks.
    """
    chunks: list[bytes] = []
    received = 0
    while received < size:
        chunk = _recv(sock, size - received, b"".join(chunks), size)
        if not chunk:
            raise PeerClosed(b"".join(chunks), size)
        chunks.append(chunk)
        received += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def recv_line(sock: StreamSocket, max_bytes: int) -> bytes:
    """Read up to and including the first b"\\n", or until EOF, at most `max_bytes`.

    Returns what arrived (possibly without a newline if the peer closed first;
    possibly empty). Bytes after the newline in the same chunk are dropped.

    Raises:
        ValueError: `max_bytes` arrived without a newline.
        Timeout: the socket's timeout expired first.
    """
    line = bytearray()
    while len(line) < max_bytes:
        try:
            chunk = sock.recv(max_bytes - len(line))
        except TimeoutError as exc:
            raise Timeout(f"no full line after {len(line)} bytes") from exc
        except OSError as exc:
            raise PeerClosed(bytes(line), max_bytes) from exc
        if not chunk:
            return bytes(line)
        end = chunk.find(b"\n")
        if end >= 0:
            line += chunk[: end + 1]
            return bytes(line)
        line += chunk
    raise ValueError(f"line longer than {max_bytes} bytes")


def send_message(sock: StreamSocket, message: Message) -> None:
    """Encode `message` as one frame and send all of it."""
    send_all(sock, encode(message))


def receive_message(sock: StreamSocket, decoder: FrameDecoder, frame_timeout: float | None = None) -> Message:
    """Read one whole message.

    Waits for the frame's first byte as long as the socket's own timeout allows
    (the idle timeout). From then on the rest of the frame must arrive within
    `frame_timeout` seconds (None: no bound), so a peer cannot hold a session
    by trickling a frame. Reads exactly what the decoder asks for, never past
    the end of the frame.

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
        first = _recv(sock, decoder.bytes_needed, b"", decoder.bytes_needed)
        if not first:
            raise PeerClosed(b"", decoder.bytes_needed)
        decoder.feed(first)
    with gevent.Timeout(frame_timeout, Timeout(f"frame not complete within {frame_timeout}s")):
        try:
            while (message := decoder.next_message()) is None:
                decoder.feed(recv_exact(sock, decoder.bytes_needed))
        except PeerClosed as exc:
            pending = decoder.pending + exc.partial
            raise PeerClosed(pending, len(decoder.pending) + exc.expected) from exc
    return message
