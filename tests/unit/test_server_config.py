"""lottery_gevent.config: config.ini [DEFAULT] < environment, defaults, ConfigError naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lottery_gevent.config import DEFAULT_CONFIG_PATH, KEYS, ConfigError, ServerConfig, load_config


def ini(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.ini"
    path.write_text("[DEFAULT]\n" + body, encoding="utf-8")
    return path


def test_every_key_has_a_default(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, ""), {}) == ServerConfig()
    assert ServerConfig().agencies == 5
    assert ServerConfig().port == 12345


def test_the_committed_file() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, {})
    assert (config.port, config.ip, config.listen_backlog) == (12345, "0.0.0.0", 128)
    assert (config.logging_level, config.agencies) == ("INFO", 5)


def test_the_default_file_is_read_when_no_path_is_given() -> None:
    assert load_config(None, {}) == load_config(DEFAULT_CONFIG_PATH, {})


def test_file_values(tmp_path: Path) -> None:
    path = ini(
        tmp_path,
        "SERVER_PORT = 5000\nSERVER_IP = server\nSERVER_LISTEN_BACKLOG = 7\n"
        "LOGGING_LEVEL = debug\nSERVER_AGENCIES = 3\nSERVER_FSYNC = off\nSERVER_IDLE_TIMEOUT_S = 2.5\n",
    )
    config = load_config(path, {})
    assert config == ServerConfig(
        port=5000, ip="server", listen_backlog=7, logging_level="DEBUG", agencies=3, fsync=False, idle_timeout_s=2.5
    )


def test_a_file_may_omit_any_key(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, "SERVER_AGENCIES = 2\n"), {}) == ServerConfig(agencies=2)


def test_keys_are_case_insensitive_in_the_file(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, "server_port = 1\n"), {}).port == 1


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = ini(tmp_path, "SERVER_PORT = 5000\nSERVER_AGENCIES = 3\n")
    env = {"SERVER_PORT": "6000", "LOGGING_LEVEL": "warning", "SERVER_FSYNC": "false", "UNRELATED": "x"}
    config = load_config(path, env)
    assert (config.port, config.agencies, config.logging_level, config.fsync) == (6000, 3, "WARNING", False)


def test_every_key_can_come_from_the_environment(tmp_path: Path) -> None:
    values = {
        "SERVER_PORT": "1",
        "SERVER_IP": "127.0.0.1",
        "SERVER_LISTEN_BACKLOG": "2",
        "LOGGING_LEVEL": "ERROR",
        "SERVER_AGENCIES": "0",
        "SERVER_MAX_CONNECTIONS": "3",
        "SERVER_IDLE_TIMEOUT_S": "4",
        "SERVER_FRAME_TIMEOUT_S": "5",
        "SERVER_ECHO_MAX_BYTES": "6",
        "SERVER_ECHO_TIMEOUT_S": "7",
        "SERVER_STOP_TIMEOUT_S": "8",
        "SERVER_FSYNC": "0",
    }
    assert set(values) == set(KEYS)
    assert load_config(ini(tmp_path, ""), values) == ServerConfig(
        1, "127.0.0.1", 2, "ERROR", 0, 3, 4, 5, 6, 7, 8, False
    )


def test_zero_agencies_is_valid(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, "SERVER_AGENCIES = 0\n"), {}).agencies == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SERVER_PORT", "http"),
        ("SERVER_PORT", "65536"),
        ("SERVER_PORT", "-1"),
        ("SERVER_PORT", ""),
        ("SERVER_IP", ""),
        ("SERVER_IP", "two words"),
        ("SERVER_LISTEN_BACKLOG", "0"),
        ("LOGGING_LEVEL", "LOUD"),
        ("SERVER_AGENCIES", "-1"),
        ("SERVER_AGENCIES", "five"),
        ("SERVER_AGENCIES", "2.5"),
        ("SERVER_MAX_CONNECTIONS", "0"),
        ("SERVER_IDLE_TIMEOUT_S", "0"),
        ("SERVER_IDLE_TIMEOUT_S", "-1"),
        ("SERVER_FRAME_TIMEOUT_S", "nan"),
        ("SERVER_ECHO_TIMEOUT_S", "inf"),
        ("SERVER_STOP_TIMEOUT_S", "soon"),
        ("SERVER_ECHO_MAX_BYTES", "0"),
        ("SERVER_FSYNC", "maybe"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}=") as caught:
        load_config(ini(tmp_path, ""), {key: value})
    assert caught.value.__cause__ is None  # a clear message, not a chained traceback
    with pytest.raises(ConfigError, match=rf"^{key}="):
        load_config(ini(tmp_path, f"{key} = {value}\n"), {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SERVER_PORT = 1\n", "cannot read"),  # no [DEFAULT] header
        ("[DEFAULT]\nSERVER_PORT\n", "cannot read"),
        ("[DEFAULT]\nSERVER_PROT = 1\n", "unknown config keys.*SERVER_PROT"),
    ],
)
def test_a_bad_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.ini"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path, {})


def test_a_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.ini"):
        load_config(tmp_path / "missing.ini", {})
