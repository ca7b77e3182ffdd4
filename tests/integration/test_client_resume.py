"""The real client resumes where the server's bets end: after Welcome(stored=K) its
first batch starts at K, and it sends exactly the rest of its file, nothing twice.

A fake server in this process (a listening socket on 127.0.0.1:0 served by a
thread, framing with shared.protocol) records every frame and answers each one, so
the test sees exactly what the client sent. Fast: no real server, no faults.
"""

from __future__ import annotations

import csv
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.domain import BetFields
from shared.protocol import (
    Bets,
    BetsDigest,
    Done,
    FrameDecoder,
    Hello,
    Message,
    Welcome,
    WinnersQuery,
)
from tests.support.processes import ClientProcess, winners_reported
from tests.support.wire import honest_reply, read_message, send_message
from tools.generate_agencies import Agency

#: Bound on the whole conversation, and on each wait for the client.
TIMEOUT_S = 30.0
FILE_BETS = 300
BATCH = 40


#: The fake server's contest id.
CONTEST = bytes.fromhex("c0ffee00" * 4)


def welcome(path: Path, stored: int, done: bool = False) -> Welcome:
    """An honest answer to Hello: the first `stored` bets of the file at `path` are on disk."""
    digest = BetsDigest()
    digest.update_many(file_rows(path)[:stored])
    return Welcome(stored, done, CONTEST, digest.digest())


class FakeServer:
    """Serves one client connection in a thread; `received` holds every message it got.

    Args:
        welcome: the answer to Hello (what the server says it has of the agency).
        winners: the documents Winners answers with.
    """

    def __init__(self, welcome: Welcome, winners: tuple[str, ...]) -> None:
        self._welcome = welcome
        self._winners = winners
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT_S)
        self.port: int = self._listener.getsockname()[1]
        self.received: list[Message] = []
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        self._thread.join(TIMEOUT_S)

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn:
                conn.settimeout(TIMEOUT_S)
                decoder = FrameDecoder()
                while True:  # until the last request is answered, or the client hangs up
                    try:
                        message = read_message(conn, decoder)
                    except EOFError:
                        return
                    self.received.append(message)
                    send_message(conn, honest_reply(message, self._welcome, self._winners))
                    if isinstance(message, WinnersQuery):
                        return
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc

    def join(self) -> None:
        self._thread.join(TIMEOUT_S)
        assert not self._thread.is_alive(), "the fake server is still serving"
        if self.failure is not None:
            raise AssertionError("the fake server failed") from self.failure


def file_rows(path: Path) -> list[BetFields]:
    with open(path, newline="", encoding="utf-8") as file:
        return [BetFields(*row) for row in csv.reader(file) if row]


@pytest.mark.parametrize("stored", [1, 137, FILE_BETS - 1])
def test_client_resumes_from_the_stored_count(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path, stored: int
) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [2])
    winners = tuple(agency.winners)  # the client accepts only exactly its own bets on the drawn number
    env = {"CLI_BATCH_MAXAMOUNT": str(BATCH), "CLI_CONNECTION_RETRYTIMEOUT": f"{TIMEOUT_S:g}s"}
    with FakeServer(welcome(agency.path, stored), winners) as server:
        client = ClientProcess(tmp_path, 1, server.port, agency.path, env=env)
        assert client.wait(TIMEOUT_S) == 0, client.output()
        server.join()

    sent = [message for message in server.received if isinstance(message, Bets)]
    assert server.received[0] == Hello(1, FILE_BETS)  # the total: for the status page
    assert sent and sent[0].start == stored
    assert [batch.start for batch in sent[1:]] == [batch.start + len(batch.bets) for batch in sent[:-1]]
    assert [bet for batch in sent for bet in batch.bets] == file_rows(agency.path)[stored:]
    assert server.received[len(sent) + 1 :] == [Done(), WinnersQuery()]
    assert winners_reported(client) == len(winners)


def test_client_sends_nothing_when_everything_is_stored(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [0])
    with FakeServer(welcome(agency.path, FILE_BETS), ()) as server:
        client = ClientProcess(tmp_path, 1, server.port, agency.path)
        assert client.wait(TIMEOUT_S) == 0, client.output()
        server.join()

    assert server.received == [Hello(1, FILE_BETS), Done(), WinnersQuery()]
    assert winners_reported(client) == 0


def refusal(client: ClientProcess) -> dict[str, str]:
    """The client's one `fail` line (it must have exactly one)."""
    (line,) = [fields for fields in client.actions() if fields["result"] == "fail"]
    return line


@pytest.mark.parametrize(
    "case",
    ["one-row-changed", "more-than-the-file", "done-with-nothing", "done-with-other-bets", "done-with-fewer"],
)
def test_a_hostile_or_wrong_welcome_is_refused_before_anything_is_sent(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path, case: str
) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [0])
    other = tmp_path / "other.csv"
    rows = file_rows(agency.path)
    rows[FILE_BETS // 2] = rows[FILE_BETS // 2]._replace(number="1234")
    with open(other, "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    answers = {
        # the server's 290 bets are another file's (one row differs in the middle)
        "one-row-changed": welcome(other, FILE_BETS - 10),
        # Welcome(stored=…) past the end of the file, with the whole file's digest
        "more-than-the-file": Welcome(FILE_BETS + 10, False, CONTEST, welcome(agency.path, FILE_BETS).digest),
        # Welcome(done=1) for an agency whose bets the server never got
        "done-with-nothing": Welcome(0, True, CONTEST, welcome(agency.path, 0).digest),
        "done-with-other-bets": welcome(other, FILE_BETS, done=True),
        "done-with-fewer": welcome(agency.path, FILE_BETS - 1, done=True),
    }
    with FakeServer(answers[case], ("30000001",)) as server:
        client = ClientProcess(tmp_path, 1, server.port, agency.path)
        assert client.wait(TIMEOUT_S) == 1, client.output()
        server.join()

    assert server.received == [Hello(1, FILE_BETS)]  # nothing after Hello: no bets, no Done, no query
    line = refusal(client)
    assert line["action"] == "resume" and line["client_id"] == "1" and line["contest"] == CONTEST.hex()
    assert "agency 1" in line["error"] and CONTEST.hex() in line["error"] and "--new-contest" in line["error"]
    assert winners_reported(client) is None


def test_an_honest_done_welcome_goes_straight_to_the_winners(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [1])
    winners = tuple(agency.winners)  # the client accepts only exactly its own bets on the drawn number
    with FakeServer(welcome(agency.path, FILE_BETS, done=True), winners) as server:
        client = ClientProcess(tmp_path, 1, server.port, agency.path)
        assert client.wait(TIMEOUT_S) == 0, client.output()
        server.join()
    assert server.received == [Hello(1, FILE_BETS), Done(), WinnersQuery()]
    assert winners_reported(client) == 1
