# Contract: every message is a frozen dataclass that says what it means, with no
# bytes in sight (the codec, _wire.py, maps each class to its MessageType).
#
#   C: Hello(agency, total)     S: Welcome(stored, done, contest, digest)
#   C: Bets(start, bets)        S: BetsAck(stored) | Error(code, detail)
#   C: Done()                   S: DoneAck()
#   C: WinnersQuery()           S: Winners(documents, True, number)* Winners(..., False, number)
#
# `stored`: the agency's bets on disk, where a client resumes; the server stores
# a batch only when its `start` equals `stored`, so a retried batch is never
# stored twice. `contest` and `digest` (_digest.py) let the client check, before
# skipping them, that those `stored` bets are its own file's first rows.
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from shared.domain import BetFields
from shared.protocol._digest import DIGEST_SIZE


class MessageType(enum.IntEnum):
    """The type byte of a frame."""

    HELLO = 1
    WELCOME = 2
    BETS = 3
    BETS_ACK = 4
    DONE = 5
    DONE_ACK = 6
    WINNERS_QUERY = 7
    WINNERS = 8
    ERROR = 9


class ErrorCode(enum.IntEnum):
    """Why the server refused a request (the `code` of an `Error` message)."""

    #: The frame could not be decoded; the server closes the connection.
    MALFORMED_FRAME = 1
    #: The message is not allowed in the session's current state.
    UNEXPECTED_MESSAGE = 2
    #: The agency id is outside 1..SERVER_AGENCIES; the connection is closed.
    UNKNOWN_AGENCY = 3
    #: A bet in the batch failed validation; nothing of the batch was stored.
    INVALID_BET = 4
    #: The batch does not start where the agency's stored bets end.
    OUT_OF_SEQUENCE = 5
    #: Bets arrived after the agency said it was done.
    BETS_AFTER_DONE = 6
    #: The server could not write the batch; nothing of it was stored. Retry later.
    STORAGE_FAILURE = 7
    #: The draw failed; no winners can be given.
    DRAW_FAILED = 8
    #: The server is shutting down. Reconnect later.
    SHUTTING_DOWN = 9
    #: A newer connection identified as the same agency and took over.
    SUPERSEDED = 10
    #: The server holds its maximum number of connections (in all, or from this address). Retry later.
    SERVER_BUSY = 11
    #: This connection may not act for the agency it named (its certificate names another); closed.
    NOT_AUTHORISED = 12
    #: The server requires TLS and this connection is plaintext; closed.
    TLS_REQUIRED = 13
    #: The batch would take the agency past the server's per-agency bet quota; nothing of it was stored.
    QUOTA_EXCEEDED = 14
    #: The connection sent too many refused frames; closed.
    TOO_MANY_REFUSALS = 15
    #: The connection was too slow: it did not identify in time, or went idle; closed.
    TOO_SLOW = 16
    #: Sales are closed: nothing of the batch was stored; the agency may still ask for its winners.
    SALES_CLOSED = 17


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → server: the agency this connection speaks for, and its bets in all (0: not said)."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    agency: int
    total: int = 0


#: Bytes of a contest id (random, made when a contest starts).
CONTEST_ID_SIZE = 16


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server → client: how many of the agency's bets are stored, and whether it is done.

    `contest` is the contest id (CONTEST_ID_SIZE bytes); `digest` the resume
    digest (DIGEST_SIZE bytes) of the agency's `stored` bets.
    """

    TYPE: ClassVar[MessageType] = MessageType.WELCOME
    stored: int
    done: bool
    contest: bytes
    digest: bytes

    def __post_init__(self) -> None:
        if len(self.contest) != CONTEST_ID_SIZE or len(self.digest) != DIGEST_SIZE:
            raise ValueError(
                f"Welcome needs a {CONTEST_ID_SIZE}-byte contest id and a {DIGEST_SIZE}-byte digest, "
                f"got {len(self.contest)} and {len(self.digest)}"
            )


@dataclass(frozen=True, slots=True)
class Bets:
    """Client → server: one batch; `start` is the file index of its first bet."""

    TYPE: ClassVar[MessageType] = MessageType.BETS
    start: int
    bets: tuple[BetFields, ...]


@dataclass(frozen=True, slots=True)
class BetsAck:
    """Server → client: the batch is on disk; `stored` is the agency's new total."""

    TYPE: ClassVar[MessageType] = MessageType.BETS_ACK
    stored: int


@dataclass(frozen=True, slots=True)
class Done:
    """Client → server: the agency has no more bets."""

    TYPE: ClassVar[MessageType] = MessageType.DONE


@dataclass(frozen=True, slots=True)
class DoneAck:
    """Server → client: the agency is recorded as done, durably."""

    TYPE: ClassVar[MessageType] = MessageType.DONE_ACK


@dataclass(frozen=True, slots=True)
class WinnersQuery:
    """Client → server: send my winners (the server answers after the draw)."""

    TYPE: ClassVar[MessageType] = MessageType.WINNERS_QUERY


@dataclass(frozen=True, slots=True)
class Winners:
    """Server → client: winning documents of this agency; `more` if another part follows; the drawn `number`."""

    TYPE: ClassVar[MessageType] = MessageType.WINNERS
    documents: tuple[str, ...]
    more: bool = False
    number: int = 0


@dataclass(frozen=True, slots=True)
class Error:
    """Server → client: a refused request."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    code: ErrorCode
    detail: str


Message = Hello | Welcome | Bets | BetsAck | Done | DoneAck | WinnersQuery | Winners | Error
