"""Agencies on other hosts (network namespaces), through packet loss and a partition.

Five agencies on three namespace hosts talk to a plain server process on this
host over veth links, with mutual TLS (the server certificate names the links'
host-side addresses) (tests/netns/contest.py: host 1 loses 5% of its packets,
host 2 is cut off during agency 3's upload, then healed). The result must be
exactly the data's (the course's files, or generated ones of their shape):
winners 2, 3, 3, 2, 0, 78,697 rows, and the stored bets equal to the files'
(no duplicates, none missing). tests/docker/test_swarm.py runs the same
contest against the stack's server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import DATASET_BETS
from tests.faults.conftest import dataset_paths, file_bets, stored_bets
from tests.netns.contest import LOSSY_HOST, make_credentials, run_contest
from tests.netns.hosts import Host
from tests.support.processes import ServerProcess


def test_agencies_on_three_hosts_through_loss_and_a_partition(
    host_network: Callable[[int], list[Host]],
    start_server: Callable[..., ServerProcess],
    real_dataset: Path,
    tmp_path: Path,
) -> None:
    hosts = host_network(3)
    credentials = make_credentials(tmp_path / "secrets", [host.gateway for host in hosts])
    # Bound to host 0's link address only; the other hosts reach it through their default route.
    server = start_server(agencies=5, env={"SERVER_IP": hosts[0].gateway, **credentials.server_env()})
    paths = dataset_paths(real_dataset)

    outcome = run_contest(hosts, f"{hosts[0].gateway}:{server.port}", server, paths, tmp_path, credentials)

    assert outcome.dropped > 0
    assert server.stop() == 0
    assert len(server.stored_rows()) == DATASET_BETS
    assert stored_bets(server) == file_bets(paths)
    print(
        f"host {LOSSY_HOST} dropped {outcome.dropped} packets; agency 3: {outcome.batches_at_partition} batches "
        f"stored at the partition, {outcome.batches_in_all} in all"
    )
