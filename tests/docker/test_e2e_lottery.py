"""End-to-end lottery runs under Docker Compose (issue 3, tests 1 and 2).

Each test runs real images in a Compose project of its own, waits for the clients
to exit (``docker wait``), stops the server gracefully, then checks exit codes
(``docker inspect``) and the parsed logs.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import DATASET_BETS, DATASET_WINNERS
from tests.docker.compose import ComposeProject, actions_of, parse_stamp
from tests.docker.conftest import MEASURED, copy_agencies
from tools.generate_agencies import generate

pytestmark = pytest.mark.docker

#: Upper bounds, far above what the 2-core CI machine needs.
REAL_DATA_TIMEOUT_S = 600.0
SMALL_RUN_TIMEOUT_S = 180.0


def check_lottery_run(project: ComposeProject, expected_winners: dict[int, int]) -> list[int]:
    """Stop the server, then check exit codes and logs of a finished lottery run.

    Returns:
        The `cantidad` of every accepted batch, in the server's log order.
    """
    project.stop("server")
    containers = ["server", *(f"client{k}" for k in expected_winners)]
    codes = {name: project.exit_code(name) for name in containers}
    assert codes == dict.fromkeys(containers, 0)
    logs = {name: project.logs(name) for name in containers}
    failed = [f"{name}: {line.text}" for name, lines in logs.items() for line in lines if "result: fail" in line.text]
    assert failed == []

    server = logs["server"]
    draws = actions_of(server, "sorteo")
    assert [fields["result"] for _, fields in draws] == ["success"]
    draw_line, _ = draws[0]
    draw_index = server.index(draw_line)
    batches = actions_of(server, "apuesta_recibida")
    assert batches and all(server.index(line) < draw_index for line, _ in batches)
    assert all(fields["result"] == "success" for _, fields in batches)

    for agency, winners in expected_winners.items():
        replies = actions_of(logs[f"client{agency}"], "consulta_ganadores")
        assert [(fields["result"], fields["cant_ganadores"]) for _, fields in replies] == [("success", str(winners))]
        assert replies[0][0].stamp > draw_line.stamp, f"client{agency} had its winners before the draw"
    return [int(fields["cantidad"]) for _, fields in batches]


def last_exit(project: ComposeProject, clients: list[str]) -> float:
    """Seconds from the server's start to the last client exit, by the engine's clock."""
    started = parse_stamp(str(project.state("server")["StartedAt"]))
    finished = max(parse_stamp(str(project.state(name)["FinishedAt"])) for name in clients)
    return (finished - started).total_seconds()


def test_five_agencies_with_the_dataset(compose_project: Callable[..., ComposeProject], real_dataset: Path) -> None:
    project = compose_project()
    project.use_committed_compose_file()
    copy_agencies(real_dataset, project.data_dir)
    clients = project.clients()
    assert clients == [f"client{k}" for k in range(1, 6)]

    began = time.monotonic()
    project.up()
    codes = project.wait_exit(clients, timeout=REAL_DATA_TIMEOUT_S)
    MEASURED["test 1 (5 agencies, real data): up -> last client exit"] = time.monotonic() - began
    MEASURED["test 1: server start -> last client exit (engine clock)"] = last_exit(project, clients)

    assert codes == dict.fromkeys(clients, 0)
    counts = check_lottery_run(project, DATASET_WINNERS)
    assert sum(counts) == DATASET_BETS


def test_three_agencies_with_generated_files(compose_project: Callable[..., ComposeProject]) -> None:
    bets, max_amount = 250, 40
    project = compose_project()
    generate(project.data_dir, agencies=3, bets=bets, winners=[2, 1, 0])
    project.set_client_config(batch__maxAmount=max_amount)
    project.generate(3)

    project.up()
    codes = project.wait_exit(project.clients(), timeout=SMALL_RUN_TIMEOUT_S)

    assert codes == {"client1": 0, "client2": 0, "client3": 0}
    counts = check_lottery_run(project, {1: 2, 2: 1, 3: 0})
    full, last = divmod(bets, max_amount)
    # Batches of the three agencies interleave in the server's log, but as a multiset
    # every agency contributes `full` full batches and one short one.
    assert Counter(counts) == Counter({max_amount: 3 * full, last: 3})
    server_config = [fields for _, fields in actions_of(project.logs("server"), "config")]
    assert server_config[0]["agencies"] == "3"
