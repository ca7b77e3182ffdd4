"""Graceful stop under Docker (issue 3, test 5): SIGTERM mid-run gives exit code 0.

`docker stop -t 10` sends SIGTERM, and SIGKILL only after 10 s; an exit code of 0
(not 137) proves the process handled SIGTERM. Each stop targets a known moment,
reached by waiting for a log line: a client uploading, a client waiting for the
winners, the server with both kinds of client, everything at once
(`docker compose stop`), and echo mode's loop. The lottery run then resumes and
must still produce the right winners: bets.csv survives a container restart.

Every stop waits until its target has connected to the server. A process stopped
during its start-up, before it installs its SIGTERM handler, ignores the signal:
it is PID 1 in its container, and PID 1 has no default signal action. docker stop
then kills it after the grace period (exit 137). That window is the services' to
close (install the handlers first thing), not the packaging's.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

import pytest

from tests.docker.compose import ComposeProject, actions_of, docker
from tools.generate_agencies import generate

pytestmark = pytest.mark.docker

LINE_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 300.0
#: Agency 3 uploads this many bets two per batch (about 1 ms each here): it is
#: still uploading, by seconds, whenever the test stops something.
BIG_AGENCY_BETS = 20_000
MAX_AMOUNT = 2
FINAL_MAX_AMOUNT = 100
WINNERS = {1: 2, 2: 1, 3: 0}
#: Run in the server container (its working directory holds bets.csv): rows, distinct documents.
COUNT_ROWS = (
    "import csv; rows = list(csv.reader(open('bets.csv', encoding='utf-8'))); "
    "print(len(rows), len({row[3] for row in rows}))"
)


def stopped_cleanly(project: ComposeProject, *containers: str) -> None:
    """Assert that each stopped container exited 0 and logged its shutdown."""
    codes = {name: project.exit_code(name) for name in containers}
    assert codes == dict.fromkeys(containers, 0)
    for name in containers:
        assert any("action: shutdown | result: success" in line.text for line in project.logs(name)), name


def test_sigterm_during_upload_while_waiting_and_to_everything(compose_project: Callable[..., ComposeProject]) -> None:
    project = compose_project()
    generate(project.data_dir, agencies=3, bets=100, winners=[2, 1, 0])
    big = project.directory / "big"
    generate(big, agencies=3, bets=BIG_AGENCY_BETS, winners=[0, 0, 0])
    shutil.copyfile(big / "agency-3.csv", project.data_dir / "agency-3.csv")
    (project.data_dir / "agency-3.csv").chmod(0o644)
    project.set_client_config(batch__maxAmount=MAX_AMOUNT)
    project.generate(3)

    # A client uploading, and a client waiting for the winners (agency 3 is not done).
    project.up()
    server_log = project.follow("server")
    server_log.wait_for_line(r"action: identify \| result: success .*\| agency: 3 \|", LINE_TIMEOUT_S)
    for agency in (1, 2):
        server_log.wait_for_line(rf"action: agency_done \| result: success \| agency: {agency}$", LINE_TIMEOUT_S)
    project.stop("client1", "client3")
    stopped_cleanly(project, "client1", "client3")
    assert not actions_of(project.logs("client3"), "upload"), "client3 had finished uploading: not mid-upload"

    # The server, with one client uploading (client3, resumed) and one waiting (client2).
    restarted = time.time()
    project.compose("start", "client3")
    server_log = project.follow("server", since=restarted)
    server_log.wait_for_line(r"action: identify \| result: success .*\| agency: 3 \| stored: [1-9]", LINE_TIMEOUT_S)
    server_log.wait_for_line(r"action: apuesta_recibida \| result: success", LINE_TIMEOUT_S)
    project.stop("server")
    stopped_cleanly(project, "server")
    assert "agency: 3" not in "\n".join(line for line in server_log.lines if "agency_done" in line)

    # Everything at once, once the restarted server has client3 uploading again.
    restarted = time.time()
    project.up()
    server_log = project.follow("server", since=restarted)
    server_log.wait_for_line(r"action: storage_recovery \| result: success \| rows: [1-9]", LINE_TIMEOUT_S)
    for agency in (1, 2, 3):  # each client is past its start-up (see module docstring) and connected
        server_log.wait_for_line(rf"action: identify \| result: success .*\| agency: {agency} \|", LINE_TIMEOUT_S)
    server_log.wait_for_line(r"action: apuesta_recibida \| result: success", LINE_TIMEOUT_S)
    project.compose("stop", "-t", "10")
    stopped_cleanly(project, "server", "client1", "client2", "client3")

    # Resumed to the end, in bigger batches (the clients re-read the mounted config.yaml):
    # every bet stored exactly once, every agency its own winners.
    project.set_client_config(batch__maxAmount=FINAL_MAX_AMOUNT)
    project.up()
    assert project.wait_exit(project.clients(), timeout=RUN_TIMEOUT_S) == {"client1": 0, "client2": 0, "client3": 0}
    # Count bets.csv itself: a batch stored while SIGTERM arrived has no apuesta_recibida
    # line (it was never acknowledged), yet it is kept, and the client resumed after it.
    stored = docker("exec", "server", "python3", "-c", COUNT_ROWS).stdout.split()
    assert stored == [str(200 + BIG_AGENCY_BETS)] * 2  # rows, distinct documents
    project.stop("server")
    assert project.exit_code("server") == 0
    for agency, winners in WINNERS.items():
        replies = actions_of(project.logs(f"client{agency}"), "consulta_ganadores")
        assert [fields["cant_ganadores"] for _, fields in replies] == [str(winners)]
    for name in ("server", "client1", "client2", "client3"):
        assert not [line.text for line in project.logs(name) if "result: fail" in line.text], name


def test_sigterm_during_the_echo_loop(compose_project: Callable[..., ComposeProject]) -> None:
    project = compose_project()
    project.set_client_config(loop__amount=5, loop__period="5s")
    project.generate(2, mode="echo")

    project.up()
    project.follow("client1").wait_for_line(r"action: receive_message \| result: success", LINE_TIMEOUT_S)
    project.follow("client2").wait_for_line(r"action: receive_message \| result: success", LINE_TIMEOUT_S)
    project.stop("client1")  # sleeping for 5 s between messages
    stopped_cleanly(project, "client1")
    project.compose("stop", "-t", "10")
    stopped_cleanly(project, "server", "client2")

    for name in ("client1", "client2"):
        lines = project.logs(name)
        assert not actions_of(lines, "loop_finished"), f"{name} finished its loop: not stopped mid-loop"
        assert not [line.text for line in lines if "result: fail" in line.text]
