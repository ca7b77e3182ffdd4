# Strategy: one small exception tree for everything the server and the client
# can raise on purpose. Callers catch by cause, never by message text. The
# errors every layer shares live here:
#
#   LotteryError
#   ├── ProtocolError          the peer's bytes break the wire format (shared.protocol)
#   │   ├── BadHeader              wrong start byte or protocol version
#   │   │   └── VersionMismatch        the peer speaks another protocol version
#   │   ├── UnknownMessageType     a type byte we do not know
#   │   ├── FrameTooLarge          declared length over MAX_FRAME_SIZE
#   │   ├── TruncatedPayload       the payload ends before its content does
#   │   ├── TrailingBytes          the payload goes on after its content ends
#   │   ├── InvalidUtf8            a text field is not UTF-8
#   │   ├── WrongFieldCount        a bet does not have exactly five fields
#   │   ├── BadFieldValue          a fixed field holds an impossible value
#   │   └── UnexpectedReply        a well-formed message the conversation does not allow here
#   ├── ConnectFailed          the server could not be reached
#   ├── PeerClosed             EOF from the peer (carries `partial` / `expected`)
#   ├── Timeout                the peer was too slow
#   ├── LineTooLong            a text line (inline echo) passed its length bound
#   ├── ServerRefused          the server answered a request with an Error frame
#   ├── TlsRejected            a TLS peer's certificate failed verification, or the peer refused ours
#   ├── TlsSetupFailed         a certificate, key or CA file could not be loaded
#   └── InvalidBet             a bet's text fields fail validation (shared.domain)
#
# Errors that only one module raises live in that module, still under
# LotteryError: ConfigError (shared.config), StorageFailure and OutOfSequence
# (lottery_gevent.storage), StorageCorrupt (lottery_gevent.recovery), DrawFailed
# (lottery_gevent.lottery), BetsFileError (client_gevent.bets_source),
# BetTooLarge (client_gevent.batching), GaveUp (client_gevent.backoff).
#
# OSError, ssl.SSLError and socket timeouts are translated into these only at
# the transport boundary (shared.transport), always with `raise ... from exc`.
from __future__ import annotations


class LotteryError(Exception):
    """Base class of every error this project raises on purpose."""


class ProtocolError(LotteryError):
    """The bytes received do not follow the wire protocol."""


class BadHeader(ProtocolError):
    """The frame does not start with the start byte and protocol version."""


class VersionMismatch(BadHeader):
    """The peer speaks another version of the protocol: no other connection to it would do better."""


class UnknownMessageType(ProtocolError):
    """The frame's type byte names no known message."""


class FrameTooLarge(ProtocolError):
    """A frame's declared length exceeds the protocol maximum."""


class TruncatedPayload(ProtocolError):
    """A payload is shorter than the content it declares."""


class TrailingBytes(ProtocolError):
    """A payload holds bytes after the content it declares."""


class InvalidUtf8(ProtocolError):
    """A text field is not valid UTF-8."""


class WrongFieldCount(ProtocolError):
    """A record does not carry the number of fields its message requires."""


class BadFieldValue(ProtocolError):
    """A fixed-size field holds a value the protocol does not allow."""


class UnexpectedReply(ProtocolError):
    """A well-formed message that the conversation does not allow at this point."""


class ConnectFailed(LotteryError):
    """A connection to the server could not be opened."""


class PeerClosed(LotteryError):
    """The peer closed its side of the connection.

    Attributes:
        partial: the bytes of the unfinished read that did arrive.
        expected: how many bytes that read wanted in total.
    """

    def __init__(self, partial: bytes = b"", expected: int = 0) -> None:
        self.partial = partial
        self.expected = expected
        if partial:
            message = f"peer closed after {len(partial)} of {expected} bytes"
        else:
            message = "peer closed the connection"
        super().__init__(message)

    @property
    def mid_frame(self) -> bool:
        """True when the peer closed in the middle of a frame."""
        return bool(self.partial)


class Timeout(LotteryError):
    """The peer did not send or accept data within the allowed time."""


class LineTooLong(LotteryError):
    """A text line did not end within its length bound."""


class ServerRefused(LotteryError):
    """The server answered a request with an Error message.

    Attributes:
        code: the server's error code (a shared.protocol.ErrorCode).
        detail: the server's reason, as text (hostile: escape before printing).
    """

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        self.detail = detail
        name = getattr(code, "name", str(code))
        super().__init__(f"server refused ({name}): {detail}")


class TlsRejected(LotteryError):
    """The TLS handshake failed on a certificate: retrying with the same credentials cannot help.

    Either the peer's certificate did not verify (unknown CA, expired, wrong host
    name, none given), or the peer sent an alert refusing ours.
    """


class ConfigError(LotteryError):
    """A setting, or a file a setting names (TLS credentials included), is missing, malformed or out of range."""


class TlsSetupFailed(LotteryError):
    """A TLS certificate, key or CA file is missing, unreadable or invalid."""


class InvalidBet(LotteryError):
    """A bet's fields fail validation.

    The message quotes at most MAX_QUOTED_CHARS characters of the value: it is
    sent back in an Error frame, which must stay under 8 KiB however long (or
    however escape-heavy, as repr goes) the offending field is.

    Attributes:
        field: the name of the offending field.
        value: its text, whole.
        reason: what is wrong with it, in words.
    """

    #: Longest part of the value that the message quotes.
    MAX_QUOTED_CHARS = 40

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        quoted = repr(value[: self.MAX_QUOTED_CHARS])
        if len(value) > self.MAX_QUOTED_CHARS:
            quoted += f"... ({len(value)} characters)"
        super().__init__(f"invalid {field} {quoted}: {reason}")
