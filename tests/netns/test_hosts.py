"""Agencies on other hosts (network namespaces), through packet loss and a partition.

Five agencies on three namespace hosts talk to a plain server process on this
host over veth links. Host 1 loses packets at random both ways (iptables
`statistic` inside its namespace); host 2 is cut off (DROP) during agency 3's
upload, until agency 3 has noticed and failed to reconnect twice, then healed.
The result must be exactly the course's: winners 2, 3, 3, 2, 0, 78,697 rows, and
the stored bets equal to the files' (no duplicates, none missing).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.conftest import DATASET_BETS, DATASET_WINNERS
from tests.faults.conftest import dataset_paths, file_bets, stored_bets
from tests.netns.hosts import Host
from tests.support.processes import LoggedProcess, ServerProcess, winners_reported

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


def start_agency(host: Host, agency: int, server: ServerProcess, path: Path, cwd: Path) -> LoggedProcess:
    env = {
        "CLI_ID": str(agency),
        "CLI_SERVER_ADDRESS": f"{server_address(server)}:{server.port}",
        "CLI_BETS_FILE": str(path),
        "CLI_LOG_LEVEL": "INFO",
        "CLI_CONNECTION_RETRYTIMEOUT": "120s",
    }
    if agency == PARTITIONED_AGENCY:
        env["CLI_CONNECTION_REPLYTIMEOUT"] = PARTITIONED_REPLY_TIMEOUT
    return host.python("client_gevent", cwd, env)


def server_address(server: ServerProcess) -> str:
    return next(fields["ip"] for fields in server.actions("listen"))


def test_agencies_on_three_hosts_through_loss_and_a_partition(
    host_network: Callable[[int], list[Host]],
    start_server: Callable[..., ServerProcess],
    real_dataset: Path,
    tmp_path: Path,
) -> None:
    hosts = host_network(3)
    # Bound to host 0's link address only; the other hosts reach it through their default route.
    server = start_server(agencies=5, env={"SERVER_IP": hosts[0].gateway})
    hosts[LOSSY_HOST].add_loss(LOSS)
    paths = dataset_paths(real_dataset)
    partitioned = hosts[PLACEMENT[PARTITIONED_AGENCY]]

    clients = {
        agency: start_agency(hosts[PLACEMENT[agency]], agency, server, paths[agency], tmp_path) for agency in paths
    }
    batch_line = rf"action: apuesta_recibida \| result: success \| cantidad: \d+ \| agency: {PARTITIONED_AGENCY}\b"
    server.wait_for_count(batch_line, PARTITION_AFTER_BATCHES, timeout=120)
    partitioned.partition()
    try:
        stored_at_partition = sum(1 for line in server.lines if re.search(batch_line, line))
        # Agency 3's reply times out, then a reconnect fails while the host is still cut off.
        clients[PARTITIONED_AGENCY].wait_for_count(r"action: connect \| result: in_progress", 2, timeout=60)
    finally:
        partitioned.heal()

    codes = {agency: client.wait(RUN_TIMEOUT_S) for agency, client in clients.items()}
    assert codes == dict.fromkeys(paths, 0), {agency: clients[agency].output()[-2000:] for agency in paths}
    assert {agency: winners_reported(client) for agency, client in clients.items()} == DATASET_WINNERS
    for client in clients.values():
        assert "result: fail" not in client.output()
    batches_after = sum(1 for line in server.lines if re.search(batch_line, line))
    assert batches_after > stored_at_partition, "agency 3 had finished its upload before the partition"
    dropped = hosts[LOSSY_HOST].dropped()
    assert dropped > 0
    assert server.stop() == 0
    assert len(server.stored_rows()) == DATASET_BETS
    assert stored_bets(server) == file_bets(paths)
    print(
        f"host {LOSSY_HOST} dropped {dropped} packets; agency 3: {stored_at_partition} batches stored "
        f"at the partition, {batches_after} in all"
    )
