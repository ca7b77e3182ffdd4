"""lottery_gevent.session over fake sockets: how refusals reach the peer.

Not a full session suite (the loopback tests in tests/integration drive real
sockets); these pin down two refusals where the exact bytes the peer receives
matter. The session gets real parts (a BetStore in tmp_path without fsync, a
Lottery, an AgencyRegistry), exactly what the server would hand it; nothing
listens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.event
import gevent.socket
import pytest

from lottery_gevent.config import ServerConfig
from lottery_gevent.lottery import Lottery
from lottery_gevent.registry import AgencyRegistry
from lottery_gevent.server import STOP_TIMEOUT_S
from lottery_gevent.session import AgencySession
from lottery_gevent.storage import BetStore
from shared.protocol import (
    EMPTY_DIGEST,
    Bets,
    BetsAck,
    Done,
    Error,
    ErrorCode,
    FrameDecoder,
    Hello,
    Message,
    Welcome,
    Winners,
    WinnersQuery,
    encode,
)
from shared.transport import Stream, receive_message, send_message
from tests.unit.fakes import BlockingFakeSocket, FakeSocket
from tests.unit.frames import ANA


@dataclass
class Parts:
    """What the server hands each session."""

    config: ServerConfig
    store: BetStore
    lottery: Lottery
    registry: AgencyRegistry


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Parts]:
    monkeypatch.chdir(tmp_path)
    store = BetStore(durable=False)
    store.open()
    config = ServerConfig(ip="127.0.0.1", port=0, agencies=2)
    yield Parts(config, store, Lottery(store, 2), AgencyRegistry(STOP_TIMEOUT_S))
    store.close()


def replies(sock: FakeSocket) -> list[Message]:
    decoder = FrameDecoder()
    decoder.feed(bytes(sock.sent))
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    assert decoder.pending == b"", "a reply frame was cut short"
    return out


def serve(parts: Parts, sock: FakeSocket) -> gevent.Greenlet:
    """Run one session over `sock` in its own greenlet, as the server's handler would."""

    def handle() -> None:
        stream = Stream(sock)
        session = AgencySession(
            stream, "192.0.2.1", store=parts.store, lottery=parts.lottery, registry=parts.registry, config=parts.config
        )
        session.run()

    return gevent.spawn(handle)


@pytest.mark.parametrize("blank", [" ", "\n", "\t"])
def test_the_largest_invalid_bet_is_refused_as_invalid_and_the_session_goes_on(server: Parts, blank: str) -> None:
    # A blank first name that fills the frame: its refusal quotes the value, and
    # repr() doubles "\n" and "\t". The refusal must still be one INVALID_BET frame.
    filler = blank * (8192 - 11 - 10 - len("Lorca12000-01-011"))
    bad = Bets(0, (ANA._replace(first_name=filler, document="1", number="1"),))
    assert len(encode(bad)) == 8192
    sock = FakeSocket(encode(Hello(1)) + encode(bad) + encode(Bets(0, (ANA,))))
    session = serve(server, sock)
    session.join(timeout=10)
    assert session.successful()
    welcome, refusal, ack = replies(sock)
    assert welcome == Welcome(0, False, server.store.contest, EMPTY_DIGEST)
    assert isinstance(refusal, Error) and refusal.code is ErrorCode.INVALID_BET
    assert "first_name" in refusal.detail
    assert ack == BetsAck(1)
    assert server.store.durable_count(1) == 1


def test_a_superseded_session_tells_its_peer(server: Parts) -> None:
    old_peer = BlockingFakeSocket(encode(Hello(1)))
    old = serve(server, old_peer)
    gevent.idle()
    assert replies(old_peer) == [Welcome(0, False, server.store.contest, EMPTY_DIGEST)]
    new_peer = BlockingFakeSocket(encode(Hello(1)))
    new = serve(server, new_peer)
    old.join(timeout=10)
    assert old.ready() and old.successful()
    assert replies(new_peer) == [Welcome(0, False, server.store.contest, EMPTY_DIGEST)]
    new.kill(block=True, timeout=10)
    (*_, last) = replies(old_peer)
    assert isinstance(last, Error) and last.code is ErrorCode.SUPERSEDED


def waiting_for_the_draw(server: Parts) -> tuple[gevent.Greenlet, Stream]:
    """A session over a socketpair whose agency is done and waits for the draw (agency 2 never is)."""
    left, right = gevent.socket.socketpair()
    peer = Stream(right)

    def handle() -> None:
        with Stream(left) as stream:  # the server's handler closes the stream once the session is over
            store, lottery, registry = server.store, server.lottery, server.registry
            AgencySession(
                stream, "192.0.2.1", store=store, lottery=lottery, registry=registry, config=server.config
            ).run()

    session = gevent.spawn(handle)
    decoder = FrameDecoder()
    for message in (Hello(1), Done()):
        send_message(peer, message)
        receive_message(peer, decoder, 10, start_within_s=10)
    send_message(peer, WinnersQuery())
    return session, peer


def test_a_peer_that_sends_while_waiting_for_the_draw_is_told_and_closed(server: Parts) -> None:
    session, peer = waiting_for_the_draw(server)
    with peer:
        send_message(peer, Done())
        reply = receive_message(peer, FrameDecoder(), 10, start_within_s=10)
        assert isinstance(reply, Error) and reply.code is ErrorCode.UNEXPECTED_MESSAGE
        session.join(timeout=10)
        assert session.successful() and not server.lottery.drawn


def test_a_peer_that_closes_while_waiting_for_the_draw_is_noticed_at_once(server: Parts) -> None:
    session, peer = waiting_for_the_draw(server)
    peer.close()
    session.join(timeout=10)
    assert session.successful() and not server.lottery.drawn


def test_before_the_close_an_early_winners_query_is_refused_and_after_it_a_batch_is(server: Parts) -> None:
    """Sales open: WinnersQuery before Done is refused. Sales closed: a batch is refused whole and
    the same agency, not done, gets its winners among the bets stored before the close."""
    winner = ANA._replace(number="7574")
    sock = FakeSocket(encode(Hello(1, 3)) + encode(Bets(0, (winner,))) + encode(WinnersQuery()))
    session = serve(server, sock)
    session.join(timeout=10)
    _, ack, early = replies(sock)
    assert ack == BetsAck(1)
    assert isinstance(early, Error) and early.code is ErrorCode.UNEXPECTED_MESSAGE
    assert server.lottery.totals == {1: 3}

    server.lottery.close_sales("command", "2026-12-24T21:00:00+00:00")
    assert server.lottery.await_draw(lambda: bytes(gevent.event.Event().wait(10) or b"")) is None  # the draw wins
    sock = FakeSocket(encode(Hello(1)) + encode(Bets(1, (ANA,))) + encode(WinnersQuery()))
    session = serve(server, sock)
    session.join(timeout=10)
    welcome, refusal, *winners = replies(sock)
    assert welcome == Welcome(1, False, server.store.contest, server.store.durable_resume(1)[1])
    assert isinstance(refusal, Error) and refusal.code is ErrorCode.SALES_CLOSED
    assert winners == [Winners((winner.document,), number=7574)]
    assert server.store.durable_count(1) == 1  # nothing of the refused batch
    assert server.lottery.state == "done" and not server.lottery.sales_open


def test_the_draw_wakes_a_waiting_session_which_answers_the_winners_once(server: Parts) -> None:
    session, peer = waiting_for_the_draw(server)
    with peer:
        server.lottery.mark_done(2)  # the last agency: the draw runs and wakes the waiting session
        winners = receive_message(peer, FrameDecoder(), 10, start_within_s=10)
        assert isinstance(winners, Winners) and winners.number == 7574
        send_message(peer, WinnersQuery())  # a second query on the same connection is refused
        again = receive_message(peer, FrameDecoder(), 10, start_within_s=10)
        assert isinstance(again, Error) and again.code is ErrorCode.UNEXPECTED_MESSAGE
    session.join(timeout=10)
    assert session.successful()
