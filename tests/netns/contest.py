# Strategy: the one contest the "other hosts" tests run, against any server whose
# log they can follow (a plain process, or the stack's task through `docker logs
# -f`). Five agencies on three namespace hosts; host 1 loses packets at random
# both ways; host 2 is cut off (DROP) once the server has stored a few of agency
# 3's batches, and healed once agency 3 has noticed and failed to reconnect
# twice (event-driven: no sleeps). The caller checks what the server stored.
# Everything is mutual TLS, with credentials made as a user makes them
# (`python -m tools.credentials`), the server certificate naming the addresses
# the agencies dial (the veth host ends).
from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import DATASET_WINNERS
from tests.netns.hosts import Host
from tests.support.processes import REPO_ROOT, LoggedProcess, winners_reported
from tests.support.tls import Contest

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
CREDENTIALS_TIMEOUT_S = 60.0
BATCH_LINE = rf"action: apuesta_recibida \| result: success \| cantidad: \d+ \| agency: {PARTITIONED_AGENCY}\b"


@dataclass(frozen=True)
class Outcome:
    """What the contest showed: packets dropped on the lossy host, agency 3's batches before and after."""

    dropped: int
    batches_at_partition: int
    batches_in_all: int


def make_credentials(directory: Path, server_names: Sequence[str]) -> Contest:
    """The contest's CA, server and agencies 1..5 in `directory`, the server certificate also naming `server_names`.

    Raises:
        subprocess.CalledProcessError: tools.credentials failed.
    """
    names = [f"--server-name={name}" for name in server_names]
    argv = [sys.executable, "-m", "tools.credentials", str(directory), "--agencies", str(len(PLACEMENT)), *names]
    subprocess.run(argv, cwd=REPO_ROOT, check=True, capture_output=True, timeout=CREDENTIALS_TIMEOUT_S)
    return Contest(directory)


def start_agency(host: Host, agency: int, server: str, path: Path, cwd: Path, credentials: Contest) -> LoggedProcess:
    settings = {
        "CLI_ID": str(agency),
        "CLI_SERVER_ADDRESS": server,
        "CLI_BETS_FILE": str(path),
        "CLI_LOG_LEVEL": "INFO",
        "CLI_CONNECTION_RETRYTIMEOUT": "120s",
        **credentials.client_env(agency),
    }
    if agency == PARTITIONED_AGENCY:
        settings["CLI_CONNECTION_REPLYTIMEOUT"] = PARTITIONED_REPLY_TIMEOUT
    return host.python("client_gevent", cwd, settings)


def run_contest(
    hosts: list[Host], server: str, server_log: LoggedProcess, paths: dict[int, Path], cwd: Path,
    credentials: Contest,
) -> Outcome:  # fmt: skip
    """Run the five agencies on `hosts` against `server` (host:port) through loss and a partition, over TLS.

    Args:
        hosts: three namespace hosts.
        server: the address the agencies dial.
        server_log: the server's log, followed (for agency 3's batch lines); it must be serving TLS.
        paths: the agencies' files.
        cwd: the agencies' working directory.
        credentials: the agencies' certificates (`make_credentials`).

    Raises:
        AssertionError: the server or an agency ran without TLS, an agency failed, logged a fail line,
            or got other winners.
    """
    assert [fields.get("tls") for fields in server_log.actions("config")] == ["on"], server_log.output()[-2000:]
    hosts[LOSSY_HOST].add_loss(LOSS)
    partitioned = hosts[PLACEMENT[PARTITIONED_AGENCY]]
    clients = {
        agency: start_agency(hosts[PLACEMENT[agency]], agency, server, paths[agency], cwd, credentials)
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
        assert [fields.get("tls") for fields in client.actions("config")] == ["on"]
    in_all = sum(1 for line in server_log.lines if re.search(BATCH_LINE, line))
    assert in_all > at_partition, "agency 3 had finished its upload before the partition"
    return Outcome(hosts[LOSSY_HOST].dropped(), at_partition, in_all)
