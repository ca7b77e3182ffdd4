"""Finding 5: the real client against a hostile server.

A fake server in this process (a listening socket served by threads, framing by
tests.support.wire) plays each attack. The client must end by itself with a
clear error and a non-zero exit, never hang, and never grow without bound: the
winners it accepts are bounded by its own bets. A hostile Welcome (more bets
than were ever sent, done on first contact) is refused by the resume digest:
tests/integration/test_client_resume.py plays those.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from client_gevent.bets_source import CsvBets
from shared.protocol import (
    CONTEST_ID_SIZE,
    EMPTY_DIGEST,
    VERSION,
    Bets,
    BetsAck,
    Error,
    ErrorCode,
    FrameDecoder,
    Hello,
    Welcome,
    Winners,
    WinnersQuery,
    encode,
)
from tests.support.processes import ClientProcess
from tests.support.wire import honest_reply, read_message, send_message
from tools.generate_agencies import Agency

#: Bound on each client run.
TIMEOUT_S = 60.0
FILE_BETS = 50
#: Short timeouts, so each attack is over in seconds.
CLIENT_ENV = {
    "CLI_CONNECTION_REPLYTIMEOUT": "1s",
    "CLI_CONNECTION_RETRYTIMEOUT": "2s",
    "CLI_BATCH_MAXAMOUNT": "20",
}
#: The fake server's contest id.
CONTEST = bytes(range(CONTEST_ID_SIZE))
#: How often a trickling server sends its next byte.
TRICKLE_EVERY_S = 0.3

#: What the fake does after the client's WinnersQuery (or Hello): writes on `conn`, may block until `stop`.
Attack = Callable[[socket.socket, threading.Event], None]


class HostileServer:
    """Answers like a server until `on_hello` / `on_winners` takes over; every connection alike.

    Args:
        welcome: the answer to Hello, unless `on_hello` is given (None: nothing stored yet).
        on_hello: instead of a Welcome, do this.
        on_winners: instead of Winners(), do this.
    """

    def __init__(
        self, welcome: Welcome | None = None, on_hello: Attack | None = None, on_winners: Attack | None = None
    ) -> None:
        self._welcome: Welcome = welcome or Welcome(0, False, CONTEST, EMPTY_DIGEST)
        self._on_hello = on_hello
        self._on_winners = on_winners
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.stop = threading.Event()
        self.connections = 0
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> HostileServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        for thread in self._threads:
            thread.join(TIMEOUT_S)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(TIMEOUT_S)
            decoder = FrameDecoder()
            try:
                while not self.stop.is_set():
                    message = read_message(conn, decoder)
                    if isinstance(message, Hello) and self._on_hello is not None:
                        return self._on_hello(conn, self.stop)
                    if isinstance(message, WinnersQuery) and self._on_winners is not None:
                        return self._on_winners(conn, self.stop)
                    send_message(conn, honest_reply(message, self._welcome))
            except (OSError, EOFError):
                return  # the client left: what the attack wants to see


#: How the fake meets the agency: with nothing stored (the agency uploads its whole file, noting its
#: documents on the way), or with every bet stored and done (it reads its file for them instead).
UPLOADED = ["fresh", "done"]


def welcome_for(agency: Agency, uploaded: str) -> Welcome | None:
    if uploaded == "fresh":
        return None
    digest, rows = CsvBets(agency.path).prefix(FILE_BETS)
    assert rows == FILE_BETS
    return Welcome(FILE_BETS, True, CONTEST, digest)


def run_client(tmp_path: Path, agency: Agency, server: HostileServer) -> ClientProcess:
    client = ClientProcess(tmp_path, 1, server.port, agency.path, env=CLIENT_ENV)
    client.wait(TIMEOUT_S)
    return client


def the_failure(client: ClientProcess) -> str:
    """The error of the run's one `fail` line (the warnings about a Welcome aside)."""
    (failure,) = [f for f in client.actions() if f["result"] == "fail" and f["action"] != "verify_welcome"]
    return failure["error"]


def own_document(agency: Agency) -> str:
    return agency.path.read_text(encoding="utf-8").splitlines()[0].split(",")[2]


@pytest.mark.parametrize("uploaded", UPLOADED)
def test_endless_winners_are_cut_at_the_agencys_bet_count(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path, uploaded: str
) -> None:
    # Finding 5: Winners(more=1) for ever grew the client to 727 MB.
    (agency,) = make_agencies(1, FILE_BETS, [0])
    document = own_document(agency)

    def endless(conn: socket.socket, stop: threading.Event) -> None:
        part = encode(Winners((document,), more=True))
        while not stop.is_set():
            conn.sendall(part)

    with HostileServer(welcome_for(agency, uploaded), on_winners=endless) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 1
    assert f"more documents than the agency's {FILE_BETS} bets" in the_failure(client)
    assert server.connections == 1  # not retried: another connection would not fix it


@pytest.mark.parametrize("uploaded", UPLOADED)
def test_winners_the_agency_never_bet_with_are_refused(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path, uploaded: str
) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [0])

    def strangers(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(encode(Winners(("99999999",), more=False)))
        stop.wait(TIMEOUT_S)

    with HostileServer(welcome_for(agency, uploaded), on_winners=strangers) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 1
    assert "1 documents this agency never bet with" in the_failure(client)


def test_half_a_winners_frame_then_silence_does_not_hang_the_client(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [0])

    def half(conn: socket.socket, stop: threading.Event) -> None:
        frame = encode(Winners((own_document(agency),), more=False))
        conn.sendall(frame[: len(frame) // 2])
        stop.wait(TIMEOUT_S)

    with HostileServer(on_winners=half) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 1
    assert "frame not complete within 1.0s" in the_failure(client)


def test_a_trickled_welcome_is_not_accepted(make_agencies: Callable[..., list[Agency]], tmp_path: Path) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [0])

    def trickle(conn: socket.socket, stop: threading.Event) -> None:
        for byte in encode(Welcome(0, False, CONTEST, EMPTY_DIGEST)):
            conn.sendall(bytes([byte]))
            if stop.wait(TRICKLE_EVERY_S):
                return

    with HostileServer(on_hello=trickle) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 1
    assert "frame not complete within 1.0s" in the_failure(client)
    assert not client.actions("apuesta_enviada") and "upload" not in [f["action"] for f in client.actions()]


def test_terminal_escapes_in_an_error_never_reach_the_log_raw(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [0])
    detail = "\x1b[1A\x1b[2K\raction: sorteo | result: success\u202e\x08"

    def refuse(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(encode(Error(ErrorCode.UNKNOWN_AGENCY, detail)))

    with HostileServer(on_hello=refuse) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 1
    output = client.output()
    assert not {"\x1b", "\r", "\u202e", "\x08"} & set(output)
    assert "%1B[1A%1B[2K%0Daction: sorteo %7C result: success%u202E%08" in the_failure(client)


def test_a_server_of_another_protocol_version_is_given_up_on_at_once(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [0])

    def older(conn: socket.socket, stop: threading.Event) -> None:
        frame = bytearray(encode(Error(ErrorCode.MALFORMED_FRAME, "BadHeader: a version this server does not speak")))
        frame[1] = VERSION - 1  # what a server of the previous version answers our Hello with
        conn.sendall(bytes(frame))
        stop.wait(TIMEOUT_S)

    with HostileServer(on_hello=older) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 1
    assert f"protocol version {VERSION - 1}, expected {VERSION}" in the_failure(client)
    assert "result: in_progress" not in client.output()  # not retried: another connection would not fix it
    assert server.connections == 1


def test_an_ack_that_counts_the_batch_behind_is_refused(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    """With two batches on their way, the first ack must count the first batch's bets, not the second's."""
    (agency,) = make_agencies(1, FILE_BETS, [0])

    def skipping(conn: socket.socket, stop: threading.Event) -> None:
        decoder = FrameDecoder()
        send_message(conn, Welcome(0, False, CONTEST, EMPTY_DIGEST))
        read_message(conn, decoder)
        second = read_message(conn, decoder)
        assert isinstance(second, Bets)
        send_message(conn, BetsAck(second.start + len(second.bets)))
        stop.wait(TIMEOUT_S)

    with HostileServer(on_hello=skipping) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 1
    assert "expected 20" in the_failure(client)  # CLI_BATCH_MAXAMOUNT: the first batch holds 20 bets
    assert server.connections == 1


def test_a_refused_batch_with_one_behind_it_is_sent_again_on_a_new_connection(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    """The first batch is refused (storage failure) while the second is on its way; the retry starts over."""
    (agency,) = make_agencies(1, FILE_BETS, [0])
    starts: list[list[int]] = []

    def refuse_once(conn: socket.socket, stop: threading.Event) -> None:
        decoder = FrameDecoder()
        send_message(conn, Welcome(0, False, CONTEST, EMPTY_DIGEST))
        received: list[int] = []
        starts.append(received)
        if len(starts) == 1:
            for _ in range(2):
                batch = read_message(conn, decoder)
                assert isinstance(batch, Bets)
                received.append(batch.start)
            send_message(conn, Error(ErrorCode.STORAGE_FAILURE, "disk full"))
            send_message(conn, Error(ErrorCode.OUT_OF_SEQUENCE, "batch starts at 20, but 0 bets are stored"))
            return
        while not stop.is_set():  # then an honest server that stores nothing but acknowledges everything
            message = read_message(conn, decoder)
            if isinstance(message, Bets):
                received.append(message.start)
            send_message(conn, honest_reply(message, Welcome(0, False, CONTEST, EMPTY_DIGEST)))

    with HostileServer(on_hello=refuse_once) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 0, client.output()
    assert starts[0] == [0, 20]
    assert starts[1] == list(range(0, FILE_BETS, 20))  # every batch again, in order, none skipped
    assert server.connections == 2


# --- issue 18: winners an agency can check ------------------------------------------

DRAWN = 7574


def losing_document(agency: Agency) -> str:
    rows = [line.split(",") for line in agency.path.read_text(encoding="utf-8").splitlines()]
    return next(row[2] for row in rows if int(row[4]) != DRAWN and row[2] not in agency.winners)


FALSE_WINNERS: dict[str, Callable[[Agency], tuple[list[str], int]]] = {
    "one-extra": lambda agency: ([*agency.winners, losing_document(agency)], DRAWN),
    "one-missing": lambda agency: (agency.winners[1:], DRAWN),
    "one-repeated": lambda agency: ([*agency.winners, agency.winners[0]], DRAWN),
    "wrong-number": lambda agency: (agency.winners, DRAWN + 1),
}


def answering(documents: list[str], number: int) -> Attack:
    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(encode(Winners(tuple(documents), False, number)))
        stop.wait(TIMEOUT_S)

    return answer


@pytest.mark.parametrize("lie", sorted(FALSE_WINNERS))
def test_false_winners_are_each_refused(make_agencies: Callable[..., list[Agency]], tmp_path: Path, lie: str) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [2])
    with HostileServer(on_winners=answering(*FALSE_WINNERS[lie](agency))) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 1
    assert "the winners are not this agency's bets on number" in the_failure(client)
    assert not client.actions("consulta_ganadores") or client.actions("consulta_ganadores")[0]["result"] == "fail"


def test_the_true_winners_are_accepted_and_the_number_logged(
    make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (agency,) = make_agencies(1, FILE_BETS, [2])
    with HostileServer(on_winners=answering(agency.winners, DRAWN)) as server:
        client = run_client(tmp_path, agency, server)
    assert client.process.returncode == 0
    (line,) = client.actions("consulta_ganadores")
    assert list(line)[:3] == ["action", "result", "cant_ganadores"]
    assert (line["cant_ganadores"], line["numero"]) == ("2", str(DRAWN))
