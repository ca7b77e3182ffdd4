"""Echo mode and validar-echo-server.sh under Docker (issue 3, tests 3 and 4).

validar-echo-server.sh attaches to the network named tp0_testing_net, so the tests
that need it use the Compose project "tp0" (or create that network themselves),
one at a time, and always take it down afterwards.
"""

from __future__ import annotations

import configparser
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docker.compose import ECHO_NETWORK, ComposeProject, actions_of, docker
from tests.support.processes import REPO_ROOT
from tests.support.scripts import VALIDATOR_SCRIPT

pytestmark = pytest.mark.docker

SUCCESS = "action: test_echo_server | result: success\n"
FAIL = "action: test_echo_server | result: fail\n"
#: The script's retry window (it counts whole seconds, so it may end up to 1 s early),
#: and the slack a last `docker run` may add to it.
RETRY_WINDOW_S = 10.0
SLACK_S = 5.0
SECOND_GRANULARITY_S = 1.0
STAND_IN = "tp0-echo-stand-in"
#: A stand-in server: "prefix" answers with an error text before the echo, "hold"
#: echoes but never closes its side.
STAND_IN_PROGRAM = """
import socket, sys
mode, port = sys.argv[1], int(sys.argv[2])
listener = socket.create_server(("0.0.0.0", port))
print("stand-in listening", flush=True)
held = []
while True:
    peer, _ = listener.accept()
    line = peer.makefile("rb").readline()
    if mode == "prefix":
        peer.sendall(b"error: unknown command " + line)
        peer.close()
    else:
        peer.sendall(line)
        held.append(peer)
"""


@dataclass
class Verdict:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_validator(script: Path = VALIDATOR_SCRIPT) -> Verdict:
    began = time.monotonic()
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=60)
    return Verdict(done.returncode, done.stdout, done.stderr, time.monotonic() - began)


def configured_port() -> int:
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "lottery_gevent" / "config.ini", encoding="utf-8")
    return parser["DEFAULT"].getint("SERVER_PORT", 12345)


def test_echo_mode_with_five_clients(compose_project: Callable[..., ComposeProject]) -> None:
    project = compose_project()
    project.set_client_config(loop__amount=5, loop__period="100ms")
    project.generate(5, mode="echo")

    project.up()
    codes = project.wait_exit(project.clients(), timeout=120)
    project.stop("server")

    assert codes == {f"client{k}": 0 for k in range(1, 6)}
    assert project.exit_code("server") == 0
    for k in range(1, 6):
        lines = project.logs(f"client{k}")
        config = [fields for _, fields in actions_of(lines, "config")]
        assert (config[0]["loop_amount"], config[0]["loop_period"]) == ("5", "100ms")
        received = [
            fields["msg"] for _, fields in actions_of(lines, "receive_message") if fields["result"] == "success"
        ]
        assert received == [f"[CLIENT {k}] Message N°{n}" for n in range(1, 6)]
        assert [fields["result"] for _, fields in actions_of(lines, "loop_finished")] == ["success"]
        assert not any("result: fail" in line.text for line in lines)
    server = project.logs("server")
    assert len(actions_of(server, "receive_message")) == 25
    assert not any("result: fail" in line.text for line in server)


def test_validator_succeeds_against_the_real_server(compose_project: Callable[..., ComposeProject]) -> None:
    project = compose_project("tp0")
    project.generate(0)
    project.up("--wait")

    verdict = run_validator()

    assert (verdict.code, verdict.stdout) == (0, SUCCESS), verdict.stderr
    echoed = actions_of(project.logs("server"), "receive_message")
    assert [fields["result"] for _, fields in echoed] == ["success"]


def test_validator_retries_while_the_server_starts(compose_project: Callable[..., ComposeProject]) -> None:
    project = compose_project("tp0")
    project.generate(0)
    validator = subprocess.Popen(
        ["sh", str(VALIDATOR_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        project.up()  # the network and the server appear while the validator already retries
        stdout, stderr = validator.communicate(timeout=RETRY_WINDOW_S + SLACK_S)
    finally:
        if validator.poll() is None:
            validator.kill()
            validator.communicate()

    assert (validator.returncode, stdout) == (0, SUCCESS), stderr


def start_stand_in(project: ComposeProject, mode: str) -> None:
    """Create tp0_testing_net and a fake `server` on it, as the project's extras (removed after the test)."""
    project.extra_networks.append(ECHO_NETWORK)
    docker("network", "create", ECHO_NETWORK)
    project.extra_containers.append(STAND_IN)
    docker(
        "run", "-d", "--name", STAND_IN, "--network", ECHO_NETWORK, "--network-alias", "server",
        "--entrypoint", "python3", "client:latest", "-c", STAND_IN_PROGRAM, mode, str(configured_port()),
    )  # fmt: skip
    project.follow(STAND_IN).wait_for_line("stand-in listening", timeout=30)


def test_validator_fails_on_a_different_reply(compose_project: Callable[..., ComposeProject]) -> None:
    project = compose_project()
    start_stand_in(project, "prefix")

    verdict = run_validator()

    assert (verdict.code, verdict.stdout) == (1, FAIL)
    assert verdict.seconds < RETRY_WINDOW_S + SLACK_S


def test_validator_fails_when_the_peer_never_closes(compose_project: Callable[..., ComposeProject]) -> None:
    project = compose_project()
    start_stand_in(project, "hold")

    verdict = run_validator()

    assert (verdict.code, verdict.stdout) == (1, FAIL)
    assert verdict.seconds < RETRY_WINDOW_S + SLACK_S


def test_validator_fails_when_the_server_is_down(compose_project: Callable[..., ComposeProject]) -> None:
    project = compose_project()
    project.extra_networks.append(ECHO_NETWORK)
    docker("network", "create", ECHO_NETWORK)

    verdict = run_validator()

    assert (verdict.code, verdict.stdout) == (1, FAIL)
    assert RETRY_WINDOW_S - SECOND_GRANULARITY_S <= verdict.seconds < RETRY_WINDOW_S + SLACK_S


def test_validator_fails_when_the_network_does_not_exist(compose_project: Callable[..., ComposeProject]) -> None:
    compose_project()  # only for its checks that nothing is left behind
    assert docker("network", "inspect", ECHO_NETWORK, check=False).returncode != 0

    verdict = run_validator()

    assert (verdict.code, verdict.stdout) == (1, FAIL)
    assert RETRY_WINDOW_S - SECOND_GRANULARITY_S <= verdict.seconds < RETRY_WINDOW_S + SLACK_S
