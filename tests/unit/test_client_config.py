"""client_gevent.config: YAML < CLI_* environment, defaults, Go durations, ConfigError naming the key; --help."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_gevent.config import (
    DEFAULT_CONFIG_PATH,
    SETTINGS,
    SINGLE_BET_VARIABLES,
    ClientConfig,
    load_config,
)
from shared.config import Duration, go_duration
from shared.domain import BetFields
from shared.errors import ConfigError
from shared.logs import Result, format_action
from tests.support.scripts import help_text

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV = {"CLI_ID": "3"}
TLS = {"CLI_TLS_CA": "/run/secrets/ca.pem", "CLI_TLS_CERT": "/run/secrets/a.pem", "CLI_TLS_KEY": "/run/secrets/a.key"}


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
    duration = go_duration(text)
    assert duration.seconds == pytest.approx(seconds)
    assert duration.text == text
    assert str(duration) == text


@pytest.mark.parametrize(
    "text",
    ["", "5", "s", "ms", "5x", "1m30", "5 s", " 5s", "five", "1e3s", ".s", ".", "1.5.5s", "5S", "5sec", "-5s", "1h-2m"],
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match=rf"^ must be a duration such as 150ms, 5s or 1m30s, got {text!r}$"):
        go_duration(text)


# --- files, defaults, environment ---------------------------------------------------


def test_defaults_when_the_file_sets_nothing(tmp_path: Path) -> None:
    config = load_config(yaml_file(tmp_path, ""), ENV)
    assert config == ClientConfig(client_id=3, bets_file=Path(".data/agency-3.csv"))
    assert config.server_address == "server:12345"
    assert config.batch_max_amount == 125
    assert config.mode == "lottery"
    assert config.single_bet is None
    assert (config.tls_ca, config.tls_cert, config.tls_key, config.tls_enabled) == (None, None, None, False)
    assert config.allow_empty is False


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
        **TLS,
    }
    assert set(env) == {row.env for row in SETTINGS}
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
        tls_ca=Path("/run/secrets/ca.pem"),
        tls_cert=Path("/run/secrets/a.pem"),
        tls_key=Path("/run/secrets/a.key"),
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
    with pytest.raises(ConfigError, match=r"^CLI_ID is not set: it must be this agency's id \(1, 2, ...\)$"):
        load_config(yaml_file(tmp_path, ""), {})


def test_the_exact_messages_of_the_issue(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(yaml_file(tmp_path, ""), {"CLI_ID": "abc"})
    assert str(caught.value) == "CLI_ID must be a whole number, got 'abc'"
    with pytest.raises(ConfigError) as caught:
        load_config(yaml_file(tmp_path, ""), {**ENV, "CLI_SERVER_ADDRESS": "127.0.0.1:99999"})
    assert str(caught.value) == "CLI_SERVER_ADDRESS: port 99999 is out of range 1..65535"
    assert "port 99999 is out of range 1..65535" in str(caught.value)  # not "must be host:port"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("CLI_ID", "0", "CLI_ID: 0 is out of range 1..4294967295"),
        ("CLI_ID", "abc", "CLI_ID must be a whole number, got 'abc'"),
        ("CLI_ID", "", "CLI_ID must be a whole number, got ''"),
        ("CLI_ID", "4294967296", "CLI_ID: 4294967296 is out of range 1..4294967295"),
        ("CLI_SERVER_ADDRESS", "server", "CLI_SERVER_ADDRESS must be host:port (IPv6 as [::1]:12345), got 'server'"),
        ("CLI_SERVER_ADDRESS", "server:", "CLI_SERVER_ADDRESS must be host:port (IPv6 as [::1]:12345), got 'server:'"),
        ("CLI_SERVER_ADDRESS", ":12345", "CLI_SERVER_ADDRESS must be host:port (IPv6 as [::1]:12345), got ':12345'"),
        (
            "CLI_SERVER_ADDRESS",
            "::1:12345",
            "CLI_SERVER_ADDRESS must be host:port (IPv6 as [::1]:12345), got '::1:12345'",
        ),
        ("CLI_SERVER_ADDRESS", "a b:1", "CLI_SERVER_ADDRESS must be host:port with no spaces, got 'a b:1'"),
        ("CLI_SERVER_ADDRESS", "server:0", "CLI_SERVER_ADDRESS: port 0 is out of range 1..65535"),
        ("CLI_SERVER_ADDRESS", "server:65536", "CLI_SERVER_ADDRESS: port 65536 is out of range 1..65535"),
        ("CLI_SERVER_ADDRESS", "server:http", "CLI_SERVER_ADDRESS: port must be a whole number, got 'http'"),
        ("CLI_LOOP_AMOUNT", "-1", "CLI_LOOP_AMOUNT: -1 is out of range 0..1000000000"),
        ("CLI_LOOP_AMOUNT", "five", "CLI_LOOP_AMOUNT must be a whole number, got 'five'"),
        ("CLI_LOOP_AMOUNT", "1.5", "CLI_LOOP_AMOUNT must be a whole number, got '1.5'"),
        ("CLI_LOOP_PERIOD", "5", "CLI_LOOP_PERIOD must be a duration such as 150ms, 5s or 1m30s, got '5'"),
        ("CLI_LOOP_PERIOD", "soon", "CLI_LOOP_PERIOD must be a duration such as 150ms, 5s or 1m30s, got 'soon'"),
        ("CLI_LOG_LEVEL", "LOUD", "CLI_LOG_LEVEL must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG, got 'LOUD'"),
        ("CLI_BATCH_MAXAMOUNT", "0", "CLI_BATCH_MAXAMOUNT: 0 is out of range 1..10000"),
        ("CLI_BATCH_MAXAMOUNT", "10001", "CLI_BATCH_MAXAMOUNT: 10001 is out of range 1..10000"),
        (
            "CLI_CONNECTION_RETRYTIMEOUT",
            "30",
            "CLI_CONNECTION_RETRYTIMEOUT must be a duration such as 150ms, 5s or 1m30s, got '30'",
        ),
        (
            "CLI_CONNECTION_REPLYTIMEOUT",
            "-1s",
            "CLI_CONNECTION_REPLYTIMEOUT must be a duration such as 150ms, 5s or 1m30s, got '-1s'",
        ),
        ("CLI_MODE", "poker", "CLI_MODE must be one of lottery, echo, got 'poker'"),
    ],
)
def test_a_bad_environment_value_names_its_key(tmp_path: Path, key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(yaml_file(tmp_path, ""), {**ENV, key: value})
    assert str(caught.value) == message
    assert caught.value.__cause__ is None  # a clear message, not a chained traceback


@pytest.mark.parametrize(
    ("yaml", "key"),
    [
        ("loop:\n  amount: many\n", "loop.amount"),
        ("loop:\n  period: 5\n", "loop.period"),
        ("loop:\n  period:\n", "loop.period"),
        ("batch:\n  maxAmount: 0\n", "batch.maxAmount"),
        ("server:\n  address: nowhere\n", "server.address"),
        ("log:\n  level: chatty\n", "log.level"),
        ("connection:\n  replyTimeout: 1\n", "connection.replyTimeout"),
    ],
)
def test_a_bad_file_value_names_its_key(tmp_path: Path, yaml: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}[ :]"):
        load_config(yaml_file(tmp_path, yaml), ENV)


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("loop:\n  amout: 5\n", "unknown config keys.*loop.amout"),
        ("CLI_ID: 3\n", "unknown config keys.*CLI_ID"),  # environment-only settings are not file keys
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


# --- TLS, --allow-empty -----------------------------------------------------------------


def test_tls_from_the_environment(tmp_path: Path) -> None:
    config = load_config(yaml_file(tmp_path, ""), {**ENV, **TLS})
    assert config.tls_enabled
    assert (config.tls_ca, config.tls_cert, config.tls_key) == (
        Path("/run/secrets/ca.pem"),
        Path("/run/secrets/a.pem"),
        Path("/run/secrets/a.key"),
    )


def test_tls_from_the_file_and_the_environment_over_it(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "tls:\n  ca: ca.pem\n  cert: a.pem\n  key: a.key\n")
    config = load_config(path, ENV)
    assert (config.tls_ca, config.tls_cert, config.tls_key) == (Path("ca.pem"), Path("a.pem"), Path("a.key"))
    assert load_config(path, {**ENV, "CLI_TLS_KEY": "/other.key"}).tls_key == Path("/other.key")


@pytest.mark.parametrize("left_out", sorted(TLS))
def test_tls_all_three_or_none(tmp_path: Path, left_out: str) -> None:
    env = {**ENV, **{key: text for key, text in TLS.items() if key != left_out}}
    with pytest.raises(
        ConfigError, match=rf"^TLS needs .* together, or none of them: missing tls\.\w+ \({left_out}\)$"
    ):
        load_config(yaml_file(tmp_path, ""), env)


def test_tls_empty_values_are_unset(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "tls:\n  ca:\n  cert: ''\n")
    assert not load_config(path, {**ENV, "CLI_TLS_KEY": ""}).tls_enabled


def test_tls_partly_set_in_code_is_refused() -> None:
    with pytest.raises(ConfigError, match="missing tls.key"):
        ClientConfig(client_id=1, tls_ca=Path("ca"), tls_cert=Path("c"))


def test_allow_empty_is_passed_through(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "")
    assert load_config(path, ENV, allow_empty=True).allow_empty is True
    assert load_config(path, ENV).allow_empty is False


# --- the config log line ----------------------------------------------------------------


def test_the_lottery_config_line_names_mode_and_bets_file(tmp_path: Path) -> None:
    config = load_config(yaml_file(tmp_path, ""), {**ENV, **TLS, "CLI_BETS_FILE": "/data/a.csv"})
    line = format_action("config", Result.SUCCESS, **config.log_fields())
    assert line == (
        "action: config | result: success | client_id: 3 | server_address: server:12345 | mode: lottery"
        " | bets_file: /data/a.csv | batch_max_amount: 125 | log_level: INFO | tls: on"
    )


def test_the_echo_config_line_names_mode_and_the_loop(tmp_path: Path) -> None:
    config = load_config(yaml_file(tmp_path, ""), {**ENV, **TLS, "CLI_MODE": "echo", "CLI_LOOP_PERIOD": "10ms"})
    line = format_action("config", Result.SUCCESS, **config.log_fields())
    assert line == (
        "action: config | result: success | client_id: 3 | server_address: server:12345 | mode: echo"
        " | loop_amount: 5 | loop_period: 10ms | log_level: INFO | tls: off"  # the echo stays plaintext
    )


def test_the_config_line_of_a_single_bet(tmp_path: Path) -> None:
    bet = dict(zip(SINGLE_BET_VARIABLES, ("Ana", "Lorca", "1", "2000-01-01", "7574"), strict=True))
    fields = load_config(yaml_file(tmp_path, ""), {**ENV, **bet}).log_fields()
    assert fields["bets_file"] == "single bet (NOMBRE..NUMERO)"
    assert fields["tls"] == "off"


# --- the table and --help ---------------------------------------------------------------


def test_the_table_and_the_dataclass_agree() -> None:
    # Parsed, the table's defaults are the dataclass defaults (the address row sets host and port).
    defaults = {row.field: row.parser(row.default) for row in SETTINGS if row.default}
    defaults["server_host"], defaults["server_port"] = defaults.pop("server_address")
    config = ClientConfig(client_id=1)
    assert all(getattr(config, field) == value for field, value in defaults.items())
    fields = {row.field for row in SETTINGS} - {"server_address"} | {"server_host", "server_port"}
    assert set(ClientConfig.__dataclass_fields__) - fields == {"single_bet", "allow_empty"}
    assert len({row.env for row in SETTINGS}) == len(SETTINGS)


def test_help_lists_every_setting() -> None:
    lines = help_text("client_gevent")
    for row in SETTINGS:
        (line,) = [line for line in lines if row.env in line.split()[1:2]]
        default = "(required)" if row.default is None else row.default or "(none)"
        assert line.split()[:3] == [row.key or "-", row.env, f"[{default}]"], line
    text = "\n".join(lines)
    assert "--allow-empty" in text and "--config" in text
    assert all(name in text for name in SINGLE_BET_VARIABLES)
