# The one request/reply peer of the protocol: the agency client, the bench and
# the tests talk to the server through `ServerConnection`.
# Guarantees: every reply frame must start within the reply timeout of the
# wait's start and end within it from its first byte (an absolute bound
# however the server trickles it), except that the winners wait has no
# deadline (the draw waits for every agency) yet notices EOF; an Error reply
# becomes ServerRefused; a winners reply is bounded (documents the caller
# allows, no more than `limit`, no empty part that is not the last, one drawn
# number in every part, kept in `drawn`).
# Never: touches the socket itself (shared.transport does), or trusts the server.
from __future__ import annotations

import ssl
from collections.abc import Collection
from typing import Self, TypeVar

from shared.errors import ServerRefused, UnexpectedReply
from shared.protocol import Error, FrameDecoder, Message, Winners, WinnersQuery
from shared.tls import start_tls
from shared.transport import Stream, open_connection, receive_message, send_message, within

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
        self.reply_timeout_s = reply_timeout_s
        self.decoder = FrameDecoder()
        #: The drawn number the last winners reply carried.
        self.drawn: int | None = None
        stream.settimeout(None)  # bounds are gevent.Timeouts, which no arriving record re-arms

    @classmethod
    def open(cls, host: str, port: int, reply_timeout_s: float | None, tls: ssl.SSLContext | None = None) -> Self:
        """Connect to host:port; with `tls` (a shared.transport.client_tls_context), over TLS.

        Raises:
            ConnectFailed: the server could not be reached.
            TlsRejected: the server's certificate did not verify, or the server refused ours.
            PeerClosed, Timeout: the TLS handshake broke off.
        """
        stream = open_connection(host, port, reply_timeout_s)
        if tls is not None:
            with within(reply_timeout_s, f"TLS handshake not complete within {reply_timeout_s}s"):
                stream = start_tls(stream, tls, server_hostname=host)
        return cls(stream, reply_timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.stream.close()

    def send_message(self, message: Message) -> None:
        """Send one whole frame, within the reply timeout."""
        send_message(self.stream, message, self.reply_timeout_s)

    def expect(self, reply_type: type[ReplyT], *, wait_for_ever: bool = False) -> ReplyT:
        """The next message, which must be a `reply_type` (`wait_for_ever`: no bound before its first byte).

        Raises:
            ServerRefused: the server replied with an Error.
            UnexpectedReply: the reply is of another type.
            ProtocolError, PeerClosed, Timeout: a bad frame, a closed connection, a deadline.
        """
        start = None if wait_for_ever else self.reply_timeout_s
        reply = receive_message(
            self.stream, self.decoder, self.reply_timeout_s, start_within_s=start, late="no reply in time"
        )
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
        """Ask for the agency's winners; waits without a deadline for the draw, each part bounded once started.

        Args:
            allowed: the documents this agency has bet with (None: no check).
            limit: the most documents the reply may hold (None: no bound).

        Raises:
            UnexpectedReply: a document the agency never bet with, more of them
                than `limit`, or an empty part that is not the last.
        """
        self.send_message(WinnersQuery())
        documents: list[str] = []
        while True:
            part = self.expect(Winners, wait_for_ever=not documents)
            if part.more and not part.documents:  # else a server could stream empty parts for ever
                raise UnexpectedReply("an empty Winners part that is not the last")
            if documents and part.number != self.drawn:
                raise UnexpectedReply(f"the winners' parts name two drawn numbers: {self.drawn} and {part.number}")
            self.drawn = part.number
            if allowed is not None:
                strangers = sum(1 for document in part.documents if document not in allowed)
                if strangers:
                    raise UnexpectedReply(f"the winners hold {strangers} documents this agency never bet with")
            if limit is not None and len(documents) + len(part.documents) > limit:
                raise UnexpectedReply(f"the winners hold more documents than the agency's {limit} bets")
            documents.extend(part.documents)
            if not part.more:
                return documents
