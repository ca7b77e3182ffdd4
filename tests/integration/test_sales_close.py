"""The sales close (issue 19), with real server and client processes: one agency of three dies
mid-upload and never returns; the close (by deadline, or by the close-sales command) lets the draw
run over every acknowledged bet, the other two get their exact winners, the dead agency run again
is told SALES_CLOSED, gets its winners among its stored bets and exits 3, and a restart keeps
sales closed. The status endpoints are read on the way: they never show a document.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
import signal
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lottery_gevent.contract import LOTTERY_WINNER_NUMBER
from tests.support.processes import ClientProcess, LoggedProcess, ServerProcess, winners_reported
from tools.generate_agencies import Agency

#: Bound on each wait for a process.
WAIT_S = 60.0
#: How far ahead of the server's start the deadline lies: room for two agencies of 300 bets
#: and for the third to be killed once its first batch is stored.
DEADLINE_IN_S = 10.0
#: The dying agency: one bet per batch, so that its upload lasts long enough to be cut.
SLOW = {"CLI_BATCH_MAXAMOUNT": "1"}


def http_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        body: bytes = reply.read()
    return body.decode()


def close_sales(workdir: Path) -> dict[str, str]:
    """Run `python -m lottery_gevent close-sales` on the server's data directory; its one line."""
    command = LoggedProcess([sys.executable, "-m", "lottery_gevent", "close-sales"], workdir, {})
    assert command.wait(WAIT_S) == 0
    (line,) = command.actions("close_sales")
    return line


def acknowledged(server: ServerProcess, agency: int) -> int:
    """Bets the server acknowledged to `agency` (its apuesta_recibida lines)."""
    lines = server.actions("apuesta_recibida")
    return sum(int(line["cantidad"]) for line in lines if line["result"] == "success" and line["agency"] == str(agency))


def file_rows(agency: Agency) -> list[list[str]]:
    with open(agency.path, newline="", encoding="utf-8") as file:
        return [row for row in csv.reader(file) if row]


def no_document_in(text: str, agencies: list[Agency]) -> None:
    """No document, full name or birthdate of any bet appears in `text`."""
    for agency in agencies:
        for first, last, document, birthdate, _ in file_rows(agency):
            for value in (document, f"{first} {last}", birthdate):
                assert not re.search(rf"\b{re.escape(value)}\b", text), f"{value!r} in the status output"


@pytest.mark.parametrize("trigger", ["deadline", "command"])
def test_a_dead_agency_no_longer_blocks_the_draw_once_sales_close(
    start_server: Callable[..., ServerProcess],
    make_agencies: Callable[..., list[Agency]],
    tmp_path: Path,
    trigger: str,
) -> None:
    first, second, dying = make_agencies(3, [300, 300, 3000], [2, 1, 3])
    env = {"SERVER_STATUS_PORT": "0"}
    if trigger == "deadline":
        at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=DEADLINE_IN_S)
        env["SERVER_SALES_CLOSE_AT"] = at.astimezone(datetime.timezone(datetime.timedelta(hours=-3))).isoformat()
    server = start_server(agencies=3, env=env)
    status_port = int(server.wait_for_action("status_listen")["port"])
    clients = [ClientProcess(tmp_path, agency.agency, server.port, agency.path) for agency in (first, second)]
    victim = ClientProcess(tmp_path, 3, server.port, dying.path, env=SLOW)
    server.wait_for_line(r"action: apuesta_recibida \| result: success .*agency: 3")
    victim.signal(signal.SIGKILL)
    victim.wait(WAIT_S)
    server.wait_for_count(r"action: agency_done \| result: success", 2)
    server.wait_for_line(r"close_connection .*agency: 3")

    # While the draw waits: status and metrics show counts, and only counts.
    status = json.loads(http_get(status_port, "/status"))
    assert (status["sales_open"], status["draw"], status["waiting_for"]) == (True, "waiting", [3])
    rows = {row["agency"]: row for row in status["agencies"]}
    assert (rows[1]["stored"], rows[1]["total"], rows[1]["done"]) == (300, 300, True)
    assert (rows[3]["total"], rows[3]["done"], rows[3]["connected"]) == (3000, False, False)
    assert 0 < rows[3]["stored"] < 3000
    metrics = http_get(status_port, "/metrics")
    families = {family.name: family for family in text_string_to_metric_families(metrics)}
    per_agency = {sample.labels["agency"]: sample.value for sample in families["lottery_bets_stored"].samples}
    assert (per_agency["1"], per_agency["2"]) == (300, 300)
    assert families["lottery_agencies_done"].samples[0].value == 2
    assert {"lottery_open_connections", "lottery_refusals", "lottery_ack_latency_seconds", "lottery_draw"} <= set(
        families
    )
    for text in (json.dumps(status), metrics, http_get(status_port, "/")):
        no_document_in(text, [first, second, dying])

    if trigger == "command":
        line = close_sales(server.cwd)
        assert (line["by"], line["new"], line["server_pid"]) == ("command", "True", str(server.pid))
    closed = server.wait_for_action("sales_close", WAIT_S)
    assert (closed["by"], closed["pending"], closed["waiting_for"]) == (trigger, "1", "3")
    server.wait_for_action("sorteo", WAIT_S)
    assert (server.cwd / "sales-closed").read_text().startswith(trigger + " ")

    for client, agency in zip(clients, (first, second), strict=True):
        assert client.wait(WAIT_S) == 0
        assert winners_reported(client) == len(agency.winners)
    stored = acknowledged(server, 3)
    rows_of = server.stored_rows()
    assert [row[1:] for row in rows_of if row[0] == "3"] == file_rows(dying)[:stored]
    for agency in (first, second):
        assert [row[1:] for row in rows_of if row[0] == str(agency.agency)] == file_rows(agency)
    assert len(rows_of) == 600 + stored
    late = [row[3] for row in rows_of if row[0] == "3" and row[5] == str(LOTTERY_WINNER_NUMBER)]

    again = ClientProcess(tmp_path, 3, server.port, dying.path)
    assert again.wait(WAIT_S) == 3
    (told,) = [line for line in again.actions("upload") if line["result"] == "fail"]
    assert (told["stored"], told["total"], told["error"]) == (str(stored), "3000", "sales closed")
    assert winners_reported(again) == len(late)
    assert server.stored_rows() == rows_of  # the refused batch stored nothing
    assert json.loads(http_get(status_port, "/status"))["sales_open"] is False
    refused = {
        sample.labels["code"]: sample.value
        for family in text_string_to_metric_families(http_get(status_port, "/metrics"))
        if family.name == "lottery_refusals"
        for sample in family.samples
        if sample.name == "lottery_refusals_total"
    }
    assert refused["SALES_CLOSED"] >= 1

    # A restart keeps sales closed; a second close changes nothing.
    assert server.stop() == 0
    restarted = start_server(agencies=3)
    reopened = restarted.wait_for_action("sales_close", WAIT_S)
    assert (reopened["by"], reopened["at"]) == (closed["by"], closed["at"])
    once_more = ClientProcess(tmp_path, 3, restarted.port, dying.path)
    assert once_more.wait(WAIT_S) == 3
    assert winners_reported(once_more) == len(late)
    line = close_sales(restarted.cwd)
    assert (line["new"], line["at"]) == ("False", closed["at"])
    assert restarted.stored_rows() == rows_of


def test_without_a_close_the_draw_still_waits_for_every_agency(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    first, _ = make_agencies(2, 100, [1, 0])
    server = start_server(agencies=2, constants={"lottery_gevent.lottery.WAIT_LOG_S": 0.2})
    client = ClientProcess(tmp_path, 1, server.port, first.path)
    client.wait_for_action("wait_draw", WAIT_S, outcome="in_progress")
    server.wait_for_count(r"action: draw_wait .*waiting_for: 2", 3)
    assert server.actions("sorteo") == [] and server.actions("sales_close") == []
    assert not (server.cwd / "sales-closed").exists()
    assert client.stop() == 0
