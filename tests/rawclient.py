"""A hand-driven protocol peer for tests: send exactly the frames (or bytes) a
test wants, and read the server's replies as messages.

Uses plain blocking sockets with a timeout, and shared.transport for framing, so
that a test can play a well-behaved agency, a broken one, or a hostile one.
"""

from __future__ import annotations

import socket

from shared.domain import BetFields
from shared.errors import PeerClosed
from shared.protocol import Bets, FrameDecoder, Message, encode
from shared.transport import receive_message, send_all

#: Generous: a reply that does not come within this is a failure, not a wait.
REPLY_TIMEOUT_S = 10.0


class RawPeer:
    """One TCP connection to the server under test."""

    def __init__(self, port: int, timeout: float = REPLY_TIMEOUT_S) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._decoder = FrameDecoder()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send_bytes(self, data: bytes) -> None:
        send_all(self.sock, data)

    def send(self, message: Message) -> None:
        send_all(self.sock, encode(message))

    def receive(self) -> Message:
        return receive_message(self.sock, self._decoder)

    def request(self, message: Message) -> Message:
        self.send(message)
        return self.receive()

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
