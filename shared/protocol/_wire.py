# Contract: the byte layout, and nothing else. `encode` turns a message into one
# frame; `parse_header` and `decode_payload` turn a frame back into a message and
# raise ProtocolError (VersionMismatch for another version) for anything
# malformed. Never touches a socket, never logs. Frame (big-endian):
#   START_BYTE u8 | VERSION u8 | MessageType u8 | payload length u16 | payload
# Text travels as a "text list": u16 count, count u16 lengths (in code points),
# then the UTF-8 text back to back; no separator is ever looked for, so a field
# may hold any character.
from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import Any, assert_never

from shared.domain import FIELD_COUNT, BetFields
from shared.errors import ProtocolError, VersionMismatch
from shared.protocol._digest import DIGEST_SIZE
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

#: First byte of every frame: a C1 control code and a UTF-8 continuation byte,
#: so no ASCII or UTF-8 text line can begin with it (that is how the server tells
#: a protocol client from a netcat health check).
START_BYTE = 0x9E
#: Protocol version; bumped on any incompatible change.
VERSION = 4
_HEADER = struct.Struct(">BBBH")
HEADER_SIZE = _HEADER.size
#: No frame, header included, is ever larger than this (8 KiB).
MAX_FRAME_SIZE = 8 * 1024
MAX_PAYLOAD_SIZE = MAX_FRAME_SIZE - HEADER_SIZE

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_HELLO = struct.Struct(">II")
_WELCOME = struct.Struct(f">IB{CONTEST_ID_SIZE}s{DIGEST_SIZE}s")

#: Bytes a Bets frame spends before its bets: header, start, field count.
BETS_FRAME_OVERHEAD = HEADER_SIZE + _U32.size + _U16.size
_WINNERS = struct.Struct(">BI")
#: Bytes a Winners frame spends before its documents: header, more flag, drawn number, count.
WINNERS_FRAME_OVERHEAD = HEADER_SIZE + _WINNERS.size + _U16.size


def utf8_size(text: str) -> int:
    """Number of bytes `text` takes in UTF-8."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def bet_wire_size(bet: BetFields) -> int:
    """Bytes one bet adds to a Bets frame: five lengths plus the text."""
    return FIELD_COUNT * _U16.size + utf8_size("".join(bet))


def _frame(kind: MessageType, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise ProtocolError(f"frame too large: {kind.name} payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_SIZE}")
    return _HEADER.pack(START_BYTE, VERSION, kind, len(payload)) + payload


def _pack_text_list(fields: Sequence[str]) -> bytes:
    count = len(fields)
    try:
        lengths = _U16.pack(count) + struct.pack(f">{count}H", *map(len, fields))
    except struct.error as exc:
        # A count or a length past u16 is far past MAX_FRAME_SIZE too.
        raise ProtocolError(f"frame too large: a text list of {count} fields does not fit in a frame") from exc
    return lengths + "".join(fields).encode("utf-8")


def _payload(message: Message) -> bytes:
    """The payload of `message`. Exhaustive: mypy rejects a message type without a case."""
    match message:
        case Bets(start=start, bets=bets):
            return _U32.pack(start) + _pack_text_list([field for bet in bets for field in bet])
        case BetsAck(stored=stored):
            return _U32.pack(stored)
        case Hello(agency=agency, total=total):
            return _HELLO.pack(agency, total)
        case Welcome(stored=stored, done=done, contest=contest, digest=digest):
            return _WELCOME.pack(stored, done, contest, digest)
        case Winners(documents=documents, more=more, number=number):
            return _WINNERS.pack(more, number) + _pack_text_list(documents)
        case Error(code=code, detail=detail):
            return _U16.pack(code) + _pack_text_list([detail])
        case Done() | DoneAck() | WinnersQuery():
            return b""
        case _:
            assert_never(message)


def encode(message: Message) -> bytes:
    """Encode one message as one frame; ProtocolError if it does not fit in MAX_FRAME_SIZE."""
    return _frame(message.TYPE, _payload(message))


def check_header_prefix(data: bytes | bytearray) -> None:
    """Check as much of a header as `data` holds, so a text line (ProtocolError) or another version
    (VersionMismatch) is refused early."""
    if data and data[0] != START_BYTE:
        raise ProtocolError(f"bad header: start byte 0x{data[0]:02x}, expected 0x{START_BYTE:02x}")
    if len(data) > 1 and data[1] != VERSION:
        raise VersionMismatch(f"bad header: protocol version {data[1]}, expected {VERSION}")


def parse_header(header: bytes | bytearray) -> tuple[MessageType, int]:
    """Check a frame header (length included, before anyone reads the payload); (type, length)."""
    check_header_prefix(header)
    _, _, kind, length = _HEADER.unpack(header)
    try:
        message_type = MessageType(kind)
    except ValueError:
        raise ProtocolError(f"bad header: unknown message type {kind}") from None
    if length > MAX_PAYLOAD_SIZE:
        raise ProtocolError(f"frame too large: declared payload of {length} bytes exceeds {MAX_PAYLOAD_SIZE}")
    return message_type, length


def _unpack_fixed(layout: struct.Struct, payload: bytes, what: str) -> tuple[Any, ...]:
    if len(payload) < layout.size:
        raise ProtocolError(f"truncated payload: {what} needs {layout.size} bytes, got {len(payload)}")
    if len(payload) > layout.size:
        raise ProtocolError(f"trailing bytes: {what} has {len(payload) - layout.size} bytes too many")
    return layout.unpack(payload)


def _unpack_text_list(payload: bytes, offset: int) -> list[str]:
    """Decode the text list that runs from `offset` to the end of `payload`."""
    if len(payload) < offset + _U16.size:
        raise ProtocolError("truncated payload: payload ends before its field count")
    (count,) = _U16.unpack_from(payload, offset)
    text_offset = offset + _U16.size * (1 + count)
    if len(payload) < text_offset:
        raise ProtocolError(f"truncated payload: payload ends before its {count} field lengths")
    lengths = struct.unpack_from(f">{count}H", payload, offset + _U16.size)
    try:
        text = payload[text_offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"invalid UTF-8: text at byte {text_offset + exc.start} is not UTF-8") from exc
    declared = sum(lengths)
    if declared > len(text):
        raise ProtocolError(f"truncated payload: fields declare {declared} characters, payload has {len(text)}")
    if declared < len(text):
        raise ProtocolError(f"trailing bytes: payload has {len(text) - declared} characters after its fields")
    return [text[a:b] for a, b in pairwise(accumulate(lengths, initial=0))]


def _leading(layout: struct.Struct, payload: bytes, what: str) -> Any:
    if len(payload) < layout.size:
        raise ProtocolError(f"truncated payload: {what} payload ends before its {layout.size}-byte head")
    return layout.unpack_from(payload)[0]


def _flag(value: int, what: str) -> bool:
    if value > 1:
        raise ProtocolError(f"bad field value: {what} flag must be 0 or 1, got {value}")
    return bool(value)


_EMPTY = struct.Struct("")
_NO_PAYLOAD: dict[MessageType, Message] = {
    MessageType.DONE: Done(),
    MessageType.DONE_ACK: DoneAck(),
    MessageType.WINNERS_QUERY: WinnersQuery(),
}


def decode_payload(message_type: MessageType, payload: bytes) -> Message:
    """Decode the payload of a frame whose header said `message_type`; ProtocolError says what is wrong."""
    match message_type:
        case MessageType.HELLO:
            return Hello(*_unpack_fixed(_HELLO, payload, "Hello"))
        case MessageType.BETS_ACK:
            return BetsAck(*_unpack_fixed(_U32, payload, "BetsAck"))
        case MessageType.WELCOME:
            stored, done, contest, digest = _unpack_fixed(_WELCOME, payload, "Welcome")
            return Welcome(stored, _flag(done, "done"), contest, digest)
        case MessageType.BETS:
            start = _leading(_U32, payload, "Bets")
            fields = _unpack_text_list(payload, _U32.size)
            if not fields:
                raise ProtocolError("bad field value: a Bets batch must hold at least one bet")
            if len(fields) % FIELD_COUNT:
                raise ProtocolError(f"wrong field count: {len(fields)} fields is not {FIELD_COUNT} per bet")
            columns = [iter(fields)] * FIELD_COUNT
            return Bets(start, tuple(map(BetFields._make, zip(*columns, strict=True))))
        case MessageType.WINNERS:
            _leading(_WINNERS, payload, "Winners")
            more, number = _WINNERS.unpack_from(payload)
            return Winners(tuple(_unpack_text_list(payload, _WINNERS.size)), _flag(more, "more"), number)
        case MessageType.ERROR:
            raw_code = _leading(_U16, payload, "Error")
            if raw_code not in ErrorCode.__members__.values():
                raise ProtocolError(f"bad field value: unknown error code {raw_code}")
            fields = _unpack_text_list(payload, _U16.size)
            if len(fields) != 1:
                raise ProtocolError(f"wrong field count: Error carries one detail field, got {len(fields)}")
            return Error(ErrorCode(raw_code), fields[0])
        case _:
            _unpack_fixed(_EMPTY, payload, message_type.name)
            return _NO_PAYLOAD[message_type]


def split_winners(documents: Sequence[str], number: int = 0) -> list[Winners]:
    """Cut winning documents into Winners messages of one frame each: at least one, only the last not `more`."""
    parts: list[Winners] = []
    current: list[str] = []
    size = WINNERS_FRAME_OVERHEAD
    for document in documents:
        extra = _U16.size + utf8_size(document)  # its length, then its text
        if current and size + extra > MAX_FRAME_SIZE:
            parts.append(Winners(tuple(current), True, number))
            current, size = [], WINNERS_FRAME_OVERHEAD
        current.append(document)
        size += extra
    parts.append(Winners(tuple(current), False, number))
    return parts
