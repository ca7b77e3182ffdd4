"""shared.transport over fake sockets: short reads, short writes, EOF, timeouts.

The fakes (tests/unit/fakes.py) cut every recv short (one byte, or seeded-random
chunks) and accept only part of every send, so the loops in send_all,
recv_exact and receive_message are exercised the way TCP exercises them.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import gevent
import gevent.socket
import pytest
from gevent.event import Event

from shared import transport
from shared.errors import ConnectFailed, PeerClosed, ProtocolError, Timeout
from shared.protocol import Bets, Done, FrameDecoder, Hello, Message, Winners, encode
from shared.transport import Stream, receive_message, send_message
from tests.unit.fakes import BlockingFakeSocket, FakeSocket
from tests.unit.frames import ANA, MESSAGES_AND_FRAMES, NASTY, ZOE

SEEDS = [0, 1, 2, 3, 42]
DATA = bytes(range(256)) * 40  # 10 KiB


class Hung(Exception):
    """Raised by a test's safety net: the code under test waited where it should not have."""


@pytest.fixture
def safety_net() -> Iterator[None]:
    """Turn a hang into a failure. Never fires in a passing test; no assertion reads the clock."""
    with gevent.Timeout(10, Hung("the code under test hung")):
        yield


# --- send_all ---------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 1000])
def test_send_all_writes_everything_across_partial_sends(limit: int) -> None:
    sock = FakeSocket(send_limit=limit)
    Stream(sock).send_all(DATA)
    assert sock.sent == DATA
    assert len(sock.send_counts) == -(-len(DATA) // limit)


@pytest.mark.parametrize("seed", SEEDS)
def test_send_all_with_random_partial_sends(seed: int) -> None:
    sock = FakeSocket(seed=seed, send_limit=50)
    Stream(sock).send_all(DATA)
    assert sock.sent == DATA
    assert len(sock.send_counts) > len(DATA) // 50


def test_send_all_of_nothing_sends_nothing() -> None:
    sock = FakeSocket()
    Stream(sock).send_all(b"")
    assert sock.send_counts == []


def test_send_timeout_becomes_shared_timeout() -> None:
    sock = FakeSocket(send_script=(3, TimeoutError("timed out")))
    with pytest.raises(Timeout) as caught:
        Stream(sock).send_all(b"0123456789")
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert sock.sent == b"012"


@pytest.mark.parametrize("error", [BrokenPipeError(errno.EPIPE, "pipe"), ConnectionResetError(errno.ECONNRESET, "rst")])
def test_send_on_a_broken_connection_becomes_peer_closed(error: OSError) -> None:
    sock = FakeSocket(send_script=(4, error))
    with pytest.raises(PeerClosed) as caught:
        Stream(sock).send_all(b"0123456789")
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("seed", SEEDS)
def test_send_message_sends_one_whole_frame(seed: int) -> None:
    message = Bets(5, (ANA, ZOE, NASTY))
    sock = FakeSocket(seed=seed)
    send_message(Stream(sock), message)
    assert sock.sent == encode(message)


# --- recv_exact -------------------------------------------------------------------


def test_recv_exact_across_one_byte_recvs() -> None:
    sock = FakeSocket(DATA, recv_limit=1)
    assert Stream(sock).recv_exact(1000) == DATA[:1000]
    assert sock.recv_sizes == list(range(1000, 0, -1))
    assert sock.unread == DATA[1000:]


@pytest.mark.parametrize("seed", SEEDS)
def test_recv_exact_across_random_chunks(seed: int) -> None:
    sock = FakeSocket(DATA, seed=seed)
    assert Stream(sock).recv_exact(777) + Stream(sock).recv_exact(1) + Stream(sock).recv_exact(len(DATA) - 778) == DATA
    assert sock.unread == b""


def test_recv_exact_across_scripted_chunks() -> None:
    sock = FakeSocket(b"ab", b"c", b"defg")
    assert Stream(sock).recv_exact(5) == b"abcde"
    assert sock.unread == b"fg"


def test_eof_mid_read_carries_partial_and_expected() -> None:
    sock = FakeSocket(b"abc", recv_limit=1)
    with pytest.raises(PeerClosed) as caught:
        Stream(sock).recv_exact(10)
    assert caught.value.partial == b"abc"
    assert caught.value.expected == 10
    assert caught.value.mid_frame


def test_eof_before_any_byte_is_not_mid_frame() -> None:
    with pytest.raises(PeerClosed) as caught:
        Stream(FakeSocket()).recv_exact(4)
    assert caught.value.partial == b""
    assert caught.value.expected == 4
    assert not caught.value.mid_frame


def test_recv_timeout_becomes_shared_timeout() -> None:
    sock = FakeSocket(b"ab", TimeoutError("timed out"), b"cd")
    with pytest.raises(Timeout) as caught:
        Stream(sock).recv_exact(4)
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert not isinstance(caught.value, OSError)


def test_socket_timeout_alias_becomes_shared_timeout() -> None:
    with pytest.raises(Timeout):
        Stream(FakeSocket(TimeoutError("timed out"))).recv_exact(1)


def test_connection_reset_mid_read_becomes_peer_closed_with_partial() -> None:
    reset = ConnectionResetError(errno.ECONNRESET, "reset by peer")
    sock = FakeSocket(b"xy", reset)
    with pytest.raises(PeerClosed) as caught:
        Stream(sock).recv_exact(5)
    assert (caught.value.partial, caught.value.expected) == (b"xy", 5)
    assert caught.value.__cause__ is reset


# --- recv_line --------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_recv_line_across_chunks(seed: int) -> None:
    sock = FakeSocket(b"hello, world\n", seed=seed)
    assert Stream(sock).recv_line(100) == b"hello, world\n"


def test_recv_line_returns_what_arrived_before_eof() -> None:
    assert Stream(FakeSocket(b"no newline", recv_limit=3)).recv_line(100) == b"no newline"
    assert Stream(FakeSocket()).recv_line(100) == b""


def test_recv_line_refuses_an_overlong_line() -> None:
    with pytest.raises(ProtocolError):
        Stream(FakeSocket(b"x" * 50)).recv_line(10)


def test_recv_line_timeout_and_reset() -> None:
    with pytest.raises(Timeout):
        Stream(FakeSocket(b"part", TimeoutError())).recv_line(100)
    with pytest.raises(PeerClosed) as caught:
        Stream(FakeSocket(b"part", ConnectionResetError())).recv_line(100)
    assert caught.value.partial == b"part"


# --- receive_message --------------------------------------------------------------

FOLLOWING = encode(Hello(3)) + b"garbage that must stay unread"


@pytest.mark.parametrize(("message", "frame"), MESSAGES_AND_FRAMES)
@pytest.mark.parametrize("chunks", ["one-byte", "random", "whole"])
def test_receive_message_never_reads_past_the_frame(message: Message, frame: bytes, chunks: str) -> None:
    options = {"one-byte": {"recv_limit": 1}, "random": {"seed": len(frame)}, "whole": {}}[chunks]
    sock = FakeSocket(frame + FOLLOWING, **options)  # type: ignore[arg-type]
    assert receive_message(Stream(sock), FrameDecoder()) == message
    assert sock.unread == FOLLOWING


@pytest.mark.parametrize("seed", SEEDS)
def test_receive_message_in_sequence_with_one_decoder(seed: int) -> None:
    messages = [message for message, _ in MESSAGES_AND_FRAMES]
    sock = FakeSocket(b"".join(frame for _, frame in MESSAGES_AND_FRAMES), seed=seed)
    decoder = FrameDecoder()
    assert [receive_message(Stream(sock), decoder) for _ in messages] == messages
    assert sock.unread == b""


def test_receive_message_returns_a_frame_already_buffered_without_reading() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode(Done()) + encode(Hello(1)))
    assert decoder.next_message() == Done()
    sock = FakeSocket(b"unread")
    assert receive_message(Stream(sock), decoder) == Hello(1)
    assert sock.recv_sizes == []


def test_receive_message_completes_a_frame_partly_buffered() -> None:
    frame = encode(Winners(("1", "22", "333")))
    decoder = FrameDecoder()
    decoder.feed(frame[:7])
    sock = FakeSocket(frame[7:] + b"next", recv_limit=2)
    assert receive_message(Stream(sock), decoder) == Winners(("1", "22", "333"))
    assert sock.unread == b"next"


def test_eof_between_frames_is_not_mid_frame() -> None:
    with pytest.raises(PeerClosed) as caught:
        receive_message(Stream(FakeSocket()), FrameDecoder())
    assert not caught.value.mid_frame


@pytest.mark.parametrize("cut", [1, 3, 5, 6, 20])
def test_eof_mid_frame_reports_the_whole_frame(cut: int) -> None:
    frame = encode(Bets(0, (ANA,)))
    with pytest.raises(PeerClosed) as caught:
        receive_message(Stream(FakeSocket(frame[:cut], recv_limit=2)), FrameDecoder())
    assert caught.value.mid_frame
    assert caught.value.partial == frame[:cut]
    assert caught.value.expected == (5 if cut < 5 else len(frame))


def test_a_bad_start_byte_is_refused_within_the_header() -> None:
    sock = FakeSocket(b"GET / HTTP/1.1\r\n")
    with pytest.raises(ProtocolError):
        receive_message(Stream(sock), FrameDecoder())
    assert sock.unread == b" HTTP/1.1\r\n"  # the first read asks for a header's worth, no more


def test_an_oversized_frame_is_refused_before_its_payload_is_read() -> None:
    payload = b"p" * 100
    sock = FakeSocket(b"\x9e\x04\x03\xff\xff" + payload, recv_limit=1)
    with pytest.raises(ProtocolError):
        receive_message(Stream(sock), FrameDecoder())
    assert sock.unread == payload


def test_an_unknown_type_is_refused_with_the_header() -> None:
    sock = FakeSocket(b"\x9e\x04\x63\x00\x02ab")
    with pytest.raises(ProtocolError):
        receive_message(Stream(sock), FrameDecoder())
    assert sock.unread == b"ab"


def test_idle_timeout_before_the_first_byte() -> None:
    with pytest.raises(Timeout):
        receive_message(Stream(FakeSocket(TimeoutError())), FrameDecoder())


def test_socket_timeout_inside_a_frame() -> None:
    frame = encode(Hello(1))
    with pytest.raises(Timeout):
        receive_message(Stream(FakeSocket(frame[:4], TimeoutError())), FrameDecoder(), None)


@pytest.mark.parametrize("cut", [1, 4, 5, 7])
def test_frame_timeout_ends_a_trickled_frame(cut: int, safety_net: None) -> None:
    frame = encode(Hello(1))
    sock = BlockingFakeSocket(frame[:cut], recv_limit=1)
    with pytest.raises(Timeout, match="frame not complete"):
        receive_message(Stream(sock), FrameDecoder(), 0.001)
    assert sock.blocked == 1


def test_frame_timeout_does_not_apply_before_the_first_byte(safety_net: None) -> None:
    # Waiting for a frame to start is start_within_s's job (None here: no bound).
    # The frame timeout must not be armed yet: only the safety net ends this wait.
    sock = BlockingFakeSocket()
    with pytest.raises(Hung), gevent.Timeout(0.05, Hung("waited for the first byte, as it should")):
        receive_message(Stream(sock), FrameDecoder(), 0.001)
    assert sock.blocked == 1


def test_a_frame_completed_in_time_is_returned(safety_net: None) -> None:
    sock = BlockingFakeSocket(encode(Hello(8)), recv_limit=1)
    assert receive_message(Stream(sock), FrameDecoder(), 60) == Hello(8)
    assert sock.blocked == 0


# --- open_connection --------------------------------------------------------------


class FakeTcpSocket:
    def __init__(self) -> None:
        self.options: dict[tuple[int, int], int] = {}

    def setsockopt(self, level: int, name: int, value: int) -> None:
        self.options[(level, name)] = value


def test_open_connection_configures_the_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    created = FakeTcpSocket()
    calls = []

    def create_connection(address: tuple[str, int], timeout: float) -> FakeTcpSocket:
        calls.append((address, timeout))
        return created

    monkeypatch.setattr(gevent.socket, "create_connection", create_connection)
    stream = transport.open_connection("server", 12345, 3.0)
    assert stream._sock is created  # type: ignore[comparison-overlap]
    assert calls == [(("server", 12345), 3.0)]
    assert created.options[(socket.IPPROTO_TCP, socket.TCP_NODELAY)] == 1
    assert created.options[(socket.SOL_SOCKET, socket.SO_KEEPALIVE)] == 1


@pytest.mark.parametrize("error", [ConnectionRefusedError(errno.ECONNREFUSED, "refused"), socket.gaierror(-2, "nx")])
def test_open_connection_failure_becomes_connect_failed(monkeypatch: pytest.MonkeyPatch, error: OSError) -> None:
    def create_connection(address: tuple[str, int], timeout: float) -> None:
        raise error

    monkeypatch.setattr(gevent.socket, "create_connection", create_connection)
    with pytest.raises(ConnectFailed, match="server:1") as caught:
        transport.open_connection("server", 1, 1.0)
    assert caught.value.__cause__ is error


# --- peek ----------------------------------------------


def test_peek_leaves_the_byte_for_the_next_read() -> None:
    stream = Stream(FakeSocket(b"\x9ehello", recv_limit=2))
    assert stream.peek_byte() == b"\x9e"
    assert stream.peek_byte() == b"\x9e"
    assert stream.recv_exact(6) == b"\x9ehello"
    assert stream.peek_byte() == b""


def test_peek_translates_errors() -> None:
    with pytest.raises(Timeout):
        Stream(FakeSocket(TimeoutError())).peek_byte()
    with pytest.raises(PeerClosed):
        Stream(FakeSocket(ConnectionResetError())).peek_byte()


# --- absolute deadlines and fairness -----------------------------------------------


def test_start_within_bounds_the_wait_for_the_first_byte(safety_net: None) -> None:
    sock = BlockingFakeSocket()
    with pytest.raises(Timeout, match="idle too long"):
        receive_message(Stream(sock), FrameDecoder(), 60, start_within_s=0.001, late="idle too long")


def test_end_within_bounds_the_whole_frame_however_it_trickles(safety_net: None) -> None:
    frame = encode(Hello(1))
    sock = BlockingFakeSocket(frame[:3], recv_limit=1)
    with pytest.raises(Timeout, match="no Hello"):
        receive_message(Stream(sock), FrameDecoder(), 60, start_within_s=60, end_within_s=0.001, late="no Hello")
    assert sock.blocked == 1


def test_a_deadline_already_past_reads_nothing() -> None:
    sock = FakeSocket(encode(Hello(1)))
    with pytest.raises(Timeout, match="late"):
        receive_message(Stream(sock), FrameDecoder(), 60, start_within_s=0, late="late")
    assert sock.recv_sizes == []


def test_a_frame_read_in_one_byte_chunks_lets_other_greenlets_run() -> None:
    # A TLS stream returns buffered one-byte records without a switch: the loop must yield itself.
    ticks: list[int] = []

    def other() -> None:
        while True:
            ticks.append(1)
            gevent.sleep(0)

    runner = gevent.spawn(other)
    gevent.sleep(0)
    before = len(ticks)
    assert Stream(FakeSocket(DATA[:200], recv_limit=1)).recv_exact(200) == DATA[:200]
    runner.kill()
    assert len(ticks) - before >= 100


def test_send_message_within_a_bound(safety_net: None) -> None:
    sock = FakeSocket()
    never = Event()
    sock.send = lambda data: int(bool(never.wait()))  # type: ignore[method-assign]  # a peer that never reads
    with pytest.raises(Timeout, match="not sent within"):
        send_message(Stream(sock), Hello(1), 0.01)
