# Contract: an incremental frame decoder ("bring your own I/O"). `feed` whatever
# bytes arrived; `next_message` returns a message, or None while more are needed;
# `bytes_needed` says how many could help, so a reader never reads past a frame.
# A malformed frame raises ProtocolError as early as the bytes show it (a wrong
# first byte after one byte, an oversized length before any payload). After a
# ProtocolError the stream cannot be resynchronised: close it.
from __future__ import annotations

from shared.protocol._messages import Message, MessageType
from shared.protocol._wire import HEADER_SIZE, check_header_prefix, decode_payload, parse_header


class FrameDecoder:
    """Turns a byte stream into messages, one frame at a time."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._header: tuple[MessageType, int] | None = None
        self._header_bytes = b""

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def pending(self) -> bytes:
        """The bytes of the unfinished frame received so far (empty between frames)."""
        return self._header_bytes + bytes(self._buffer)

    @property
    def bytes_needed(self) -> int:
        """Bytes still missing from the current frame (0 if one is complete)."""
        wanted = HEADER_SIZE if self._header is None else self._header[1]
        return max(wanted - len(self._buffer), 0)

    def next_message(self) -> Message | None:
        """The next complete message, or None; ProtocolError if the bytes cannot form a valid frame."""
        buffer = self._buffer
        if self._header is None:
            if len(buffer) < HEADER_SIZE:
                check_header_prefix(buffer)
                return None
            self._header_bytes = bytes(buffer[:HEADER_SIZE])
            self._header = parse_header(self._header_bytes)
            del buffer[:HEADER_SIZE]
        message_type, length = self._header
        if len(buffer) < length:
            return None
        payload = bytes(buffer[:length])
        del buffer[:length]
        self._header, self._header_bytes = None, b""
        return decode_payload(message_type, payload)
