"""shared.tls over a gevent socketpair: the handshake, the
peeked byte that must not be lost, the draw-time watch, and the error mapping."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import gevent
import gevent.socket
import pytest

from shared.errors import ConfigError, PeerClosed, ProtocolError, Timeout, TlsRejected
from shared.protocol import BetsAck, FrameDecoder, Hello
from shared.tls import (
    TLS_HANDSHAKE_BYTE,
    TLS_HANDSHAKE_FAILURE_ALERT,
    TlsStream,
    refuse_tls_handshake,
    server_tls_context,
    start_tls,
)
from shared.transport import Stream, receive_message, send_message, translated, within
from tests.support.tls import Contest
from tests.unit.fakes import FakeSocket

#: Bound on every wait in these tests: reaching it means the code under test hung.
HANG_S = 10.0


@pytest.fixture(scope="module")
def contest(tmp_path_factory: pytest.TempPathFactory) -> Contest:
    return Contest.make(tmp_path_factory.mktemp("contest"))


def handshake(contest: Contest, agency: int = 1) -> tuple[TlsStream, TlsStream]:
    """(server side, client side) of one TLS connection over a socketpair."""
    left, right = gevent.socket.socketpair()
    server_context = server_tls_context(contest.directory / "server.pem", contest.directory / "server.key", contest.ca)
    accepting = gevent.spawn(start_tls, Stream(left), server_context)
    with gevent.Timeout(HANG_S):
        client = start_tls(Stream(right), contest.context(agency), server_hostname="localhost")
    return accepting.get(timeout=HANG_S), client


@pytest.fixture
def pair(contest: Contest) -> Iterator[tuple[TlsStream, TlsStream]]:
    server, client = handshake(contest)
    yield server, client
    server.close()
    client.close()


def test_the_server_learns_the_agency_from_the_certificate(contest: Contest) -> None:
    server, client = handshake(contest, agency=4)
    with server, client:
        assert server.peer_name == "agency-4"
        assert Stream(gevent.socket.socketpair()[0]).peer_name is None  # a plain stream has no peer name


def test_a_peeked_byte_is_read_again_and_frames_arrive_whole(pair: tuple[TlsStream, TlsStream]) -> None:
    server, client = pair
    send_message(client, Hello(7))
    with gevent.Timeout(HANG_S):
        assert server.peek_byte() == server.peek_byte() != b""
        assert receive_message(server, FrameDecoder(), HANG_S) == Hello(7)
        send_message(server, BetsAck(3))
        assert receive_message(client, FrameDecoder(), HANG_S) == BetsAck(3)


def test_a_peek_sees_data_buffered_by_openssl(pair: tuple[TlsStream, TlsStream]) -> None:
    server, client = pair
    client.send_all(b"ab")  # one record: reading one byte leaves the other in OpenSSL's buffer
    with gevent.Timeout(HANG_S):
        assert server.recv_exact(1) == b"a"
        assert server.peek_byte() == b"b"
        assert server.recv_exact(1) == b"b"


def test_a_peek_wakes_when_the_peer_sends_or_vanishes(contest: Contest) -> None:
    # What the draw wait watches: a greenlet blocked in peek_byte ends when the peer acts.
    for act in (lambda peer: peer.send_all(b"x"), lambda peer: peer.close()):
        server, client = handshake(contest)
        with server, client:
            watcher = gevent.spawn(server.peek_byte)
            gevent.spawn_later(0, act, client)
            # a ragged EOF (no close_notify) reads as EOF, as on a plain socket
            assert watcher.get(timeout=HANG_S) in (b"x", b"")


def test_a_handshake_that_stalls_times_out(contest: Contest) -> None:
    left, right = gevent.socket.socketpair()
    with right:
        context = server_tls_context(contest.directory / "server.pem", contest.directory / "server.key", contest.ca)
        with pytest.raises(Timeout, match="handshake"):
            with within(0.05, "TLS handshake not complete"):
                start_tls(Stream(left), context)


def test_a_client_refuses_a_server_name_its_certificate_lacks(contest: Contest) -> None:
    left, right = gevent.socket.socketpair()
    context = server_tls_context(contest.directory / "server.pem", contest.directory / "server.key", contest.ca)
    accepting = gevent.spawn(start_tls, Stream(left), context)
    with pytest.raises(TlsRejected, match="mismatch"), gevent.Timeout(HANG_S):
        start_tls(Stream(right), contest.context(1), server_hostname="elsewhere")
    with pytest.raises((TlsRejected, PeerClosed)):
        accepting.get(timeout=HANG_S)


def test_ssl_errors_map_to_typed_errors() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "certificate has expired"
    alert = ssl.SSLError(1, "alert")
    alert.reason = "TLSV1_ALERT_UNKNOWN_CA"
    broken = ssl.SSLError(1, "bad record mac")
    broken.reason = "DECRYPTION_FAILED_OR_BAD_RECORD_MAC"
    cases: list[tuple[OSError, type[Exception], str | None]] = [
        (verify, TlsRejected, "certificate has expired"),
        (alert, TlsRejected, "unknown_ca"),
        (broken, PeerClosed, None),
        (ssl.SSLEOFError(8, "EOF"), PeerClosed, None),
    ]
    for error, expected, words in cases:
        with pytest.raises(expected, match=words) as raised, translated("recv"):
            raise error
        assert raised.value.__cause__ is error


def test_missing_or_mismatched_files_fail_setup(contest: Contest, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        server_tls_context(tmp_path / "none.pem", tmp_path / "none.key", contest.ca)
    with pytest.raises(ConfigError):  # agency 1's key does not go with the server's certificate
        server_tls_context(contest.directory / "server.pem", contest.key(1), contest.ca)


# --- a handshake on a server with TLS off ------------------------------------------------


def _record(body: bytes, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    return bytes([TLS_HANDSHAKE_BYTE, 0x03, 0x01]) + length.to_bytes(2, "big") + body


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_client_hello_is_read_whole_then_answered_with_a_fatal_alert(seed: int) -> None:
    hello = _record(bytes(range(200)))
    sock = FakeSocket(hello + b"after", seed=seed)
    refuse_tls_handshake(Stream(sock), timeout=5)
    assert bytes(sock.sent) == TLS_HANDSHAKE_FAILURE_ALERT
    assert sock.unread == b"after"  # exactly the record, nothing past it


def test_a_record_longer_than_tls_allows_is_not_read_and_gets_no_answer() -> None:
    body = bytes(2**14 + 1)
    sock = FakeSocket(_record(body))
    with pytest.raises(ProtocolError):
        refuse_tls_handshake(Stream(sock), timeout=5)
    assert sock.sent == b"" and sock.unread == body  # the header only was read


def test_a_record_cut_short_is_a_closed_peer() -> None:
    sock = FakeSocket(_record(b"abc", declared=100))
    with pytest.raises(PeerClosed):
        refuse_tls_handshake(Stream(sock), timeout=5)
    assert sock.sent == b""
