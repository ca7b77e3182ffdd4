"""generar-compose.sh --swarm and tools/stack_generator.py: the stack file's content.

None of these needs a Docker engine; tests/docker/test_swarm.py deploys the output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.scripts import run_generator as run_script
from tools import stack_generator


def generate(directory: Path, n: int, *extra: str) -> tuple[dict[str, Any], str]:
    done = run_script(directory, "stack.yaml", str(n), "--swarm", *extra)
    assert done.returncode == 0, done.stderr
    tree: dict[str, Any] = yaml.safe_load((directory / "stack.yaml").read_text(encoding="utf-8"))
    return tree, done.stderr


def make_secrets(directory: Path, agencies: int) -> None:
    secrets = directory / ".secrets"
    secrets.mkdir()
    for name in ["ca.pem", "server.pem", "server.key"] + [
        f"agency-{k}.{ext}" for k in range(1, agencies + 1) for ext in ("pem", "key")
    ]:
        (secrets / name).write_text("x\n", encoding="utf-8")


def test_stack_for_three_agencies_without_credentials(tmp_path: Path) -> None:
    tree, stderr = generate(tmp_path, 3)

    assert "without TLS" in stderr
    assert list(tree["services"]) == ["server", "client1", "client2", "client3"]
    for service in tree["services"].values():
        assert "container_name" not in service and "depends_on" not in service
        assert service["deploy"]["endpoint_mode"] == "dnsrr"
        assert "secrets" not in service
    server = tree["services"]["server"]
    assert server["deploy"]["restart_policy"]["condition"] == "on-failure"
    assert server["deploy"]["placement"]["constraints"] == ["node.labels.lottery.role == server"]
    assert server["volumes"] == [{"type": "volume", "source": "server_data", "target": "/var/lib/lottery"}]
    assert "SERVER_DATA_DIR=/var/lib/lottery" in server["environment"]
    assert server["ports"] == [{"target": 12345, "published": 12345, "protocol": "tcp", "mode": "host"}]
    assert server["configs"][0]["target"] == "/opt/lottery/lottery_gevent/config.ini"
    for k in (1, 2, 3):
        client = tree["services"][f"client{k}"]
        assert client["deploy"]["restart_policy"] == {"condition": "none"}
        assert f"CLI_BETS_FILE=/data/agency-{k}.csv" in client["environment"]
        assert client["configs"][0]["target"] == "/opt/lottery/client_gevent/config.yaml"
    assert tree["networks"] == {"lottery_net": {"driver": "overlay", "attachable": True}}
    assert tree["volumes"] == {"server_data": {}}
    assert "secrets" not in tree


def test_credentials_beside_the_file_become_swarm_secrets(tmp_path: Path) -> None:
    make_secrets(tmp_path, 2)
    tree, stderr = generate(tmp_path, 2)

    assert "without TLS" not in stderr
    server = tree["services"]["server"]
    assert {mount["target"] for mount in server["secrets"]} == {"ca.pem", "server.pem", "server.key"}
    assert {
        "SERVER_TLS_CERT=/run/secrets/server.pem",
        "SERVER_TLS_KEY=/run/secrets/server.key",
        "SERVER_TLS_CA=/run/secrets/ca.pem",
    } <= set(server["environment"])
    client = tree["services"]["client2"]
    # An agency gets the CA and its own certificate and key, nothing of another agency.
    assert {mount["target"] for mount in client["secrets"]} == {"ca.pem", "agency-2.pem", "agency-2.key"}
    assert all(mount["uid"] == "10001" and mount["mode"] == 0o400 for mount in client["secrets"])
    assert "CLI_TLS_KEY=/run/secrets/agency-2.key" in client["environment"]
    assert tree["secrets"]["agency_2_key"] == {"file": "./.secrets/agency-2.key"}


def test_a_missing_agency_credential_turns_tls_off(tmp_path: Path) -> None:
    make_secrets(tmp_path, 2)
    tree, stderr = generate(tmp_path, 3)

    assert "without TLS" in stderr
    assert "secrets" not in tree


def test_vip_endpoint_publishes_through_the_routing_mesh(tmp_path: Path) -> None:
    tree, _ = generate(tmp_path, 1, "--endpoint-mode", "vip")

    assert {service["deploy"]["endpoint_mode"] for service in tree["services"].values()} == {"vip"}
    assert tree["services"]["server"]["ports"][0]["mode"] == "ingress"


def test_echo_stack_mounts_no_data(tmp_path: Path) -> None:
    tree, _ = generate(tmp_path, 1, "--mode", "echo")

    client = tree["services"]["client1"]
    assert "CLI_MODE=echo" in client["environment"] and "volumes" not in client


@pytest.mark.parametrize(
    "args",
    [("--endpoint-mode", "vip"), ("--swarm", "--endpoint-mode", "bogus"), ("--swarm", "--endpoint-mode")],
    ids=["endpoint without swarm", "unknown endpoint", "endpoint without value"],
)
def test_bad_stack_arguments_give_usage_and_write_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = run_script(tmp_path, "stack.yaml", "2", *args)

    assert done.returncode != 0
    assert "usage" in done.stderr.lower()
    assert list(tmp_path.iterdir()) == []


def test_module_rejects_what_the_script_would() -> None:
    with pytest.raises(ValueError, match="endpoint mode"):
        stack_generator.build_stack(1, endpoint_mode="mesh")
    with pytest.raises(ValueError, match="0..252"):
        stack_generator.build_stack(253)
