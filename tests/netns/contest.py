# Strategy: the one contest the "other hosts" tests run, against any server whose
# log they can follow (a plain process, or the stack's task through `docker logs
# -f`). Five agencies on three namespace hosts; host 1 loses packets at random
# both ways; host 2 is cut off (DROP) once the server has stored a few of agency
# 3's batches, and healed once agency 3 has noticed and failed to reconnect
# twice (event-driven: no sleeps). The caller checks what the server stored.
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import DATASET_WINNERS
from tests.netns.hosts import Host
from tests.support.processes import LoggedProcess, winners_reported

#: Which namespace host runs each agency.
PLACEMENT = {1: 0, 4: 0, 2: 1, 5: 1, 3: 2}
LOSSY_HOST = 1
LOSS = 0.05
PARTITIONED_AGENCY = 3
#: Agency 3's batches the server has stored when the partition starts (of about 125).
PARTITION_AFTER_BATCHES = 5
#: Agency 3 notices a dead link after this long without a reply.
PARTITIONED_REPLY_TIMEOUT = "2s"
RUN_TIMEOUT_S = 240.0
BATCH_LINE = rf"action: apuesta_recibida \| result: success \| cantidad: \d+ \| agency: {PARTITIONED_AGENCY}\b"


@dataclass(frozen=True)
class Outcome:
    """What the contest showed: packets dropped on the lossy host, agency 3's batches before and after."""

    dropped: int
    batches_at_partition: int
    batches_in_all: int


def start_agency(host: Host, agency: int, server: str, path: Path, cwd: Path, env: dict[str, str]) -> LoggedProcess:
    settings = {
        "CLI_ID": str(agency),
        "CLI_SERVER_ADDRESS": server,
        "CLI_BETS_FILE": str(path),
        "CLI_LOG_LEVEL": "INFO",
        "CLI_CONNECTION_RETRYTIMEOUT": "120s",
        **env,
    }
    if agency == PARTITIONED_AGENCY:
        settings["CLI_CONNECTION_REPLYTIMEOUT"] = PARTITIONED_REPLY_TIMEOUT
    return host.python("client_gevent", cwd, settings)


def run_contest(
    hosts: list[Host], server: str, server_log: LoggedProcess, paths: dict[int, Path], cwd: Path,
    env: dict[str, str] | None = None,
) -> Outcome:  # fmt: skip
    """Run the five agencies on `hosts` against `server` (host:port) through loss and a partition.

    Args:
        hosts: three namespace hosts.
        server: the address the agencies dial.
        server_log: the server's log, followed (for agency 3's batch lines).
        paths: the agencies' files.
        cwd: the agencies' working directory.
        env: more client settings (TLS, for instance).

    Raises:
        AssertionError: an agency failed, logged a fail line, or got other winners.
    """
    hosts[LOSSY_HOST].add_loss(LOSS)
    partitioned = hosts[PLACEMENT[PARTITIONED_AGENCY]]
    clients = {
        agency: start_agency(hosts[PLACEMENT[agency]], agency, server, paths[agency], cwd, env or {})
        for agency in paths
    }
    server_log.wait_for_count(BATCH_LINE, PARTITION_AFTER_BATCHES, timeout=RUN_TIMEOUT_S)
    partitioned.partition()
    try:
        at_partition = sum(1 for line in server_log.lines if re.search(BATCH_LINE, line))
        # Agency 3's reply times out, then a reconnect fails while the host is still cut off.
        clients[PARTITIONED_AGENCY].wait_for_count(r"action: connect \| result: in_progress", 2, timeout=60)
    finally:
        partitioned.heal()
    codes = {agency: client.wait(RUN_TIMEOUT_S) for agency, client in clients.items()}
    assert codes == dict.fromkeys(paths, 0), {agency: clients[agency].output()[-2000:] for agency in paths}
    assert {agency: winners_reported(client) for agency, client in clients.items()} == DATASET_WINNERS
    for client in clients.values():
        assert "result: fail" not in client.output()
    in_all = sum(1 for line in server_log.lines if re.search(BATCH_LINE, line))
    assert in_all > at_partition, "agency 3 had finished its upload before the partition"
    return Outcome(hosts[LOSSY_HOST].dropped(), at_partition, in_all)
