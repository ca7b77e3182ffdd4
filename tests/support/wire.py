# Strategy: the few blocking socket reads the tests do by hand, each an
# explicit loop, so no test takes one recv() for a whole reply:
#
#   - read_line: until a newline or EOF (the inline echo);
#   - read_to_eof: until the peer closes;
#   - read_message: exactly one frame, through shared.protocol's FrameDecoder,
#     asking the socket for no more than the frame still needs.
#
# Plain sockets with a timeout (set by the caller), no shared.transport: tests
# that play the server or the client check the product's framing, not reuse it.
#
# RawConnection is the product's peer in raw mode, for tests that play an
# agency: `receive`/`exchange` hand an Error frame back instead of raising.
from __future__ import annotations

import socket

from client_gevent.connection import ServerConnection
from shared.protocol import (
    Bets,
    BetsAck,
    Done,
    DoneAck,
    FrameDecoder,
    Hello,
    Message,
    Welcome,
    Winners,
    WinnersQuery,
    encode,
)
from shared.transport import receive_message
from tools.generate_agencies import WINNING_NUMBER


class RawConnection(ServerConnection):
    """client_gevent's ServerConnection, plus the raw frames tests (and the bench) send and read."""

    def send_bytes(self, data: bytes) -> None:
        """Send bytes as they are (an encoded frame, or deliberate garbage)."""
        self.stream.send_all(data)

    def receive(self) -> Message:
        """The next message, whatever it is (an Error included), within the reply timeout."""
        timeout = self.reply_timeout_s
        return receive_message(self.stream, self.decoder, timeout, start_within_s=timeout, late="no reply in time")

    def exchange(self, message: Message) -> Message:
        """Send `message` and return the reply as it is."""
        self.send_message(message)
        return self.receive()

    def read_winners(self) -> list[str]:
        """Winners parts until the last one (a WinnersQuery must have been sent); no check."""
        documents: list[str] = []
        while True:
            part = self.expect(Winners, wait_for_ever=True)
            documents.extend(part.documents)
            if not part.more:
                return documents


#: Bytes asked of the socket per recv while reading a line or to EOF.
CHUNK = 4096


def read_line(sock: socket.socket, limit: int = 65536) -> bytes:
    """Bytes up to and including the first newline, or all bytes until EOF if none comes.

    Raises:
        AssertionError: more than `limit` bytes came without a newline.
    """
    data = bytearray()
    while b"\n" not in data:
        assert len(data) <= limit, f"no newline within {limit} bytes"
        chunk = sock.recv(CHUNK)
        if not chunk:
            break
        data += chunk
    line, newline, _ = bytes(data).partition(b"\n")
    return line + newline


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes (a reset counts as the end too)."""
    chunks = []
    try:
        while chunk := sock.recv(CHUNK):
            chunks.append(chunk)
    except ConnectionResetError:  # closed with our bytes unread: the end, as far as we can tell
        pass
    return b"".join(chunks)


def read_message(sock: socket.socket, decoder: FrameDecoder) -> Message:
    """Read exactly one frame and decode it.

    Raises:
        EOFError: the peer closed before a whole frame came (`str` says how far it got).
        ProtocolError: the bytes are not a valid frame.
    """
    while (message := decoder.next_message()) is None:
        chunk = sock.recv(max(decoder.bytes_needed, 1))
        if not chunk:
            raise EOFError(f"peer closed after {len(decoder.pending)} bytes of a frame")
        decoder.feed(chunk)
    return message


def send_message(sock: socket.socket, message: Message) -> None:
    """Encode and send one frame (sendall loops until every byte is sent)."""
    sock.sendall(encode(message))


def honest_reply(message: Message, welcome: Welcome, winners: tuple[str, ...] = ()) -> Message:
    """What a well-behaved server answers to `message`, for the tests' fake servers.

    Every batch is acknowledged; Hello gets `welcome`; the query gets `winners` (drawn: WINNING_NUMBER).

    Raises:
        AssertionError: `message` is one no agency sends.
    """
    match message:
        case Hello():
            return welcome
        case Bets(start=start, bets=bets):
            return BetsAck(start + len(bets))
        case Done():
            return DoneAck()
        case WinnersQuery():
            return Winners(winners, False, WINNING_NUMBER)
    raise AssertionError(f"the client sent {message!r}")
