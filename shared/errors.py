# Contract: the errors every layer shares, one small tree under LotteryError.
# Callers catch by type, never by message text. OSError, ssl.SSLError and socket
# timeouts become these only at the transport boundary (`raise ... from exc`).
# Side-only errors live on their side: StorageFailure, EndSession, BetsFileError.
from __future__ import annotations


class LotteryError(Exception):
    """Base class of every error this project raises on purpose."""


class ProtocolError(LotteryError):
    """The bytes or messages received break the wire protocol; the message says how."""


class VersionMismatch(ProtocolError):
    """The peer speaks another protocol version: no other connection to it would do better."""


class UnexpectedReply(ProtocolError):
    """A well-formed message that the conversation does not allow at this point."""


class PeerClosed(LotteryError):
    """The peer closed its side; `partial` holds the bytes of the unfinished read, of `expected`."""

    def __init__(self, partial: bytes = b"", expected: int = 0) -> None:
        self.partial = partial
        self.expected = expected
        self.mid_frame = bool(partial)  # the peer closed in the middle of a frame
        closed = f"after {len(partial)} of {expected} bytes" if partial else "the connection"
        super().__init__(f"peer closed {closed}")


class Timeout(LotteryError):
    """The peer did not send or accept data within the allowed time."""


class ConnectFailed(LotteryError):
    """A connection to the server could not be opened."""


class ServerRefused(LotteryError):
    """A request refused with an ErrorCode and a detail: the server answers Error(code, detail) for it,
    the client raises it on an Error reply (the detail is the peer's text: log it escaped)."""

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"server refused ({getattr(code, 'name', code)}): {detail}")


class TlsRejected(LotteryError):
    """A certificate failed verification, or the peer refused ours: the same credentials cannot do better."""


class ConfigError(LotteryError):
    """A setting, or a file a setting names (TLS credentials included), is missing, malformed or out of range."""


class InvalidBet(LotteryError):
    """A bet's field fails validation; the message, sent back in an Error frame, quotes at most
    MAX_QUOTED_CHARS of the value so that it stays small however long the value is."""

    MAX_QUOTED_CHARS = 40

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        quoted = repr(value[: self.MAX_QUOTED_CHARS])
        if len(value) > self.MAX_QUOTED_CHARS:
            quoted += f"... ({len(value)} characters)"
        super().__init__(f"invalid {field} {quoted}: {reason}")

