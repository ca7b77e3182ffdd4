"""The sans-I/O codec against literal byte fixtures (h11's SIMPLE_CASES / tr() style).

Every fixture is checked both ways (encode gives exactly these bytes, decoding
these bytes gives exactly this message) and fed to a FrameDecoder whole, one
byte at a time, and followed by the next frame's bytes, which must stay for the
next call. Every error class has byte fixtures too, and each must be raised as
early as the bytes show the problem.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain import BetFields
from shared.errors import ProtocolError, VersionMismatch
from shared.protocol import (
    BETS_FRAME_OVERHEAD,
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    START_BYTE,
    VERSION,
    Bets,
    Done,
    Error,
    ErrorCode,
    FrameDecoder,
    Hello,
    Message,
    MessageType,
    Winners,
    bet_wire_size,
    encode,
    split_winners,
)
from shared.protocol._wire import MAX_PAYLOAD_SIZE, decode_payload, parse_header
from tests.unit.frames import ANA, FIXTURE_IDS, FIXTURES, MESSAGES_AND_FRAMES
from tests.unit.properties import deterministic


def test_fixtures_cover_every_message_type() -> None:
    assert {message.TYPE for _, message, _ in FIXTURES} == set(MessageType)


# --- feeding modes (h11's tr()) ----------------------------------------------


def feed_whole(data: bytes) -> Iterator[bytes]:
    yield data


def feed_bytewise(data: bytes) -> Iterator[bytes]:
    for index in range(len(data)):
        yield data[index : index + 1]


FEEDERS: dict[str, Callable[[bytes], Iterator[bytes]]] = {"whole": feed_whole, "bytewise": feed_bytewise}


def decode_all(decoder: FrameDecoder, data: bytes, feeder: Callable[[bytes], Iterator[bytes]]) -> list[Message]:
    """Feed `data` in the feeder's pieces, collecting every message as soon as it completes."""
    messages = []
    for piece in feeder(data):
        decoder.feed(piece)
        while (message := decoder.next_message()) is not None:
            messages.append(message)
    return messages


@pytest.mark.parametrize(("message", "frame"), MESSAGES_AND_FRAMES, ids=FIXTURE_IDS)
def test_encode_gives_the_fixture_bytes(message: Message, frame: bytes) -> None:
    assert encode(message) == frame


@pytest.mark.parametrize(("message", "frame"), MESSAGES_AND_FRAMES, ids=FIXTURE_IDS)
def test_header_and_payload_decode_to_the_fixture_message(message: Message, frame: bytes) -> None:
    message_type, length = parse_header(frame[:HEADER_SIZE])
    assert (message_type, length) == (message.TYPE, len(frame) - HEADER_SIZE)
    assert decode_payload(message_type, frame[HEADER_SIZE:]) == message


@pytest.mark.parametrize("mode", FEEDERS)
@pytest.mark.parametrize(("message", "frame"), MESSAGES_AND_FRAMES, ids=FIXTURE_IDS)
def test_decoder_round_trip(message: Message, frame: bytes, mode: str) -> None:
    decoder = FrameDecoder()
    assert decode_all(decoder, frame, FEEDERS[mode]) == [message]
    assert decoder.pending == b""
    assert decoder.bytes_needed == HEADER_SIZE


@pytest.mark.parametrize(("message", "frame"), MESSAGES_AND_FRAMES, ids=FIXTURE_IDS)
def test_decoder_bytewise_returns_none_until_the_last_byte(message: Message, frame: bytes) -> None:
    decoder = FrameDecoder()
    for index, byte in enumerate(frame[:-1]):
        decoder.feed(bytes([byte]))
        assert decoder.next_message() is None
        assert decoder.pending == frame[: index + 1]
        assert 0 < decoder.bytes_needed <= len(frame) - index - 1
    decoder.feed(frame[-1:])
    assert decoder.next_message() == message


@pytest.mark.parametrize("mode", FEEDERS)
@pytest.mark.parametrize(("message", "frame"), MESSAGES_AND_FRAMES, ids=FIXTURE_IDS)
def test_decoder_keeps_trailing_bytes_for_the_next_call(message: Message, frame: bytes, mode: str) -> None:
    following = encode(Hello(9))
    decoder = FrameDecoder()
    # The frame plus the first three bytes of the next one.
    assert decode_all(decoder, frame + following[:3], FEEDERS[mode]) == [message]
    assert decoder.pending == following[:3]
    assert decoder.next_message() is None
    decoder.feed(following[3:])
    assert decoder.next_message() == Hello(9)
    assert decoder.next_message() is None


def test_decoder_yields_back_to_back_frames_one_per_call() -> None:
    stream = b"".join(frame for _, frame in MESSAGES_AND_FRAMES)
    decoder = FrameDecoder()
    decoder.feed(stream)
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    assert out == [message for message, _ in MESSAGES_AND_FRAMES]


def test_feeding_nothing_changes_nothing() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"")
    assert decoder.next_message() is None
    assert decoder.pending == b""
    assert decoder.bytes_needed == HEADER_SIZE


def test_bytes_needed_never_asks_past_the_frame() -> None:
    frame = encode(Bets(0, (ANA,)))
    decoder = FrameDecoder()
    decoder.feed(frame[:2])
    assert decoder.bytes_needed == HEADER_SIZE - 2
    decoder.feed(frame[2:HEADER_SIZE])
    assert decoder.next_message() is None
    assert decoder.bytes_needed == len(frame) - HEADER_SIZE
    decoder.feed(frame[HEADER_SIZE:-1])
    assert decoder.next_message() is None
    assert decoder.bytes_needed == 1


# --- errors --------------------------------------------------------------------


def header(kind: int, length: int) -> bytes:
    return bytes([START_BYTE, VERSION, kind]) + struct.pack(">H", length)


def frame_of(kind: int, payload: bytes) -> bytes:
    return header(kind, len(payload)) + payload


#: Payload errors show only once the whole frame is in.
END = -1

# (id, bytes, what the message says, how many bytes it takes for the decoder to raise)
ERROR_FIXTURES: list[tuple[str, bytes, str, int]] = [
    ("start-byte-nul", b"\x00\x01\x05\x00\x00", "bad header: start byte", 1),
    ("start-byte-text", b"GET / HTTP/1.1\r\n", "bad header: start byte", 1),
    ("start-byte-utf8-lead", b"\xc3\xa9", "bad header: start byte", 1),
    ("version-1", b"\x9e\x01\x05\x00\x00", "protocol version", 2),
    ("version-2", b"\x9e\x02\x05\x00\x00", "protocol version", 2),
    ("version-3", b"\x9e\x03\x05\x00\x00", "protocol version", 2),
    ("version-5", b"\x9e\x05\x05\x00\x00", "protocol version", 2),
    ("type-0", b"\x9e\x04\x00\x00\x00", "unknown message type", 5),
    ("type-10", b"\x9e\x04\x0a\x00\x00", "unknown message type", 5),
    ("type-255", b"\x9e\x04\xff\x00\x04abcd", "unknown message type", 5),
    # Declared lengths over the limit: refused with the header, no payload fed.
    ("length-8188", b"\x9e\x04\x03\x1f\xfc", "frame too large", 5),
    ("length-65535", b"\x9e\x04\x03\xff\xff", "frame too large", 5),
    ("hello-short", frame_of(1, b"\x00\x00\x00\x07\x00\x00\x07"), "truncated payload", END),
    ("welcome-short", frame_of(2, b"\x00\x00\x00\x01"), "truncated payload", END),
    ("bets-no-start", frame_of(3, b"\x00\x00"), "truncated payload", END),
    ("bets-no-count", frame_of(3, b"\x00\x00\x00\x00\x00"), "truncated payload", END),
    ("bets-short-lengths", frame_of(3, b"\x00\x00\x00\x00\x00\x05\x00\x01"), "truncated payload", END),
    (
        "bets-text-short",
        frame_of(3, b"\x00\x00\x00\x00\x00\x05" + b"\x00\x01" * 5 + b"abcd"),
        "truncated payload",
        END,
    ),
    ("winners-empty", frame_of(8, b""), "truncated payload", END),
    ("error-no-code", frame_of(9, b"\x00"), "truncated payload", END),
    ("error-no-count", frame_of(9, b"\x00\x01"), "truncated payload", END),
    ("hello-long", frame_of(1, b"\x00\x00\x00\x07\x00\x00\x00\x00\x00"), "trailing bytes", END),
    ("bets-ack-long", frame_of(4, b"\x00\x00\x00\x07\x00"), "trailing bytes", END),
    ("done-with-payload", frame_of(5, b"\x00"), "trailing bytes", END),
    ("done-ack-with-payload", frame_of(6, b"xy"), "trailing bytes", END),
    ("winners-query-with-payload", frame_of(7, b"?"), "trailing bytes", END),
    ("winners-text-long", frame_of(8, b"\x00" + bytes(4) + b"\x00\x01\x00\x01ab"), "trailing bytes", END),
    ("error-invalid-byte", frame_of(9, b"\x00\x01\x00\x01\x00\x01\xff"), "invalid UTF-8", END),
    ("error-torn-sequence", frame_of(9, b"\x00\x01\x00\x01\x00\x01\xc3"), "invalid UTF-8", END),
    ("error-surrogate", frame_of(9, b"\x00\x01\x00\x01\x00\x01\xed\xa0\x80"), "invalid UTF-8", END),
    ("error-overlong", frame_of(9, b"\x00\x01\x00\x01\x00\x01\xc0\xaf"), "invalid UTF-8", END),
    (
        "bets-invalid-utf8",
        frame_of(3, b"\x00\x00\x00\x00\x00\x05" + b"\x00\x01" * 5 + b"abc\xffe"),
        "invalid UTF-8",
        END,
    ),
    ("bets-four-fields", frame_of(3, b"\x00\x00\x00\x00\x00\x04" + b"\x00\x01" * 4 + b"abcd"), "field count", END),
    ("bets-six-fields", frame_of(3, b"\x00\x00\x00\x00\x00\x06" + b"\x00\x01" * 6 + b"abcdef"), "field count", END),
    ("error-two-details", frame_of(9, b"\x00\x01\x00\x02\x00\x01\x00\x01ab"), "field count", END),
    ("error-no-detail", frame_of(9, b"\x00\x01\x00\x00"), "field count", END),
    ("bets-zero-bets", frame_of(3, b"\x00\x00\x00\x00\x00\x00"), "bad field value", END),
    ("welcome-done-2", frame_of(2, b"\x00\x00\x00\x00\x02" + bytes(48)), "bad field value", END),
    # Version 1's Welcome (stored, done), without contest id and digest.
    ("welcome-v1-layout", frame_of(2, b"\x00\x00\x00\x00\x00"), "truncated payload", END),
    ("welcome-digest-short", frame_of(2, b"\x00\x00\x00\x00\x00" + bytes(47)), "truncated payload", END),
    ("welcome-long", frame_of(2, b"\x00\x00\x00\x00\x00" + bytes(49)), "trailing bytes", END),
    ("winners-more-2", frame_of(8, b"\x02" + bytes(4) + b"\x00\x00"), "bad field value", END),
    ("error-code-0", frame_of(9, b"\x00\x00\x00\x01\x00\x00"), "bad field value", END),
    ("error-code-99", frame_of(9, b"\x00\x63\x00\x01\x00\x00"), "bad field value", END),
]
ERROR_IDS = [name for name, _, _, _ in ERROR_FIXTURES]
ERROR_CASES = [(data, error, len(data) if at == END else at) for _, data, error, at in ERROR_FIXTURES]


@pytest.mark.parametrize("version", [1, 2, 3, 5])
def test_another_protocol_version_is_a_version_mismatch(version: int) -> None:
    decoder = FrameDecoder()
    decoder.feed(bytes([START_BYTE, version]))
    with pytest.raises(VersionMismatch):
        decoder.next_message()


@pytest.mark.parametrize(("data", "error", "at"), ERROR_CASES, ids=ERROR_IDS)
def test_decoder_raises_when_fed_whole(data: bytes, error: str, at: int) -> None:
    decoder = FrameDecoder()
    decoder.feed(data)
    with pytest.raises(ProtocolError, match=error):
        decoder.next_message()


@pytest.mark.parametrize(("data", "error", "at"), ERROR_CASES, ids=ERROR_IDS)
def test_decoder_raises_at_the_first_byte_that_shows_the_problem(data: bytes, error: str, at: int) -> None:
    decoder = FrameDecoder()
    for byte in data[: at - 1]:
        decoder.feed(bytes([byte]))
        assert decoder.next_message() is None
    decoder.feed(data[at - 1 : at])
    with pytest.raises(ProtocolError, match=error):
        decoder.next_message()


@pytest.mark.parametrize(("data", "error", "at"), ERROR_CASES, ids=ERROR_IDS)
def test_decoder_raises_with_trailing_bytes(data: bytes, error: str, at: int) -> None:
    decoder = FrameDecoder()
    decoder.feed(data + encode(Done()))
    with pytest.raises(ProtocolError, match=error):
        decoder.next_message()


def test_oversized_length_is_refused_before_any_payload_arrives() -> None:
    decoder = FrameDecoder()
    decoder.feed(header(MessageType.BETS, MAX_PAYLOAD_SIZE + 1))
    with pytest.raises(ProtocolError, match="frame too large"):
        decoder.next_message()


@pytest.mark.parametrize("kind", list(MessageType))
def test_parse_header_refuses_every_type_over_the_limit(kind: MessageType) -> None:
    with pytest.raises(ProtocolError, match="frame too large"):
        parse_header(header(kind, MAX_PAYLOAD_SIZE + 1))
    assert parse_header(header(kind, MAX_PAYLOAD_SIZE)) == (kind, MAX_PAYLOAD_SIZE)


# --- the 8 KiB boundary -----------------------------------------------------------


def bets_frame_of_size(size: int) -> Bets:
    """One bet whose Bets frame is exactly `size` bytes (the first name takes up the slack)."""
    fixed = BetFields("", "B", "1", "2000-01-01", "7")
    name_bytes = size - BETS_FRAME_OVERHEAD - bet_wire_size(fixed)
    return Bets(0, (fixed._replace(first_name="A" * name_bytes),))


def test_a_frame_of_exactly_8192_bytes_encodes_and_decodes() -> None:
    message = bets_frame_of_size(MAX_FRAME_SIZE)
    frame = encode(message)
    assert len(frame) == MAX_FRAME_SIZE == 8192
    for feeder in FEEDERS.values():
        assert decode_all(FrameDecoder(), frame, feeder) == [message]


def test_a_frame_of_8193_bytes_does_not_encode() -> None:
    with pytest.raises(ProtocolError, match="frame too large"):
        encode(bets_frame_of_size(MAX_FRAME_SIZE + 1))


def test_a_frame_declaring_8193_bytes_does_not_decode() -> None:
    frame = encode(bets_frame_of_size(MAX_FRAME_SIZE))
    too_long = header(MessageType.BETS, MAX_PAYLOAD_SIZE + 1) + frame[HEADER_SIZE:] + b"x"
    decoder = FrameDecoder()
    decoder.feed(too_long[:HEADER_SIZE])
    with pytest.raises(ProtocolError, match="frame too large"):
        decoder.next_message()


@pytest.mark.parametrize(("characters", "fits"), [(4090, True), (4091, False)])
def test_the_limit_counts_bytes_not_characters(characters: int, fits: bool) -> None:
    # An Error frame spends 11 bytes around its detail; "ñ" is two bytes.
    message = Error(ErrorCode.INVALID_BET, "ñ" * characters)
    if fits:
        assert len(encode(message)) == 8191
    else:
        with pytest.raises(ProtocolError, match="frame too large"):
            encode(message)


@pytest.mark.parametrize(
    "message",
    [
        Bets(0, (ANA._replace(first_name="x" * 70_000),)),
        Error(ErrorCode.INVALID_BET, "x" * 70_000),
        Winners(("",) * 70_000),
        Bets(0, (ANA,) * 14_000),
    ],
    ids=["field-over-u16", "detail-over-u16", "count-over-u16", "bets-count-over-u16"],
)
def test_encode_refuses_what_cannot_fit_with_frame_too_large(message: Message) -> None:
    # Lengths and counts are u16, but anything that large is far over 8 KiB: the
    # caller must get the documented ProtocolError, not a struct.error.
    with pytest.raises(ProtocolError, match="frame too large"):
        encode(message)


# --- text survives ---------------------------------------------------------------

SURVIVORS = [
    'José María, "Pepe" | Ñandú; Zoë\nO\'Brien\r\n',
    "",
    " ",
    "\x00\x01\x7f",
    "日本語テキスト",
    "emoji 🎰🎲",
    "\u2028\u2029\x85",
    "\ufeffBOM",
]


@pytest.mark.parametrize("text", SURVIVORS)
def test_any_text_survives_every_text_field(text: str) -> None:
    for message in (
        Bets(1, (BetFields(text, text, text, text, text),)),
        Winners((text, text), more=True),
        Error(ErrorCode.MALFORMED_FRAME, text),
    ):
        assert decode_all(FrameDecoder(), encode(message), feed_bytewise) == [message]


bet_fields = st.builds(BetFields, st.text(), st.text(), st.text(), st.text(), st.text())


@deterministic
@given(start=st.integers(0, 2**32 - 1), bets=st.lists(bet_fields, min_size=1, max_size=8), cut=st.data())
def test_bets_round_trip_property(start: int, bets: list[BetFields], cut: st.DataObject) -> None:
    message = Bets(start, tuple(bets))
    expected_size = BETS_FRAME_OVERHEAD + sum(map(bet_wire_size, bets))
    if expected_size > MAX_FRAME_SIZE:
        with pytest.raises(ProtocolError, match="frame too large"):
            encode(message)
        return
    frame = encode(message)
    assert len(frame) == expected_size
    points = sorted(cut.draw(st.lists(st.integers(0, len(frame)), max_size=6)))
    pieces = [frame[a:b] for a, b in zip([0, *points], [*points, len(frame)], strict=True)]
    decoder = FrameDecoder()
    got = []
    for piece in pieces:
        decoder.feed(piece)
        if (message_out := decoder.next_message()) is not None:
            got.append(message_out)
    assert got == [message]


@deterministic
@given(documents=st.lists(st.text(max_size=20), max_size=30), more=st.booleans())
def test_winners_round_trip_property(documents: list[str], more: bool) -> None:
    message = Winners(tuple(documents), more)
    assert decode_all(FrameDecoder(), encode(message), feed_whole) == [message]


@deterministic
@given(code=st.sampled_from(ErrorCode), detail=st.text())
def test_error_round_trip_property(code: ErrorCode, detail: str) -> None:
    message = Error(code, detail)
    assert decode_all(FrameDecoder(), encode(message), feed_whole) == [message]


@deterministic
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_never_raise_anything_but_protocol_errors(data: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(bytes([START_BYTE, VERSION]) + data)
    try:
        while decoder.next_message() is not None:
            pass
    except ProtocolError:
        pass


# --- split_winners ----------------------------------------------------------------


def check_split(documents: list[str]) -> list[Winners]:
    parts = split_winners(documents)
    assert parts, "always at least one part"
    assert [part.more for part in parts] == [True] * (len(parts) - 1) + [False]
    assert [doc for part in parts for doc in part.documents] == documents
    for index, part in enumerate(parts):
        frame = encode(part)
        assert len(frame) <= MAX_FRAME_SIZE
        if index + 1 < len(parts):
            # Greedy: the next document would not have fitted.
            following = parts[index + 1].documents[0]
            assert len(frame) + 2 + len(following.encode()) > MAX_FRAME_SIZE
    return parts


def test_split_winners_of_nobody_is_one_empty_final_part() -> None:
    assert check_split([]) == [Winners((), more=False)]


def test_split_winners_small_list_is_one_part() -> None:
    assert check_split(["30904465", "21689196"]) == [Winners(("30904465", "21689196"), more=False)]


def test_split_winners_cuts_at_8_kib() -> None:
    documents = [f"{n:08d}" for n in range(3000)]
    parts = check_split(documents)
    # 12 bytes of overhead, 10 per document: 818 fit in one frame.
    assert [len(part.documents) for part in parts] == [818, 818, 818, 546]


def test_split_winners_fills_a_frame_to_exactly_8192_bytes() -> None:
    # (8192 - 12) = 8180 = 818 * 10: 817 eight-digit documents and one of 8.
    documents = [f"{n:08d}" for n in range(817)] + ["1" * 8, "tail"]
    parts = check_split(documents)
    assert len(encode(parts[0])) == MAX_FRAME_SIZE
    assert parts[1].documents == ("tail",)


@deterministic
@given(st.lists(st.text(alphabet="0123456789ñ", min_size=1, max_size=600), max_size=60))
def test_split_winners_property(documents: list[str]) -> None:
    check_split(documents)
