"""docker/healthcheck.py, the server container's probe, run here as a plain process (no Docker).

It must probe the address the server really listens on (config.ini, overridden by
the environment, with a wildcard address meaning loopback), and it must add no INFO
line to the server's log: it connects and closes without sending anything.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.processes import REPO_ROOT
from tests.support.scripts import HEALTHCHECK
from tests.support.wire import read_line, read_to_eof

PROBE = HEALTHCHECK


def probe(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env}
    return subprocess.run([sys.executable, str(PROBE)], env=full_env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("server_ip", ["0.0.0.0", "127.0.0.1"])
def test_probe_connects_to_the_configured_address_and_sends_nothing(server_ip: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        port = listener.getsockname()[1]

        done = probe({"SERVER_IP": server_ip, "SERVER_PORT": str(port)})

        assert done.returncode == 0, done.stderr
        peer, _ = listener.accept()
        with peer:
            peer.settimeout(10)
            assert read_to_eof(peer) == b""  # closed without sending a byte


def test_probe_fails_when_nothing_listens() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    done = probe({"SERVER_IP": "0.0.0.0", "SERVER_PORT": str(port)})

    assert done.returncode == 1
    assert str(port) in done.stderr


def test_probe_fails_on_a_bad_config() -> None:
    done = probe({"SERVER_PORT": "not-a-port"})

    assert done.returncode == 1
    assert "SERVER_PORT" in done.stderr


def test_probe_adds_no_info_line_to_the_server_log(tmp_path: Path) -> None:
    server = processes.ServerProcess(tmp_path, agencies=0, env={"SERVER_IP": "0.0.0.0"}).wait_listening()

    done = probe({"SERVER_PORT": str(server.port)})
    assert done.returncode == 0, done.stderr
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as marker:
        marker.sendall(b"marker\n")
        assert read_line(marker) == b"marker\n"
    server.wait_for_line(r"action: receive_message \| result: success .*msg: marker")
    assert server.stop() == 0

    after_listen = server.lines[next(i for i, line in enumerate(server.lines) if "action: listen" in line) + 1 :]
    connection_lines = [line for line in after_listen if "receive_message" in line or "close_connection" in line]
    assert len(connection_lines) == 1, server.output()
    assert "result: fail" not in server.output()
