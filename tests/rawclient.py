"""A hand-driven protocol peer for tests: send exactly the frames (or bytes) a
test wants, and read the server's replies as messages.

It is the project's one request/reply peer (client_gevent.connection's
ServerConnection) in its raw mode: `request` returns whatever the server
answers, Error frames included. `sock` is the underlying socket, for tests that
speak text (the inline echo) or half-close.
"""

from __future__ import annotations

import socket

from gevent import socket as gsocket

from shared.domain import BetFields
from shared.errors import PeerClosed
from shared.protocol import Bets, Message, Welcome
from shared.transport import Stream
from tests.support.wire import RawConnection

#: Generous: a reply that does not come within this is a failure, not a wait.
REPLY_TIMEOUT_S = 10.0


class RawPeer:
    """One TCP connection to the server under test."""

    def __init__(self, port: int, timeout: float = REPLY_TIMEOUT_S) -> None:
        self.sock: socket.socket = gsocket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.connection = RawConnection(Stream(self.sock), timeout)

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def send_bytes(self, data: bytes) -> None:
        self.connection.send_bytes(data)

    def send(self, message: Message) -> None:
        self.connection.send_message(message)

    def receive(self) -> Message:
        return self.connection.receive()

    def request(self, message: Message) -> Message:
        return self.connection.exchange(message)

    def closed_by_server(self) -> bool:
        """True if the server has closed the connection (reads EOF within the timeout)."""
        try:
            self.receive()
        except PeerClosed:
            return True
        return False

    def last_words(self) -> list[Message]:
        """Everything the server sends until it closes the connection."""
        messages = []
        while True:
            try:
                messages.append(self.receive())
            except PeerClosed:
                return messages


def bet(document: str, number: int = 1, first_name: str = "Ana", last_name: str = "Pérez") -> BetFields:
    return BetFields(first_name, last_name, document, "1990-05-17", str(number))


def batch(start: int, count: int, winning_every: int = 0, document_base: int = 30_000_000) -> Bets:
    """A Bets message of `count` valid bets; every `winning_every`-th one wins (0: none)."""
    bets = tuple(
        bet(str(document_base + start + i), 7574 if winning_every and (start + i) % winning_every == 0 else 1)
        for i in range(count)
    )
    return Bets(start, bets)


def resume(reply: Message) -> tuple[int, bool]:
    """The (stored, done) of a Welcome reply; fails the test on any other reply.

    For tests about counts: the contest id and the digest have tests of their own.
    """
    assert isinstance(reply, Welcome), f"expected Welcome, got {reply!r}"
    return reply.stored, reply.done
