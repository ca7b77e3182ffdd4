# Strategy: the client's side of one protocol connection, as request/reply
# calls. It sends one message, reads one reply, and turns an Error reply into a
# ServerRefused exception carrying the server's code. Bytes are moved only by
# shared.transport; this module only decides what to send and what to expect.
from __future__ import annotations

import logging
import socket
from typing import TypeVar

from shared.errors import LotteryError, ProtocolError
from shared.protocol import Error, ErrorCode, FrameDecoder, Message, Winners, WinnersQuery
from shared.transport import open_connection, receive_message, send_message

logger = logging.getLogger(__name__)

ReplyT = TypeVar("ReplyT")


class ServerRefused(LotteryError):
    """The server answered a request with an Error message."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"server refused ({code.name}): {detail}")


class ServerConnection:
    """A connected agency socket. Use as a context manager; it owns the socket.

    Args:
        host, port: the server.
        reply_timeout_s: the longest wait for any reply but the winners.
    """

    def __init__(self, host: str, port: int, reply_timeout_s: float) -> None:
        self._sock: socket.socket = open_connection(host, port, reply_timeout_s)
        self._decoder = FrameDecoder()

    def __enter__(self) -> ServerConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def request(self, message: Message, reply_type: type[ReplyT]) -> ReplyT:
        """Send `message` and return the reply, which must be a `reply_type`.

        Raises:
            ServerRefused: the server replied with an Error.
            ProtocolError: the reply is of another type, or malformed.
            PeerClosed, Timeout: the connection failed.
        """
        send_message(self._sock, message)
        return self._expect(reply_type)

    def query_winners(self) -> list[str]:
        """Ask for the agency's winners; waits, without a timeout, until the draw is over.

        The wait has no deadline because the draw waits for every agency; a
        server that dies is still noticed (EOF, or TCP keepalive).
        """
        send_message(self._sock, WinnersQuery())
        timeout = self._sock.gettimeout()
        self._sock.settimeout(None)
        try:
            documents: list[str] = []
            while True:
                part = self._expect(Winners)
                documents.extend(part.documents)
                if not part.more:
                    return documents
        finally:
            self._sock.settimeout(timeout)

    def _expect(self, reply_type: type[ReplyT]) -> ReplyT:
        reply = receive_message(self._sock, self._decoder)
        if isinstance(reply, Error):
            raise ServerRefused(reply.code, reply.detail)
        if not isinstance(reply, reply_type):
            raise ProtocolError(f"expected {reply_type.__name__}, got {type(reply).__name__}")
        return reply
