"""The wire protocol between agencies and the server: a sans-I/O codec.

Bytes in, messages out (`FrameDecoder`); messages in, bytes out (`encode`).
Nothing in this package touches a socket or a logger.
"""

from shared.protocol._decoder import FrameDecoder
from shared.protocol._messages import (
    Bets,
    BetsAck,
    Done,
    DoneAck,
    Error,
    ErrorCode,
    Hello,
    Message,
    MessageType,
    Welcome,
    Winners,
    WinnersQuery,
)
from shared.protocol._wire import (
    BETS_FRAME_OVERHEAD,
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    MAX_PAYLOAD_SIZE,
    START_BYTE,
    VERSION,
    bet_wire_size,
    decode_payload,
    encode,
    parse_header,
    split_winners,
)

__all__ = [
    "BETS_FRAME_OVERHEAD",
    "HEADER_SIZE",
    "MAX_FRAME_SIZE",
    "MAX_PAYLOAD_SIZE",
    "START_BYTE",
    "VERSION",
    "Bets",
    "BetsAck",
    "Done",
    "DoneAck",
    "Error",
    "ErrorCode",
    "FrameDecoder",
    "Hello",
    "Message",
    "MessageType",
    "Welcome",
    "Winners",
    "WinnersQuery",
    "bet_wire_size",
    "decode_payload",
    "encode",
    "parse_header",
    "split_winners",
]
