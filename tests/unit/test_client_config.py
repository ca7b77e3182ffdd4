"""client_gevent.config: YAML < CLI_* environment, defaults, Go durations, ConfigError naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_gevent.config import DEFAULT_CONFIG_PATH, ClientConfig, ConfigError, Duration, load_config, parse_duration
from shared.domain import BetFields
from shared.logs import Result, format_action

ENV = {"CLI_ID": "3"}


def yaml_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- Go durations -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("5s", 5.0),
        ("150ms", 0.15),
        ("100ms", 0.1),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("1h2m3.5s", 3723.5),
        ("2m0.5s", 120.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("300us", 300e-6),
        ("300µs", 300e-6),  # U+00B5 MICRO SIGN
        ("300μs", 300e-6),  # U+03BC GREEK SMALL LETTER MU: Go accepts both
        ("7ns", 7e-9),
        ("1s500ms", 1.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    duration = parse_duration(text)
    assert duration.seconds == pytest.approx(seconds)
    assert duration.text == text
    assert str(duration) == text


@pytest.mark.parametrize(
    "text",
    ["", "5", "s", "ms", "5x", "1m30", "5 s", " 5s", "five", "1e3s", ".s", ".", "1.5.5s", "5S", "5sec", "-5s", "1h-2m"],
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- files, defaults, environment ---------------------------------------------------


def test_defaults_when_the_file_sets_nothing(tmp_path: Path) -> None:
    config = load_config(yaml_file(tmp_path, ""), ENV)
    assert config == ClientConfig(client_id=3, bets_file=Path(".data/agency-3.csv"))
    assert config.server_address == "server:12345"
    assert config.batch_max_amount == 125
    assert config.mode == "lottery"
    assert config.single_bet is None


def test_the_committed_file() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, ENV)
    assert config.server_address == "server:12345"
    assert (config.loop_amount, str(config.loop_period), config.log_level) == (5, "5s", "INFO")
    assert config.batch_max_amount == 125


def test_the_default_file_is_read_when_no_path_is_given() -> None:
    assert load_config(None, ENV) == load_config(DEFAULT_CONFIG_PATH, ENV)


def test_file_values(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        "server:\n  address: 127.0.0.1:5000\nloop:\n  amount: 7\n  period: 1m30s\n"
        "log:\n  level: debug\nbatch:\n  maxAmount: 25\n",
    )
    config = load_config(path, ENV)
    assert (config.server_host, config.server_port) == ("127.0.0.1", 5000)
    assert config.loop_amount == 7
    assert config.loop_period == Duration("1m30s", 90.0)
    assert config.log_level == "DEBUG"
    assert config.batch_max_amount == 25


def test_a_file_may_omit_any_key(tmp_path: Path) -> None:
    config = load_config(yaml_file(tmp_path, "loop:\n  amount: 2\n"), ENV)
    assert config.loop_amount == 2
    assert config.loop_period == ClientConfig(client_id=1).loop_period
    assert config.server_address == "server:12345"


def test_environment_overrides_every_key(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "server:\n  address: file:1\nloop:\n  amount: 1\n  period: 1s\n")
    env = {
        "CLI_ID": "12",
        "CLI_SERVER_ADDRESS": "localhost:9999",
        "CLI_LOOP_AMOUNT": "9",
        "CLI_LOOP_PERIOD": "100ms",
        "CLI_LOG_LEVEL": "WARNING",
        "CLI_BATCH_MAXAMOUNT": "33",
        "CLI_CONNECTION_RETRYTIMEOUT": "2s",
        "CLI_CONNECTION_REPLYTIMEOUT": "3s",
        "CLI_MODE": "echo",
        "CLI_BETS_FILE": "/data/mine.csv",
    }
    config = load_config(path, env)
    assert config == ClientConfig(
        client_id=12,
        server_host="localhost",
        server_port=9999,
        loop_amount=9,
        loop_period=Duration("100ms", 0.1),
        log_level="WARNING",
        batch_max_amount=33,
        mode="echo",
        bets_file=Path("/data/mine.csv"),
        retry_timeout=Duration("2s", 2.0),
        reply_timeout=Duration("3s", 3.0),
    )


@pytest.mark.parametrize("period", ["100ms", "1m30s", "150ms", "0"])
def test_the_logged_period_stays_as_configured(tmp_path: Path, period: str) -> None:
    config = load_config(yaml_file(tmp_path, ""), {**ENV, "CLI_LOOP_PERIOD": period})
    line = format_action("config", Result.SUCCESS, loop_period=config.loop_period)
    assert line == f"action: config | result: success | loop_period: {period}"


def test_an_unquoted_yaml_duration_stays_as_written(tmp_path: Path) -> None:
    config = load_config(yaml_file(tmp_path, "loop:\n  period: 1m30s\n"), ENV)
    assert str(config.loop_period) == "1m30s"


def test_the_bets_file_defaults_from_the_id(tmp_path: Path) -> None:
    assert load_config(yaml_file(tmp_path, ""), {"CLI_ID": "4"}).bets_file == Path(".data/agency-4.csv")
    empty = {"CLI_ID": "4", "CLI_BETS_FILE": ""}
    assert load_config(yaml_file(tmp_path, ""), empty).bets_file == Path(".data/agency-4.csv")


def test_single_bet_needs_all_five_variables(tmp_path: Path) -> None:
    bet = {"NOMBRE": "Ana", "APELLIDO": "Lorca", "DOCUMENTO": "1", "NACIMIENTO": "2000-01-01", "NUMERO": "7574"}
    path = yaml_file(tmp_path, "")
    assert load_config(path, {**ENV, **bet}).single_bet == BetFields("Ana", "Lorca", "1", "2000-01-01", "7574")
    del bet["NUMERO"]
    assert load_config(path, {**ENV, **bet}).single_bet is None


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [("server:12345", "server", 12345), ("10.0.0.2:1", "10.0.0.2", 1), ("[::1]:12345", "::1", 12345)],
)
def test_server_address(tmp_path: Path, address: str, host: str, port: int) -> None:
    config = load_config(yaml_file(tmp_path, ""), {**ENV, "CLI_SERVER_ADDRESS": address})
    assert (config.server_host, config.server_port) == (host, port)
    assert config.server_address == address  # logged as configured


# --- errors -------------------------------------------------------------------------


def test_cli_id_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CLI_ID"):
        load_config(yaml_file(tmp_path, ""), {})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CLI_ID", "0"),
        ("CLI_ID", "abc"),
        ("CLI_ID", "4294967296"),
        ("CLI_SERVER_ADDRESS", "server"),
        ("CLI_SERVER_ADDRESS", "server:"),
        ("CLI_SERVER_ADDRESS", ":12345"),
        ("CLI_SERVER_ADDRESS", "server:0"),
        ("CLI_SERVER_ADDRESS", "server:65536"),
        ("CLI_SERVER_ADDRESS", "server:http"),
        ("CLI_LOOP_AMOUNT", "-1"),
        ("CLI_LOOP_AMOUNT", "five"),
        ("CLI_LOOP_AMOUNT", "1.5"),
        ("CLI_LOOP_PERIOD", "5"),
        ("CLI_LOOP_PERIOD", "soon"),
        ("CLI_LOG_LEVEL", "LOUD"),
        ("CLI_BATCH_MAXAMOUNT", "0"),
        ("CLI_BATCH_MAXAMOUNT", "10001"),
        ("CLI_CONNECTION_RETRYTIMEOUT", "30"),
        ("CLI_MODE", "poker"),
    ],
)
def test_a_bad_environment_value_names_its_key(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(yaml_file(tmp_path, ""), {**ENV, key: value})
    assert f"{key}=" in str(caught.value)
    assert caught.value.__cause__ is None or isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize(
    ("yaml", "key"),
    [
        ("loop:\n  amount: many\n", "loop.amount"),
        ("loop:\n  period: 5\n", "loop.period"),
        ("loop:\n  period:\n", "loop.period"),
        ("batch:\n  maxAmount: 0\n", "batch.maxAmount"),
        ("server:\n  address: nowhere\n", "server.address"),
        ("log:\n  level: chatty\n", "log.level"),
    ],
)
def test_a_bad_file_value_names_its_key(tmp_path: Path, yaml: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}="):
        load_config(yaml_file(tmp_path, yaml), ENV)


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("loop:\n  amout: 5\n", "unknown keys"),
        ("- a\n- b\n", "must be a mapping"),
        ("loop: [1, 2\n", "cannot read"),
    ],
)
def test_a_bad_file(tmp_path: Path, yaml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(yaml_file(tmp_path, yaml), ENV)


def test_a_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml", ENV)
