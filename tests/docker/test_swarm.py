"""The stack on a single-node swarm: the whole contest, a server that moves, agencies outside (issue 12).

The stack comes from generar-compose.sh --swarm and runs the course data (or
generated files of its shape, tests/conftest.py), with mutual TLS: the
credentials are Swarm secrets.
  - The server task's container is killed (SIGKILL) during the upload; Swarm's
    restart policy starts a new task on the same named volume, the agencies
    reconnect and resume, and the result is exact.
  - Agencies outside the swarm, on network-namespace hosts (tests/netns), reach
    the server's published port through loss and a partition, over TLS: the
    server certificate names the address they dial (a veth link's host end).
Then the stack, its volume, the namespaces and the swarm go.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import DATASET_BETS, DATASET_WINNERS
from tests.docker.compose import ComposeProject, docker
from tests.docker.conftest import copy_agencies
from tests.docker.swarm import SERVER_PORT, Stack, single_node_swarm, write_stack
from tests.faults.conftest import file_bets
from tests.netns.contest import make_credentials, run_contest
from tests.netns.hosts import HostNetwork, problem
from tests.support.processes import actions

pytestmark = pytest.mark.docker

#: The upload has begun (batches stored, of about 630) when the server is killed.
KILL_AFTER_BATCHES = 40
RUN_TIMEOUT_S = 300.0


@pytest.fixture
def swarm(docker_engine: None) -> Iterator[str]:
    """A swarm per test: leaving it removes the stack's overlay network at once (`stack rm` does it later)."""
    with single_node_swarm() as node:
        yield node


def container_lines(container: str) -> list[str]:
    done = docker("logs", container)
    return (done.stdout + done.stderr).splitlines()


def stored_rows(container: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(docker("exec", container, "cat", "/var/lib/lottery/bets.csv").stdout)))


def test_server_killed_mid_upload_restarts_on_its_volume_and_the_result_is_exact(
    swarm: str, images: dict[str, str], compose_project: Callable[..., ComposeProject], real_dataset: Path
) -> None:
    project = compose_project()
    copy_agencies(real_dataset, project.data_dir)
    project.set_client_config(connection__retryTimeout="120s")
    stack_file = write_stack(project.directory, len(DATASET_WINNERS))

    with Stack(stack_file, project.directory) as stack:
        first = stack.started("server")
        log = stack.follow_logs(first)
        log.wait_for_count(r"action: apuesta_recibida \| result: success", KILL_AFTER_BATCHES, timeout=RUN_TIMEOUT_S)
        docker("kill", first)

        second = stack.started("server", count=2, timeout=RUN_TIMEOUT_S)
        assert second != first
        stack.follow_logs(second).wait_for_action("sorteo", timeout=RUN_TIMEOUT_S)
        clients = {agency: stack.started(f"client{agency}") for agency in DATASET_WINNERS}
        docker("wait", *clients.values(), timeout=RUN_TIMEOUT_S)

        exit_codes = {
            agency: int(docker("inspect", "-f", "{{.State.ExitCode}}", container).stdout)
            for agency, container in clients.items()
        }
        assert exit_codes == dict.fromkeys(DATASET_WINNERS, 0)
        assert int(docker("inspect", "-f", "{{.State.ExitCode}}", first).stdout) == 137  # SIGKILL
        winners = {}
        for agency, container in clients.items():
            lines = container_lines(container)
            assert not [line for line in lines if "result: fail" in line]
            assert [fields.get("tls") for fields in actions(lines, "config")] == ["on"]
            answers = [fields for fields in actions(lines, "consulta_ganadores") if fields["result"] == "success"]
            winners[agency] = int(answers[-1]["cant_ganadores"])
        assert winners == DATASET_WINNERS

        # The new task recovered what the killed one had stored (same volume), then took the rest.
        second_lines = container_lines(second)
        assert [fields.get("tls") for fields in actions(second_lines, "config")] == ["on"]
        recovered = actions(second_lines, "storage_recovery")
        assert recovered and int(recovered[0]["rows"]) > 0, "\n".join(second_lines[:20])
        rows = stored_rows(second)
        assert len(rows) == DATASET_BETS
        stored = Counter((row[0], row[3], row[5]) for row in rows)
        assert stored == file_bets({agency: project.data_dir / f"agency-{agency}.csv" for agency in DATASET_WINNERS})
        retries = sum(
            1 for container in clients.values() for line in container_lines(container) if "result: in_progress" in line
        )
        print(f"server killed; new task recovered {recovered[0]['rows']} rows; {retries} client retries; exact result")


def test_agencies_outside_the_swarm_reach_the_published_port_through_loss_and_a_partition(
    swarm: str, images: dict[str, str], compose_project: Callable[..., ComposeProject], real_dataset: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    reason = problem()
    if reason is not None:
        pytest.fail(f"agencies on namespace hosts: {reason}", pytrace=False)
    project = compose_project()
    copy_agencies(real_dataset, project.data_dir)
    paths = {agency: project.data_dir / f"agency-{agency}.csv" for agency in DATASET_WINNERS}

    with HostNetwork() as network:
        hosts = network.add(3)
        # Made before the stack file, which then mounts them: the server certificate names the veth host ends.
        credentials = make_credentials(project.directory / ".secrets", [host.gateway for host in hosts])
        stack_file = write_stack(project.directory, len(DATASET_WINNERS))
        # The server alone in the swarm (still expecting 5 agencies): the agencies are elsewhere.
        tree = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
        server_service = tree["services"]["server"]
        tree["services"] = {"server": server_service}
        tree["secrets"] = {mount["source"]: tree["secrets"][mount["source"]] for mount in server_service["secrets"]}
        stack_file.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
        with Stack(stack_file, project.directory) as stack:
            server = stack.started("server")
            log = stack.follow_logs(server)
            log.wait_for_action("listen", timeout=RUN_TIMEOUT_S)
            outcome = run_contest(hosts, f"{hosts[0].gateway}:{SERVER_PORT}", log, paths, tmp_path, credentials)
            rows = stored_rows(server)

    assert outcome.dropped > 0
    assert len(rows) == DATASET_BETS
    assert Counter((row[0], row[3], row[5]) for row in rows) == file_bets(paths)
    print(f"outside agencies: {outcome}")
