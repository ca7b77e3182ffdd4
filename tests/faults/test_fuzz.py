"""Fuzzing: hypothesis-generated frames and random bytes, to the codec and to a live server.

The codec must raise nothing but its own typed errors. The server must survive every
burst, and then serve a normal agency from upload to winners.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from shared.errors import ProtocolError
from shared.protocol import (
    MAX_FRAME_SIZE,
    START_BYTE,
    VERSION,
    BetsAck,
    Done,
    DoneAck,
    FrameDecoder,
    Hello,
    MessageType,
    Winners,
    WinnersQuery,
)
from tests.rawclient import RawPeer, batch, resume
from tests.support.processes import ServerProcess

CODEC_EXAMPLES = 1_000
SERVER_BURSTS = 8
BURST_SIZE = 40
#: A fuzz connection that neither answers nor closes within this is a hang.
REPLY_TIMEOUT_S = 10.0

_u16 = st.integers(0, 0xFFFF)


@st.composite
def text_list(draw: st.DrawFn) -> bytes:
    """A text list whose lengths may or may not match its text."""
    fields = draw(st.lists(st.text(max_size=12), max_size=12))
    lengths = [draw(st.one_of(st.just(len(field)), _u16)) for field in fields]
    count = draw(st.one_of(st.just(len(fields)), _u16))
    text = "".join(fields).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        text = draw(st.binary(max_size=40))
    return struct.pack(f">H{len(lengths)}H", count, *lengths) + text


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """Frames that are mostly well-formed on the outside and anything on the inside."""
    kind = draw(st.one_of(st.sampled_from(list(MessageType)), st.integers(0, 255)))
    prefix = draw(st.one_of(st.just(b""), st.binary(min_size=1, max_size=6)))
    payload = draw(
        st.one_of(
            st.binary(max_size=200),
            text_list(),
            st.builds(lambda start, rest: struct.pack(">I", start) + rest, st.integers(0, 2**32 - 1), text_list()),
        )
    )
    length = draw(st.one_of(st.just(len(payload)), st.integers(0, MAX_FRAME_SIZE + 100)))
    start = draw(st.one_of(st.just(START_BYTE), st.integers(0, 255)))
    version = draw(st.one_of(st.just(VERSION), st.integers(0, 255)))
    frame = prefix + struct.pack(">BBBH", start, version, int(kind), min(length, 0xFFFF)) + payload
    cut = draw(st.integers(0, len(frame)))
    return frame[:cut] if draw(st.booleans()) else frame


inputs = st.one_of(frames(), st.binary(max_size=300), st.lists(frames(), max_size=4).map(b"".join))


@settings(max_examples=CODEC_EXAMPLES, deadline=None, derandomize=True)
@given(data=inputs, split=st.integers(1, 64))
def test_codec_raises_only_its_own_errors(data: bytes, split: int) -> None:
    decoder = FrameDecoder()
    try:
        for offset in range(0, len(data), split):
            decoder.feed(data[offset : offset + split])
            while decoder.next_message() is not None:
                pass
    except ProtocolError:
        pass


def _fire(port: int, data: bytes) -> None:
    """Send `data` on a fresh connection, close our side, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT_S) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # the server gave up on us first (reset, not connected): allowed


def _normal_agency(port: int) -> None:
    with RawPeer(port) as peer:
        assert resume(peer.request(Hello(1))) == (0, False)
        assert peer.request(batch(0, 20, winning_every=7)) == BetsAck(20)
        assert peer.request(Done()) == DoneAck()
        reply = peer.request(WinnersQuery())
        assert isinstance(reply, Winners)
        assert reply.documents == ("30000000", "30000007", "30000014")


@pytest.mark.parametrize("burst", range(SERVER_BURSTS))
def test_live_server_survives_fuzz_bursts(
    start_server: Callable[..., ServerProcess], tmp_path: Path, burst: int
) -> None:
    server = start_server(
        agencies=1,
        env={"SERVER_FRAME_TIMEOUT_S": "2", "SERVER_MAX_CONNECTIONS_PER_IP": "0"},
        constants={"lottery_gevent.echo.ECHO_TIMEOUT_S": 2.0},
    )

    @settings(
        max_examples=BURST_SIZE,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=inputs)
    def fire(data: bytes) -> None:
        _fire(server.port, data)
        assert server.process.poll() is None

    seed(burst)(fire)()  # seeded per burst: each burst differs, and every run repeats
    assert server.process.poll() is None
    _normal_agency(server.port)
    assert server.stop() == 0
    assert not [line for line in server.lines if "Traceback" in line]
