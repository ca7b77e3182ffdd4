"""Hostile or broken peers: each gets a clear error, the server logs one line, stores
nothing from the bad frame, and keeps serving everyone else."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from shared.protocol import (
    START_BYTE,
    VERSION,
    Bets,
    BetsAck,
    Done,
    DoneAck,
    Error,
    ErrorCode,
    Hello,
    MessageType,
    Welcome,
    WinnersQuery,
    encode,
)
from tests.rawclient import RawPeer, batch, bet, resume
from tests.support.processes import ServerProcess
from tests.support.wire import read_line


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(agencies=2)


def _sync(server: ServerProcess, tag: str) -> None:
    """Round-trip an inline echo and wait for its log line: every line the server
    logged before answering it has then been read."""
    with RawPeer(server.port) as peer:
        peer.send_bytes(f"sync {tag}\n".encode())
        assert read_line(peer.sock) == f"sync {tag}\n".encode()
    server.wait_for_line(rf"msg: sync {tag}$")


def _fail_lines(server: ServerProcess) -> list[str]:
    return [line for line in server.lines if "result: fail" in line]


def _header(kind: int, length: int, start: int = START_BYTE, version: int = VERSION) -> bytes:
    return struct.pack(">BBBH", start, version, kind, length)


@pytest.mark.parametrize(
    ("raw", "error_name"),
    [
        (_header(MessageType.HELLO, 4, version=7) + b"\0\0\0\1", "VersionMismatch"),
        (_header(99, 0), "unknown message type"),
        (_header(MessageType.BETS, 60_000), "frame too large"),
        (_header(MessageType.HELLO, 9) + b"\0\0\0\1\0\0\0\0\0", "trailing bytes"),
        (_header(MessageType.BETS, 4) + b"\0\0\0\0", "truncated payload"),
    ],
)
def test_malformed_frames_are_refused_and_close_the_connection(
    server: ServerProcess, raw: bytes, error_name: str
) -> None:
    before = len(_fail_lines(server))
    with RawPeer(server.port) as peer:
        peer.send_bytes(raw)
        reply = peer.receive()
        assert isinstance(reply, Error) and reply.code is ErrorCode.MALFORMED_FRAME
        assert peer.closed_by_server()
    _sync(server, error_name)
    new = _fail_lines(server)[before:]
    assert len(new) == 1 and "close_connection" in new[0]
    assert server.stored_rows() == []


def test_truncated_frame_then_eof_is_logged_once(server: ServerProcess) -> None:
    with RawPeer(server.port) as peer:
        peer.send(Hello(1))
        assert isinstance(peer.receive(), Welcome)
        frame = encode(batch(0, 10))
        peer.send_bytes(frame[: len(frame) // 2])
    server.wait_for_line(r"close_connection \| result: fail .*truncated frame")
    _sync(server, "truncated")
    assert len(_fail_lines(server)) == 1
    assert server.stored_rows() == []


def test_unknown_agency_is_refused(server: ServerProcess) -> None:
    for agency in (0, 3, 2**32 - 1):
        with RawPeer(server.port) as peer:
            reply = peer.request(Hello(agency))
            assert isinstance(reply, Error) and reply.code is ErrorCode.UNKNOWN_AGENCY
            assert f"agency {agency}" in reply.detail
            assert peer.closed_by_server()
    _sync(server, "unknown")
    assert len(_fail_lines(server)) == 3


def test_invalid_bet_rejects_the_whole_batch_and_keeps_the_connection(server: ServerProcess) -> None:
    with RawPeer(server.port) as peer:
        assert resume(peer.request(Hello(1))) == (0, False)
        good = batch(0, 5).bets
        bad = (good[0], good[1], bet("12x45"), good[3], good[4])
        reply = peer.request(Bets(0, bad))
        assert isinstance(reply, Error) and reply.code is ErrorCode.INVALID_BET
        assert "document" in reply.detail and "12x45" in reply.detail
        assert server.stored_rows() == []
        server.wait_for_line(r"action: apuesta_recibida \| result: fail \| cantidad: 5")
        # The same connection goes on: the corrected batch is stored from the same start.
        assert peer.request(Bets(0, good)) == BetsAck(5)
    assert len(server.stored_rows()) == 5


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        (("", "Pérez", "1", "1990-01-01", "1"), "first_name"),
        (("Ana", "  ", "1", "1990-01-01", "1"), "last_name"),
        (("Ana", "Pérez", "1", "1990-02-30", "1"), "birthdate"),
        (("Ana", "Pérez", "1", "19900101", "1"), "birthdate"),
        (("Ana", "Pérez", "1", "1990-01-01", "7.5"), "number"),
    ],
)
def test_each_validation_rule_names_its_field(server: ServerProcess, fields: tuple[str, ...], field_name: str) -> None:
    from shared.domain import BetFields

    with RawPeer(server.port) as peer:
        peer.request(Hello(2))
        reply = peer.request(Bets(0, (BetFields(*fields),)))
        assert isinstance(reply, Error) and reply.code is ErrorCode.INVALID_BET
        assert field_name in reply.detail
    assert server.stored_rows() == []


def test_out_of_sequence_batch_is_refused(server: ServerProcess) -> None:
    with RawPeer(server.port) as peer:
        peer.request(Hello(1))
        assert peer.request(batch(0, 3)) == BetsAck(3)
        reply = peer.request(batch(0, 3))  # a replay
        assert isinstance(reply, Error) and reply.code is ErrorCode.OUT_OF_SEQUENCE
        reply = peer.request(batch(7, 3))  # a gap
        assert isinstance(reply, Error) and reply.code is ErrorCode.OUT_OF_SEQUENCE
        assert peer.request(batch(3, 2)) == BetsAck(5)
    assert len(server.stored_rows()) == 5


def test_bets_after_done_are_refused_and_the_query_still_works(server: ServerProcess) -> None:
    with RawPeer(server.port) as first, RawPeer(server.port) as second:
        first.request(Hello(1))
        assert first.request(batch(0, 2, winning_every=2)) == BetsAck(2)
        assert first.request(Done()) == DoneAck()
        reply = first.request(batch(2, 2))
        assert isinstance(reply, Error) and reply.code is ErrorCode.BETS_AFTER_DONE
        assert first.request(Done()) == DoneAck()  # idempotent

        second.request(Hello(2))
        assert second.request(Done()) == DoneAck()
        winners = first.request(WinnersQuery())
        assert winners.documents == ("30000000",)  # type: ignore[union-attr]
    assert len(server.stored_rows()) == 2


def test_winners_query_before_done_is_unexpected(server: ServerProcess) -> None:
    with RawPeer(server.port) as peer:
        reply = peer.request(WinnersQuery())  # before Hello
        assert isinstance(reply, Error) and reply.code is ErrorCode.UNEXPECTED_MESSAGE
        peer.request(Hello(1))
        reply = peer.request(WinnersQuery())  # before Done
        assert isinstance(reply, Error) and reply.code is ErrorCode.UNEXPECTED_MESSAGE
        assert "WinnersQuery" in reply.detail
        assert peer.request(batch(0, 1)) == BetsAck(1)


def test_a_second_connection_for_an_agency_takes_over(server: ServerProcess) -> None:
    with RawPeer(server.port) as old:
        old.request(Hello(1))
        assert old.request(batch(0, 4)) == BetsAck(4)
        with RawPeer(server.port) as new:
            assert resume(new.request(Hello(1))) == (4, False)
            (superseded,) = old.last_words()
            assert isinstance(superseded, Error) and superseded.code is ErrorCode.SUPERSEDED
            assert new.request(batch(4, 1)) == BetsAck(5)
    server.wait_for_line(r"action: takeover \| result: success \| agency: 1")
    assert len(server.stored_rows()) == 5


def test_garbage_does_not_stop_other_agencies(
    server: ServerProcess,
) -> None:
    with RawPeer(server.port) as good:
        good.request(Hello(1))
        with RawPeer(server.port) as bad:
            bad.send_bytes(bytes([START_BYTE]) + b"\xff" * 64)
            assert isinstance(bad.receive(), Error)
        assert good.request(batch(0, 3)) == BetsAck(3)
