"""The inline echo (health checks) and the client's echo mode."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from tests.rawclient import RawPeer
from tests.support.processes import ClientProcess, ServerProcess
from tests.support.wire import read_to_eof


def _echo(port: int, payload: bytes, half_close: bool = False) -> bytes:
    with RawPeer(port) as peer:
        peer.send_bytes(payload)
        if half_close:
            peer.sock.shutdown(socket.SHUT_WR)
        return read_to_eof(peer.sock)


def test_inline_echo_returns_the_line_unchanged_and_logs_it(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(agencies=0)
    assert _echo(server.port, "hola | señor\n".encode()) == "hola | señor\n".encode()
    line = server.wait_for_line(r"action: receive_message \| result: success")
    assert line.endswith("| ip: 127.0.0.1 | msg: hola %7C señor")
    # netcat style: no newline, input closed.
    assert _echo(server.port, b"no newline", half_close=True) == b"no newline"
    server.wait_for_line(r"msg: no newline$")


def test_health_probe_adds_no_info_line(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(agencies=0)
    before = len(server.lines)
    socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    assert _echo(server.port, b"after probe\n") == b"after probe\n"
    server.wait_for_line(r"msg: after probe$")
    assert len(server.lines) == before + 1


def test_inline_echo_is_bounded(start_server: Callable[..., ServerProcess]) -> None:
    constants = {"lottery_gevent.echo.ECHO_MAX_BYTES": 16, "lottery_gevent.echo.ECHO_TIMEOUT_S": 0.5}
    server = start_server(agencies=0, constants=constants)
    assert _echo(server.port, b"x" * 40 + b"\n") == b""
    server.wait_for_line(r"action: receive_message \| result: fail .*longer than 16 bytes")
    # A peer that never finishes its line is cut off by the timeout, quietly (DEBUG only).
    with RawPeer(server.port) as peer:
        peer.send_bytes(b"partial")
        assert read_to_eof(peer.sock) == b""
    assert _echo(server.port, b"still up\n") == b"still up\n"
    assert sum("result: fail" in line for line in server.lines) == 1


def test_echo_mode_client(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = start_server(agencies=0)
    env = {"CLI_MODE": "echo", "CLI_LOOP_AMOUNT": "3", "CLI_LOOP_PERIOD": "10ms"}
    client = ClientProcess(tmp_path, 7, server.port, env=env)
    assert client.wait(30) == 0
    messages = [fields["msg"] for fields in client.actions("receive_message")]
    assert messages == [f"[CLIENT 7] Message N°{k}" for k in (1, 2, 3)]
    assert client.actions("loop_finished") == [{"action": "loop_finished", "result": "success", "client_id": "7"}]
    assert client.actions("config")[0]["loop_period"] == "10ms"
    assert len(server.actions("receive_message")) == 3
