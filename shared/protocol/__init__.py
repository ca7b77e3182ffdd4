"""The wire protocol between agencies and the server, a sans-I/O codec: bytes in, messages out
(`FrameDecoder`); messages in, bytes out (`encode`). Nothing here touches a socket or a logger."""

from shared.protocol._decoder import FrameDecoder
from shared.protocol._digest import DIGEST_SIZE, EMPTY_DIGEST, BetsDigest
from shared.protocol._messages import (
    CONTEST_ID_SIZE,
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
    START_BYTE,
    VERSION,
    bet_wire_size,
    encode,
    split_winners,
)

__all__ = [
    "BETS_FRAME_OVERHEAD", "CONTEST_ID_SIZE", "DIGEST_SIZE", "EMPTY_DIGEST", "HEADER_SIZE", "MAX_FRAME_SIZE",
    "START_BYTE", "VERSION", "Bets", "BetsAck", "BetsDigest", "Done", "DoneAck", "Error", "ErrorCode", "FrameDecoder",
    "Hello", "Message", "MessageType", "Welcome", "Winners", "WinnersQuery", "bet_wire_size", "encode", "split_winners",
]  # fmt: skip
