"""The server in this process, driven by agency greenlets over real loopback sockets:
for cases that need to reach inside (a failing draw, a stop while agencies wait)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import gevent.event
import pytest

from lottery_gevent import contract
from lottery_gevent.config import ServerConfig
from lottery_gevent.lottery import Lottery
from lottery_gevent.server import LotteryServer
from lottery_gevent.storage import BetStore
from shared.protocol import BetsAck, Done, DoneAck, Error, ErrorCode, Hello, Message, WinnersQuery
from tests.rawclient import batch, resume
from tests.support.wire import RawConnection

WAIT_S = 10.0


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LotteryServer]:
    monkeypatch.chdir(tmp_path)
    store = BetStore()
    store.open()
    server = LotteryServer(ServerConfig(ip="127.0.0.1", port=0, agencies=2), store, Lottery(store, 2))
    server.start()
    yield server
    server.stop()


def _upload_and_finish(port: int, agency: int) -> RawConnection:
    """An agency (a gevent peer, so it cooperates with the server's greenlets) that uploads and is done."""
    peer = RawConnection.open("127.0.0.1", port, WAIT_S)
    assert resume(peer.exchange(Hello(agency))) == (0, False)
    assert peer.exchange(batch(0, 3, winning_every=2, document_base=agency * 1000)) == BetsAck(3)
    assert peer.exchange(Done()) == DoneAck()
    return peer


def _done_and_ask(port: int, agency: int) -> Message:
    with _upload_and_finish(port, agency) as peer:
        return peer.exchange(WinnersQuery())


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


def test_stop_ends_agencies_waiting_for_the_draw(serve: LotteryServer, monkeypatch: pytest.MonkeyPatch) -> None:
    waiting = gevent.event.Event()
    await_draw = Lottery.await_draw

    def spied(lottery: Lottery, watch: Callable[[], bytes]) -> bytes | None:
        waiting.set()
        return await_draw(lottery, watch)

    monkeypatch.setattr(Lottery, "await_draw", spied)
    with _upload_and_finish(serve.port, 1) as peer:
        peer.send_message(WinnersQuery())
        assert waiting.wait(WAIT_S), "the session never started waiting for the draw"
        serve.stop()
        reply = peer.receive()
    assert isinstance(reply, Error) and reply.code is ErrorCode.SHUTTING_DOWN
    assert not serve.lottery.drawn
