"""The server in this process, driven by agency greenlets over real loopback sockets:
for cases that need to reach inside (a failing draw, a stop while agencies wait)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from lottery_gevent import contract
from lottery_gevent.config import ServerConfig
from lottery_gevent.lottery import Lottery
from lottery_gevent.server import LotteryServer
from lottery_gevent.storage import BetStore
from shared.protocol import (
    BetsAck,
    Done,
    DoneAck,
    Error,
    ErrorCode,
    FrameDecoder,
    Hello,
    Message,
    Welcome,
    WinnersQuery,
)
from shared.transport import open_connection, receive_message, send_message
from tests.rawclient import batch

WAIT_S = 10.0


class Agency:
    """A protocol peer on a gevent socket (so it cooperates with the server's greenlets)."""

    def __init__(self, port: int) -> None:
        self.sock = open_connection("127.0.0.1", port, WAIT_S)
        self.decoder = FrameDecoder()

    def request(self, message: Message) -> Message:
        send_message(self.sock, message)
        return receive_message(self.sock, self.decoder)


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LotteryServer]:
    monkeypatch.chdir(tmp_path)
    store = BetStore()
    store.open()
    server = LotteryServer(ServerConfig(ip="127.0.0.1", port=0, agencies=2), store, Lottery(store, 2))
    server.start()
    yield server
    server.stop()


def _done_and_ask(port: int, agency: int) -> Message:
    peer = Agency(port)
    assert peer.request(Hello(agency)) == Welcome(0, False)
    assert peer.request(batch(0, 3, winning_every=2, document_base=agency * 1000)) == BetsAck(3)
    assert peer.request(Done()) == DoneAck()
    return peer.request(WinnersQuery())


def test_a_failed_draw_reaches_every_waiter(serve: LotteryServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> Iterator[contract.Bet]:
        raise OSError(5, "Input/output error")
        yield  # pragma: no cover

    monkeypatch.setattr(contract, "load_bets", unreadable)
    waiters = [gevent.spawn(_done_and_ask, serve.port, agency) for agency in (1, 2)]
    gevent.joinall(waiters, timeout=WAIT_S, raise_error=True)
    for waiter in waiters:
        reply = waiter.value
        assert isinstance(reply, Error) and reply.code is ErrorCode.DRAW_FAILED
        assert "Input/output error" in reply.detail


def test_stop_ends_agencies_waiting_for_the_draw(serve: LotteryServer) -> None:
    waiter = gevent.spawn(_done_and_ask, serve.port, 1)
    with gevent.Timeout(WAIT_S):
        while not serve.lottery.is_done(1):
            gevent.sleep(0)  # yield to the server's greenlets until agency 1's Done is in
    serve.stop()
    waiter.join(WAIT_S)
    reply = waiter.get()
    assert isinstance(reply, Error) and reply.code is ErrorCode.SHUTTING_DOWN
    assert not serve.lottery.barrier.ready()
