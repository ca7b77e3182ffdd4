"""Config without rebuilding (issue 3, test 6).

Both config files are bind-mounted, never baked into the images: after editing
them, `docker compose down` and `up` run the same images with the new values, as
the `action: config` lines show. The server moves to another port, so this also
checks that the healthcheck and validar-echo-server.sh follow config.ini.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.docker.compose import ComposeProject, actions_of, docker
from tests.support.scripts import VALIDATOR_SCRIPT

pytestmark = pytest.mark.docker

RUN_TIMEOUT_S = 120.0
IMAGE_OF = {"server": "server:latest", "client1": "client:latest", "client2": "client:latest"}


def config_lines(project: ComposeProject) -> dict[str, dict[str, str]]:
    """Each container's (last) `action: config` fields."""
    found = {}
    for name in ["server", *project.clients()]:
        configs = [fields for _, fields in actions_of(project.logs(name), "config")]
        assert configs, f"{name} logged no config line"
        found[name] = configs[-1]
    return found


def run_once(project: ComposeProject) -> dict[str, dict[str, str]]:
    project.up()
    assert project.wait_exit(project.clients(), timeout=RUN_TIMEOUT_S) == {"client1": 0, "client2": 0}
    return config_lines(project)


def test_edited_config_takes_effect_without_rebuilding(
    compose_project: Callable[..., ComposeProject], images: dict[str, str]
) -> None:
    project = compose_project("tp0")  # validar-echo-server.sh needs tp0_testing_net
    project.set_server_config(SERVER_PORT="12345", LOGGING_LEVEL="INFO")
    project.set_client_config(server__address="server:12345", loop__amount=1, loop__period="10ms")
    project.generate(2, mode="echo")

    before = run_once(project)
    assert (before["server"]["port"], before["server"]["logging_level"]) == ("12345", "INFO")
    assert (before["client1"]["loop_amount"], before["client1"]["loop_period"]) == ("1", "10ms")
    project.compose("stop", "-t", "1")  # as `make docker-compose-down` does
    project.compose("down")

    project.set_server_config(SERVER_PORT="12399", SERVER_LISTEN_BACKLOG="64", LOGGING_LEVEL="DEBUG")
    project.set_client_config(server__address="server:12399", loop__amount=3, loop__period="20ms", log__level="DEBUG")
    after = run_once(project)

    server = after["server"]
    assert (server["port"], server["listen_backlog"], server["logging_level"]) == ("12399", "64", "DEBUG")
    for name in ("client1", "client2"):
        client = after[name]
        assert (client["server_address"], client["loop_amount"], client["loop_period"], client["log_level"]) == (
            "server:12399", "3", "20ms", "DEBUG",
        )  # fmt: skip
        assert len(actions_of(project.logs(name), "receive_message")) == 3
    # The containers run the very images the session built: nothing was rebuilt.
    used = {name: docker("inspect", "-f", "{{.Image}}", name).stdout.strip() for name in IMAGE_OF}
    assert used == {name: images[tag] for name, tag in IMAGE_OF.items()}
    assert {tag: docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip() for tag in images} == images

    # The validator reads the port from the (edited) config.ini beside it.
    validator = project.directory / VALIDATOR_SCRIPT.name
    shutil.copyfile(VALIDATOR_SCRIPT, validator)
    done = subprocess.run(["sh", str(validator)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "action: test_echo_server | result: success\n"), done.stderr
