"""Bad input on the client side and bad configuration on both sides: clear errors, right exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.processes import ClientProcess, ServerProcess, actions
from tools.generate_agencies import Agency


def test_malformed_row_stops_the_upload_before_that_row(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    (agency,) = make_agencies(1, 300, [0])
    lines = agency.path.read_bytes().split(b"\r\n")
    bad_line = 251
    lines[bad_line - 1] = b"Ana,P\xc3\xa9rez,not-a-dni,1990-01-01,12"
    agency.path.write_bytes(b"\r\n".join(lines))
    server = start_server(agencies=1)

    client = ClientProcess(tmp_path, 1, server.port, agency.path, env={"CLI_BATCH_MAXAMOUNT": "100"})
    assert client.wait(30) == 1
    (failure,) = [fields for fields in client.actions() if fields["result"] == "fail"]
    assert f"{agency.path}:{bad_line}" in failure["error"] and "document" in failure["error"]
    stored = [row[3] for row in server.stored_rows()]
    assert stored == [str(11_000_000 + row) for row in range(200)]  # the two full batches before it


def test_missing_bets_file_is_a_clear_error(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = start_server(agencies=1)
    missing = tmp_path / "nowhere" / "agency-1.csv"
    client = ClientProcess(tmp_path, 1, server.port, missing)
    assert client.wait(30) == 1
    (failure,) = [fields for fields in client.actions() if fields["result"] == "fail"]
    assert str(missing) in failure["error"]


def test_single_bet_from_the_environment(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = start_server(agencies=1)
    env = {
        "NOMBRE": "Santiago Lionel",
        "APELLIDO": "Lorca",
        "DOCUMENTO": "30904465",
        "NACIMIENTO": "1999-03-17",
        "NUMERO": "7574",
    }
    client = ClientProcess(tmp_path, 1, server.port, env=env)
    assert client.wait(30) == 0
    assert client.actions("apuesta_enviada") == [
        {"action": "apuesta_enviada", "result": "success", "dni": "30904465", "numero": "7574"}
    ]
    assert client.actions("consulta_ganadores")[0]["cant_ganadores"] == "1"
    assert server.stored_rows() == [["1", "Santiago Lionel", "Lorca", "30904465", "1999-03-17", "7574"]]


def test_client_gives_up_on_an_absent_server_with_one_fail_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bets = tmp_path / "x.csv"  # valid: the client checks its file before it connects
    bets.write_text("Ana,Lorca,30904465,1999-03-17,7574\n", encoding="utf-8")
    client = ClientProcess(tmp_path, 1, port, bets, env={"CLI_CONNECTION_RETRYTIMEOUT": "1s"})
    assert client.wait(30) == 1
    results = [fields["result"] for fields in client.actions() if fields["action"] != "config"]
    assert results.count("fail") == 1 and results[-1] == "fail"
    assert results.count("in_progress") >= 2


def test_client_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    cases = {
        "CLI_LOOP_PERIOD": ("5 seconds", "CLI_LOOP_PERIOD"),
        "CLI_SERVER_ADDRESS": ("no-port", "CLI_SERVER_ADDRESS"),
        "CLI_BATCH_MAXAMOUNT": ("0", "CLI_BATCH_MAXAMOUNT"),
        "CLI_MODE": ("lotto", "CLI_MODE"),
        "CLI_ID": ("abc", "CLI_ID"),
    }
    for key, (value, named) in cases.items():
        client = ClientProcess(tmp_path, 1, 1, env={key: value})
        assert client.wait(30) == 2, key
        assert named in client.output() and "Traceback" not in client.output()


def test_client_yaml_errors_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("loop:\n  amount: many\n")
    client = ClientProcess(tmp_path, 1, 1, args=["--config", str(config)])
    assert client.wait(30) == 2
    assert "loop.amount" in client.output()
    client = ClientProcess(tmp_path, 1, 1, args=["--config", str(tmp_path / "absent.yaml")])
    assert client.wait(30) == 2
    assert "absent.yaml" in client.output()


def test_server_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    for key, value in {
        "SERVER_PORT": "http",
        "SERVER_AGENCIES": "-1",
        "LOGGING_LEVEL": "LOUD",
        "SERVER_LISTEN_BACKLOG": "0",
    }.items():
        server = ServerProcess(tmp_path, env={key: value})
        assert server.wait(30) == 2, key
        assert key in server.output() and "Traceback" not in server.output()
    config = tmp_path / "config.ini"
    config.write_text("[DEFAULT]\nSERVER_PORTT = 1\n")
    server = ServerProcess(tmp_path, args=["--config", str(config)])
    assert server.wait(30) == 2
    assert "SERVER_PORTT" in server.output()


def test_server_config_file_may_omit_keys(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    config.write_text("[DEFAULT]\nLOGGING_LEVEL = DEBUG\n")
    server = ServerProcess(tmp_path, args=["--config", str(config)], env={"LOGGING_LEVEL": "INFO"})
    server.wait_listening()
    (line,) = actions(server.lines, "config")
    assert line["logging_level"] == "INFO" and line["listen_backlog"] == "128" and line["agencies"] == "5"
    assert server.stop() == 0


def test_help_works(tmp_path: Path) -> None:
    for process in (ServerProcess(tmp_path, args=["--help"]), ClientProcess(tmp_path, 1, 1, args=["--help"])):
        assert process.wait(30) == 0
        assert "--config" in process.output()
