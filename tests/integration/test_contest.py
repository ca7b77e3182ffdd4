"""One contest per data directory, visibly: refused resumes, the lock, --new-contest,
SERVER_DATA_DIR, and who the draw still waits for. Real server and client processes.
"""

from __future__ import annotations

import csv
import signal
from collections.abc import Callable
from pathlib import Path

from shared.domain import BetFields
from shared.protocol import Bets, BetsAck, Hello
from tests.rawclient import RawPeer, resume
from tests.support.processes import ClientProcess, ServerProcess, winners_reported
from tools.generate_agencies import Agency

#: Bound on each wait for a process.
WAIT_S = 60.0
#: The files of a contest, which a refused resume must leave exactly as they were.
CONTEST_FILES = ("bets.csv", "agencies-done.txt", "contest-id")


def rows_of(path: Path) -> list[BetFields]:
    with open(path, newline="", encoding="utf-8") as file:
        return [BetFields(*row) for row in csv.reader(file) if row]


def write_rows(path: Path, rows: list[BetFields]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file, lineterminator="\r\n").writerows(rows)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in CONTEST_FILES}


def refusal(client: ClientProcess) -> dict[str, str]:
    (line,) = [fields for fields in client.actions() if fields["result"] == "fail"]
    return line


def test_a_file_changed_in_the_stored_prefix_is_refused_and_nothing_changes(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (agency, _) = make_agencies(2, 300, [1, 0])
    server = start_server(agencies=2)
    rows = rows_of(agency.path)
    with RawPeer(server.port) as peer:  # an earlier run stored the first 100 bets, then died
        assert resume(peer.request(Hello(1))) == (0, False)
        assert peer.request(Bets(0, tuple(rows[:100]))) == BetsAck(100)
    changed = tmp_path / "changed.csv"
    write_rows(changed, [*rows[:50], rows[50]._replace(last_name="Otro"), *rows[51:]])
    before = snapshot(server.cwd)
    contest = before["contest-id"].decode().strip()

    client = ClientProcess(tmp_path, 1, server.port, changed)
    assert client.wait(WAIT_S) == 1

    line = refusal(client)
    assert (line["action"], line["client_id"], line["contest"]) == ("resume", "1", contest)
    assert "holds 100 bets of this agency that are not the first 100 rows" in line["error"]
    assert "--new-contest" in line["error"]
    server.wait_for_line(r"close_connection .*agency: 1 .*peer closed")
    assert snapshot(server.cwd) == before
    assert len(server.actions("apuesta_recibida")) == 1  # the earlier run's batch, nothing since
    # The right file still resumes where the server's bets end.
    right = ClientProcess(tmp_path, 1, server.port, agency.path)
    assert right.wait_for_action("upload", WAIT_S)["sent"] == "200"
    assert right.stop() == 0


def test_another_agencys_file_is_refused_once_the_agency_is_done(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    first, second, _ = make_agencies(3, 200, [1, 1, 0])
    server = start_server(agencies=3)
    done = [ClientProcess(tmp_path, agency.agency, server.port, agency.path) for agency in (first, second)]
    server.wait_for_count(r"action: agency_done \| result: success", 2)
    before = snapshot(server.cwd)

    swapped = ClientProcess(tmp_path, 1, server.port, second.path)  # agency 2's file, as agency 1
    assert swapped.wait(WAIT_S) == 1
    assert "has this agency done with" not in refusal(swapped)["error"]  # same length, other bets
    assert "holds 200 bets of this agency that are not the first 200 rows" in refusal(swapped)["error"]
    assert snapshot(server.cwd) == before
    for client in done:  # still waiting for agency 3 and the draw
        assert client.stop() == 0


def test_a_second_server_on_the_same_directory_exits_2_before_recovery(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = start_server(agencies=1)
    busy_port = ServerProcess(first.cwd, agencies=1, port=first.port)  # same directory, port in use
    other_port = ServerProcess(first.cwd, agencies=1)
    for second in (busy_port, other_port):
        assert second.wait(WAIT_S) == 2
        assert f"data directory {first.cwd} is in use by process {first.pid}" in second.output()
        assert not second.actions("storage_recovery") and not second.actions("listen")
    assert first.stop() == 0


def test_new_contest_archives_the_old_one_and_starts_empty(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (agency,) = make_agencies(1, 150, [2])
    server = start_server(agencies=1)
    assert winners_reported(_finished(ClientProcess(tmp_path, 1, server.port, agency.path))) == 2
    assert server.stop() == 0
    old = snapshot(server.cwd)
    old_contest = old["contest-id"].decode().strip()

    renewed = ServerProcess(server.cwd, agencies=1, args=["--new-contest"]).wait_listening()
    archived = server.cwd / "archive" / old_contest
    assert renewed.wait_for_action("new_contest")["archived"] == str(archived)
    assert {name: (archived / name).read_bytes() for name in CONTEST_FILES} == old
    recovery = renewed.wait_for_action("storage_recovery")
    assert recovery["rows"] == "0" and recovery["contest"] != old_contest
    client = _finished(ClientProcess(tmp_path, 1, renewed.port, agency.path))
    assert client.wait_for_action("upload")["sent"] == "150" and winners_reported(client) == 2
    assert renewed.stop() == 0


def test_the_data_directory_is_used_from_any_working_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = ServerProcess(elsewhere, agencies=1, env={"SERVER_DATA_DIR": "contest/data"}).wait_listening()
    with RawPeer(server.port) as peer:
        assert resume(peer.request(Hello(1))) == (0, False)
        assert peer.request(Bets(0, (BetFields("Ana", "Lorca", "1", "2000-01-01", "7574"),))) == BetsAck(1)
    assert server.stop() == 0
    data = elsewhere / "contest" / "data"
    assert (data / "bets.csv").read_text() == "1,Ana,Lorca,1,2000-01-01,7574\n"
    assert sorted(path.name for path in data.iterdir()) == sorted([*CONTEST_FILES, "server.lock"])
    assert not (elsewhere / "bets.csv").exists()


def test_the_draw_names_the_agency_it_waits_for(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    files = make_agencies(3, 3000, [1, 1, 1])
    server = start_server(agencies=3, constants={"lottery_gevent.lottery.WAIT_LOG_S": 0.2})
    fast = {"client_gevent.lottery_mode.WAIT_LOG_S": 0.2}
    killed = ClientProcess(tmp_path, 3, server.port, files[2].path, env={"CLI_BATCH_MAXAMOUNT": "1"})
    server.wait_for_line(r"action: apuesta_recibida \| result: success .*agency: 3")
    killed.signal(signal.SIGKILL)  # one bet per batch: it dies with most of its 3,000 bets unsent
    assert killed.wait(WAIT_S) == -signal.SIGKILL
    waiting = [ClientProcess(tmp_path, k, server.port, files[k - 1].path, constants=fast) for k in (1, 2)]

    line = server.wait_for_line(r"action: draw_wait \| result: in_progress \| done: 2 \| pending: 1", WAIT_S)
    assert line.endswith("action: draw_wait | result: in_progress | done: 2 | pending: 1 | waiting_for: 3")
    for client in waiting:
        client.wait_for_line(r"action: wait_draw \| result: in_progress \| client_id: \d", WAIT_S)
    for client in waiting:
        assert client.stop() == 0
        assert winners_reported(client) is None
    assert server.stop() == 0
    assert not server.actions("sorteo") and not server.actions("winners_sent")


def _finished(client: ClientProcess) -> ClientProcess:
    assert client.wait(WAIT_S) == 0, client.output()
    return client
