"""generar-compose.sh and tools/compose_generator.py: the compose file's content and the CLI contract.

None of these needs a Docker engine (tests/docker/test_compose_generator.py has the two that do).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import REPO_ROOT
from tests.support.scripts import (
    COMMITTED_COMPOSE,
    generate,
    python_without_cryptography,
    python_without_yaml,
    run_generator,
)

SERVER_CONFIG_MOUNT = "./lottery_gevent/config.ini:/opt/lottery/lottery_gevent/config.ini:ro"
CLIENT_CONFIG_MOUNT = "./client_gevent/config.yaml:/opt/lottery/client_gevent/config.yaml:ro"
DATA_MOUNT = "./.data:/data:ro"
SERVER_TLS = [
    "SERVER_TLS_CERT=/run/secrets/server.pem",
    "SERVER_TLS_KEY=/run/secrets/server.key",
    "SERVER_TLS_CA=/run/secrets/ca.pem",
    "SERVER_TLS_CRL=/run/secrets/crl.pem",
]


def client_tls(agency: int) -> list[str]:
    """Client `agency`'s TLS settings: in the Compose environment, not in the config file course tools rewrite."""
    return [
        "CLI_TLS_CA=/run/secrets/ca.pem",
        f"CLI_TLS_CERT=/run/secrets/agency-{agency}.pem",
        f"CLI_TLS_KEY=/run/secrets/agency-{agency}.key",
    ]


def server_tls(service: dict[str, Any]) -> list[str]:
    return [entry for entry in service["environment"] if entry.startswith("SERVER_TLS_")]


def test_lottery_compose_for_five_agencies(tmp_path: Path) -> None:
    tree = generate(tmp_path, 5)

    assert tree["name"] == "tp0"
    assert list(tree["services"]) == ["server", "client1", "client2", "client3", "client4", "client5"]
    server = tree["services"]["server"]
    assert server["container_name"] == "server"
    assert server["image"] == "server:latest"
    assert "SERVER_AGENCIES=5" in server["environment"]
    assert "PYTHONUNBUFFERED=1" in server["environment"]
    # The status page and /metrics: on, and reachable from the host (its loopback only).
    assert "SERVER_STATUS_PORT=8080" in server["environment"]
    assert server["ports"] == ["127.0.0.1:8080:8080"]
    assert server_tls(server) == SERVER_TLS
    assert server["secrets"] == ["server.pem", "server.key", "ca.pem", "crl.pem"]
    assert server["volumes"] == [SERVER_CONFIG_MOUNT]
    assert server["networks"] == ["testing_net"]
    health = server["healthcheck"]
    assert health["test"][0] == "CMD" and health["test"][-1] == "/opt/lottery/healthcheck.py"
    assert health["interval"] == "5s"
    for k in range(1, 6):
        client = tree["services"][f"client{k}"]
        assert client["container_name"] == f"client{k}"
        assert client["image"] == "client:latest"
        assert client["environment"] == [f"CLI_ID={k}", f"CLI_BETS_FILE=/data/agency-{k}.csv", *client_tls(k)]
        assert client["secrets"] == ["ca.pem", f"agency-{k}.pem", f"agency-{k}.key"]
        assert client["volumes"] == [CLIENT_CONFIG_MOUNT, DATA_MOUNT]
        assert client["networks"] == ["testing_net"]
        # Agencies start with the server and rely on their connect retry, as in a Swarm.
        assert "depends_on" not in client
    ipam = {"driver": "default", "config": [{"subnet": "172.25.125.0/24"}]}
    assert tree["networks"] == {"testing_net": {"ipam": ipam}}
    agencies = [f"agency-{k}.{ext}" for k in range(1, 6) for ext in ("pem", "key")]
    names = ["server.pem", "server.key", "ca.pem", "crl.pem", *agencies]
    assert tree["secrets"] == {name: {"file": f"./.secrets/{name}"} for name in names}
    for name in names:  # generar-compose.sh made every file the document names
        assert (tmp_path / ".secrets" / name).is_file()
    for key in (tmp_path / ".secrets").glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600
        if os.geteuid() == 0 and key.name != "ca.key":
            assert key.stat().st_uid == 10001  # the containers' user reads it from the secrets mount


def test_a_second_run_keeps_every_key_and_adds_missing_agencies(tmp_path: Path) -> None:
    generate(tmp_path, 2)
    secrets = tmp_path / ".secrets"
    before = {path.name: path.read_bytes() for path in secrets.iterdir()}
    generate(tmp_path, 3)

    after = {path.name: path.read_bytes() for path in secrets.iterdir()}
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {"agency-3.pem", "agency-3.key"}


def test_zero_agencies_gives_the_server_alone(tmp_path: Path) -> None:
    tree = generate(tmp_path, 0)

    assert list(tree["services"]) == ["server"]
    assert "SERVER_AGENCIES=0" in tree["services"]["server"]["environment"]


@pytest.mark.parametrize(
    ("extra", "env"),
    [(("--mode", "echo"), {}), (("--mode=echo",), {}), ((), {"CLIENT_MODE": "echo"})],
    ids=["flag", "flag=", "CLIENT_MODE"],
)
def test_echo_mode_sets_cli_mode_and_mounts_no_data(
    tmp_path: Path, extra: tuple[str, ...], env: dict[str, str]
) -> None:
    tree = generate(tmp_path, 2, *extra, env=env)

    for k in (1, 2):
        client = tree["services"][f"client{k}"]
        assert client["environment"] == [f"CLI_ID={k}", "CLI_MODE=echo"]
        assert "secrets" not in client  # the echo stays plaintext
        assert client["volumes"] == [CLIENT_CONFIG_MOUNT]
    assert server_tls(tree["services"]["server"]) == SERVER_TLS


def test_mode_flag_overrides_client_mode(tmp_path: Path) -> None:
    tree = generate(tmp_path, 1, "--mode", "lottery", env={"CLIENT_MODE": "echo"})

    environment = tree["services"]["client1"]["environment"]
    assert environment == ["CLI_ID=1", "CLI_BETS_FILE=/data/agency-1.csv", *client_tls(1)]


def test_committed_compose_file_is_the_output_for_five_lottery_agencies(tmp_path: Path) -> None:
    done = run_generator(tmp_path, "out.yaml", "5")

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.yaml").read_text(encoding="utf-8") == COMMITTED_COMPOSE.read_text(encoding="utf-8")


def test_generator_module_writes_stdout_or_file_alike(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tools.compose_generator"]
    to_stdout = subprocess.run([*command, "-", "3"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    subprocess.run([*command, str(tmp_path / "f.yaml"), "3"], cwd=REPO_ROOT, check=True)

    assert to_stdout.stdout == (tmp_path / "f.yaml").read_text(encoding="utf-8")


BAD_ARGUMENTS = {
    "no arguments": ((), {}),
    "no N": (("out.yaml",), {}),
    "empty file name": (("", "3"), {}),
    "negative N": (("out.yaml", "-1"), {}),
    "N not a number": (("out.yaml", "tres"), {}),
    "N not an integer": (("out.yaml", "1.5"), {}),
    "N empty": (("out.yaml", ""), {}),
    "unknown mode": (("out.yaml", "3", "--mode", "bingo"), {}),
    "mode without value": (("out.yaml", "3", "--mode"), {}),
    "unknown CLIENT_MODE": (("out.yaml", "3"), {"CLIENT_MODE": "bingo"}),
    "extra argument": (("out.yaml", "3", "4"), {}),
}


@pytest.mark.parametrize(("args", "env"), BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_arguments_give_usage_and_write_nothing(tmp_path: Path, args: tuple[str, ...], env: dict[str, str]) -> None:
    (tmp_path / "out.yaml").write_text("previous\n", encoding="utf-8")
    before = sorted(tmp_path.iterdir())

    done = run_generator(tmp_path, *args, env=env)

    assert done.returncode != 0
    assert "usage" in done.stderr.lower()
    assert sorted(tmp_path.iterdir()) == before
    assert (tmp_path / "out.yaml").read_text(encoding="utf-8") == "previous\n"


def test_too_many_clients_for_the_subnet_writes_nothing(tmp_path: Path) -> None:
    done = run_generator(tmp_path, "out.yaml", "300")

    assert done.returncode != 0
    assert "252" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("make_python", "named"),
    [(python_without_yaml, "pip install"), (python_without_cryptography, "cryptography")],
    ids=["without-pyyaml", "without-cryptography"],
)
def test_a_missing_package_and_no_image_explains_how_to_install_it_and_writes_nothing(
    tmp_path: Path, make_python: Callable[[Path], Path], named: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    python = make_python(tmp_path)

    done = run_generator(out, "out.yaml", "2", env={"PYTHON": str(python), "DOCKER": "false"})

    assert done.returncode != 0
    assert named in done.stderr and "pip install" in done.stderr
    assert list(out.iterdir()) == []
