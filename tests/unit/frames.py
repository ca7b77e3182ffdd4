"""Literal frames of every message type, shared by the codec and transport tests.

The bytes are written out by hand from the layout in shared/protocol/_wire.py;
nothing here is computed by the code under test.
"""

from __future__ import annotations

from shared.domain import BetFields
from shared.protocol import (
    Bets,
    BetsAck,
    Done,
    DoneAck,
    Error,
    ErrorCode,
    Hello,
    Message,
    Welcome,
    Winners,
    WinnersQuery,
)

ANA = BetFields("Ana", "Lorca", "123", "2000-01-31", "7574")
ZOE = BetFields("Zoë", "Núñez", "1", "1999-12-31", "0")
NASTY = BetFields("a|b;c", 'd\ne"f', "22", "2001-02-03", "999999999")
#: A contest id and a digest, written out: 0x00..0x0f and 0x20..0x3f.
CONTEST = bytes(range(16))
DIGEST = bytes(range(0x20, 0x40))
#: SHA-256 of no bytes at all (the digest of no bets).
EMPTY_SHA256 = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

# (id, message, frame): header, then the payload's fields, joined with "+".
FIXTURES: list[tuple[str, Message, bytes]] = [
    ("hello", Hello(7), b"\x9e\x04\x01\x00\x08" + b"\x00\x00\x00\x07" + b"\x00\x00\x00\x00"),
    ("hello-total", Hello(7, 300), b"\x9e\x04\x01\x00\x08" + b"\x00\x00\x00\x07" + b"\x00\x00\x01\x2c"),
    ("hello-max", Hello(2**32 - 1, 2**32 - 1), b"\x9e\x04\x01\x00\x08" + b"\xff" * 8),
    (
        "welcome",
        Welcome(300, True, CONTEST, DIGEST),
        b"\x9e\x04\x02\x00\x35" + b"\x00\x00\x01\x2c" + b"\x01" + CONTEST + DIGEST,
    ),
    (
        "welcome-fresh",
        Welcome(0, False, bytes(16), EMPTY_SHA256),
        b"\x9e\x04\x02\x00\x35" + b"\x00\x00\x00\x00" + b"\x00" + bytes(16) + EMPTY_SHA256,
    ),
    (
        "bets-one",
        Bets(2, (ANA,)),
        b"\x9e\x04\x03\x00\x29"
        b"\x00\x00\x00\x02"  # start
        b"\x00\x05"  # five fields
        b"\x00\x03\x00\x05\x00\x03\x00\x0a\x00\x04"  # their lengths
        b"AnaLorca1232000-01-317574",
    ),
    (
        # Lengths count code points ("Zoë" is 3, in 4 bytes); separators and a
        # newline travel as plain text.
        "bets-utf8-separators",
        Bets(100, (ZOE, NASTY)),
        b"\x9e\x04\x03\x00\x50"
        b"\x00\x00\x00\x64"
        b"\x00\x0a"
        b"\x00\x03\x00\x05\x00\x01\x00\x0a\x00\x01"
        b"\x00\x05\x00\x05\x00\x02\x00\x0a\x00\x09"
        b"Zo\xc3\xab"
        b"N\xc3\xba\xc3\xb1ez"
        b"1"
        b"1999-12-31"
        b"0"
        b"a|b;c"
        b'd\ne"f'
        b"22"
        b"2001-02-03"
        b"999999999",
    ),
    ("bets-ack", BetsAck(42), b"\x9e\x04\x04\x00\x04" + b"\x00\x00\x00\x2a"),
    ("done", Done(), b"\x9e\x04\x05\x00\x00"),
    ("done-ack", DoneAck(), b"\x9e\x04\x06\x00\x00"),
    ("winners-query", WinnersQuery(), b"\x9e\x04\x07\x00\x00"),
    (
        "winners",
        Winners(("30904465", "1"), more=False, number=7574),
        b"\x9e\x04\x08\x00\x14" + b"\x00" + b"\x00\x00\x1d\x96" + b"\x00\x02" + b"\x00\x08\x00\x01" + b"309044651",
    ),
    ("winners-empty-more", Winners((), more=True), b"\x9e\x04\x08\x00\x07" + b"\x01" + b"\x00" * 4 + b"\x00\x00"),
    (
        "error",
        Error(ErrorCode.INVALID_BET, "bad ñ"),
        b"\x9e\x04\x09\x00\x0c" + b"\x00\x04" + b"\x00\x01" + b"\x00\x05" + b"bad \xc3\xb1",
    ),
    (
        "error-empty-detail",
        Error(ErrorCode.SERVER_BUSY, ""),
        b"\x9e\x04\x09\x00\x06" + b"\x00\x0b" + b"\x00\x01" + b"\x00\x00",
    ),
]
FIXTURE_IDS = [name for name, _, _ in FIXTURES]
MESSAGES_AND_FRAMES = [(message, frame) for _, message, frame in FIXTURES]
