# Strategy: the one request/reply peer of the protocol. The agency client, the
# benchmark's load generator and the tests all talk to the server through
# `ServerConnection`: send a message, read a reply, check its type (the agency
# sends its next batch before reading the previous one's ack: `send_message`,
# then `expect`, in order). Bytes
# are moved only by shared.transport; this module decides what to send and
# what to expect, and never trusts the server:
#
#   - every reply frame must be complete within the reply timeout from its
#     first byte, however it is trickled (the frame timeout);
#   - an Error reply becomes ServerRefused (or, through `exchange`, is handed
#     back as it is: the raw mode the tests use to see every frame);
#   - the winners reply is bounded: each document must be one the caller
#     allows, and no more parts than documents allowed are read.
from __future__ import annotations

import ssl
from collections.abc import Collection
from typing import TypeVar

from shared.errors import ServerRefused, UnexpectedReply
from shared.protocol import Error, FrameDecoder, Message, Winners, WinnersQuery
from shared.transport import Stream, open_connection, receive_message, send_message

__all__ = ["ServerConnection", "ServerRefused"]

ReplyT = TypeVar("ReplyT")


class ServerConnection:
    """A connected protocol peer. Use as a context manager; it owns the stream.

    Args:
        stream: the connection.
        reply_timeout_s: the longest wait for a reply (the winners excepted), and
            the longest any reply frame may take from its first byte to its last.
    """

    def __init__(self, stream: Stream, reply_timeout_s: float | None) -> None:
        self.stream = stream
        self._reply_timeout_s = reply_timeout_s
        self._decoder = FrameDecoder()
        stream.settimeout(reply_timeout_s)

    @classmethod
    def open(
        cls, host: str, port: int, reply_timeout_s: float | None, tls: ssl.SSLContext | None = None
    ) -> ServerConnection:
        """Connect to host:port; with `tls` (a shared.transport.client_tls_context), over TLS.

        Raises:
            ConnectFailed: the server could not be reached.
            TlsRejected: the server's certificate did not verify, or the server refused ours.
            PeerClosed, Timeout: the TLS handshake broke off.
        """
        return cls(open_connection(host, port, reply_timeout_s, tls), reply_timeout_s)

    def __enter__(self) -> ServerConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.stream.close()

    # --- raw frames ---------------------------------------------------------

    def send_message(self, message: Message) -> None:
        send_message(self.stream, message)

    def send_bytes(self, data: bytes) -> None:
        """Send bytes as they are (an encoded frame, or deliberate garbage in tests)."""
        self.stream.send_all(data)

    def receive(self) -> Message:
        """The next message, whatever it is (an Error included).

        Raises:
            ProtocolError: the bytes are not a valid frame.
            PeerClosed, Timeout: the connection failed, or a frame was too slow.
        """
        return receive_message(self.stream, self._decoder, self._reply_timeout_s)

    def exchange(self, message: Message) -> Message:
        """Send `message` and return the reply as it is: the raw mode (an Error is returned, not raised)."""
        self.send_message(message)
        return self.receive()

    # --- checked requests ---------------------------------------------------

    def expect(self, reply_type: type[ReplyT]) -> ReplyT:
        """The next message, which must be a `reply_type`.

        Raises:
            ServerRefused: the server replied with an Error.
            UnexpectedReply: the reply is of another type.
            ProtocolError, PeerClosed, Timeout: as `receive`.
        """
        reply = self.receive()
        if isinstance(reply, Error):
            raise ServerRefused(reply.code, reply.detail)
        if not isinstance(reply, reply_type):
            raise UnexpectedReply(f"expected {reply_type.__name__}, got {type(reply).__name__}")
        return reply

    def request(self, message: Message, reply_type: type[ReplyT]) -> ReplyT:
        """Send `message` and return the reply, which must be a `reply_type` (see `expect`)."""
        self.send_message(message)
        return self.expect(reply_type)

    def query_winners(self, allowed: Collection[str] | None = None, limit: int | None = None) -> list[str]:
        """Ask for the agency's winners; waits, without a timeout, until the draw is over.

        The wait for the first part has no deadline because the draw waits for
        every agency; a server that dies is still noticed (EOF, or TCP
        keepalive). Each part, once started, must arrive within the reply timeout.

        Args:
            allowed: the documents this agency has bet with (None: no check).
                Every document in the reply must be one of them.
            limit: the most documents the reply may hold (the agency's number
                of bets; None: no bound).

        Raises:
            UnexpectedReply: a document the agency never bet with, more of them
                than `limit`, or an empty part that is not the last.
        """
        self.send_message(WinnersQuery())
        self.stream.settimeout(None)
        try:
            return self._read_winners(allowed, limit)
        finally:
            self.stream.settimeout(self._reply_timeout_s)

    def read_winners(self) -> list[str]:
        """Read Winners parts until the last one (a WinnersQuery must have been sent); no check."""
        return self._read_winners(None, None)

    def _read_winners(self, allowed: Collection[str] | None, limit: int | None) -> list[str]:
        documents: list[str] = []
        while True:
            part = self.expect(Winners)
            if part.more and not part.documents:  # else a server could stream empty parts for ever
                raise UnexpectedReply("an empty Winners part that is not the last")
            if allowed is not None:
                strangers = sum(1 for document in part.documents if document not in allowed)
                if strangers:
                    raise UnexpectedReply(f"the winners hold {strangers} documents this agency never bet with")
            if limit is not None and len(documents) + len(part.documents) > limit:
                raise UnexpectedReply(f"the winners hold more documents than the agency's {limit} bets")
            documents.extend(part.documents)
            if not part.more:
                return documents
