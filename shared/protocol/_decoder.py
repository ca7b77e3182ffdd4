# Contract: an incremental frame decoder over a byte buffer ("bring your own
# I/O"). The owner feeds it whatever bytes arrived and asks for the next message:
#
#   - next_message() returns a message, or None when more bytes are needed;
#   - bytes_needed says how many more bytes could possibly help, so a reader can
#     ask the socket for exactly that and never read past the end of a frame;
#   - a malformed frame raises a ProtocolError as early as the bytes show it (a
#     wrong first byte is refused after one byte, an oversized length as soon as
#     the header is complete, before any payload is buffered).
#
# After a ProtocolError the stream cannot be resynchronised: drop the decoder
# and close the connection.
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
        """Append received bytes. An empty `data` is ignored (EOF is the reader's job)."""
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
        """Return the next complete message, or None if more bytes are needed.

        Raises:
            ProtocolError: the buffered bytes cannot start or form a valid frame.
        """
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
