"""lottery_gevent.config: config.ini [DEFAULT] < environment, defaults, ConfigError naming the key; --help."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lottery_gevent.config import DEFAULT_CONFIG_PATH, SETTINGS, ConfigError, ServerConfig, load_config
from shared import config as shared_config
from tests.support.scripts import help_text

REPO_ROOT = Path(__file__).resolve().parents[2]
#: One valid value per key, none of them the default: key -> (text, field, value).
EVERY_KEY: dict[str, tuple[str, str, Any]] = {
    "SERVER_PORT": ("1", "port", 1),
    "SERVER_IP": ("127.0.0.1", "ip", "127.0.0.1"),
    "SERVER_LISTEN_BACKLOG": ("2", "listen_backlog", 2),
    "LOGGING_LEVEL": ("error", "logging_level", "ERROR"),
    "SERVER_AGENCIES": ("0", "agencies", 0),
    "SERVER_MAX_CONNECTIONS": ("3", "max_connections", 3),
    "SERVER_IDLE_TIMEOUT_S": ("4", "idle_timeout_s", 4.0),
    "SERVER_FRAME_TIMEOUT_S": ("5", "frame_timeout_s", 5.0),
    "SERVER_HELLO_TIMEOUT_S": ("0.25", "hello_timeout_s", 0.25),
    "SERVER_MAX_CONNECTIONS_PER_IP": ("0", "max_connections_per_ip", 0),
    "SERVER_MAX_BETS_PER_AGENCY": ("10", "max_bets_per_agency", 10),
    "SERVER_SALES_CLOSE_AT": (
        "2026-12-24T18:00:00-03:00",
        "sales_close_at",
        datetime.datetime(2026, 12, 24, 21, 0, tzinfo=datetime.UTC),
    ),
    "SERVER_STATUS_PORT": ("0", "status_port", 0),
    "SERVER_DATA_DIR": ("/var/lib/lottery", "data_dir", Path("/var/lib/lottery")),
    "SERVER_TLS_CERT": ("/run/secrets/server.pem", "tls_cert", Path("/run/secrets/server.pem")),
    "SERVER_TLS_KEY": ("/run/secrets/server.key", "tls_key", Path("/run/secrets/server.key")),
    "SERVER_TLS_CA": ("/run/secrets/ca.pem", "tls_ca", Path("/run/secrets/ca.pem")),
    "SERVER_TLS_CRL": ("/run/secrets/crl.pem", "tls_crl", Path("/run/secrets/crl.pem")),
}
TLS = {key: text for key, (text, _, _) in EVERY_KEY.items() if key.startswith("SERVER_TLS_") and "CRL" not in key}


def ini(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.ini"
    path.write_text("[DEFAULT]\n" + body, encoding="utf-8")
    return path


def test_every_key_has_a_default(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, ""), {}) == ServerConfig()


def test_the_table_and_the_dataclass_agree() -> None:
    # The table's default texts, parsed, are the dataclass defaults, field for field, each key once.
    fields = ServerConfig.__dataclass_fields__
    assert [row.field for row in SETTINGS] == list(fields)
    assert {row.field: row.parser(row.default or "") for row in SETTINGS} == vars(ServerConfig())
    assert all(row.key == row.env for row in SETTINGS)  # each key is its own environment variable


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
        "LOGGING_LEVEL = debug\nSERVER_AGENCIES = 3\nSERVER_IDLE_TIMEOUT_S = 2.5\n",
    )
    config = load_config(path, {})
    assert config == ServerConfig(
        port=5000, ip="server", listen_backlog=7, logging_level="DEBUG", agencies=3, idle_timeout_s=2.5
    )


def test_a_file_may_omit_any_key(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, "SERVER_AGENCIES = 2\n"), {}) == ServerConfig(agencies=2)


def test_keys_are_case_insensitive_in_the_file(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, "server_port = 1\n"), {}).port == 1


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = ini(tmp_path, "SERVER_PORT = 5000\nSERVER_AGENCIES = 3\nSERVER_MAX_BETS_PER_AGENCY = 2\n")
    env = {"SERVER_PORT": "6000", "LOGGING_LEVEL": "warning", "SERVER_MAX_BETS_PER_AGENCY": "3", "UNRELATED": "x"}
    config = load_config(path, env)
    assert (config.port, config.agencies, config.logging_level, config.max_bets_per_agency) == (6000, 3, "WARNING", 3)


def test_a_removed_setting_in_the_file_is_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config keys in .*: SERVER_FSYNC$"):
        load_config(ini(tmp_path, "SERVER_FSYNC = false\n"), {})


def test_every_key_can_come_from_the_environment(tmp_path: Path) -> None:
    assert set(EVERY_KEY) == {row.key for row in SETTINGS}
    config = load_config(ini(tmp_path, ""), {key: text for key, (text, _, _) in EVERY_KEY.items()})
    assert config == ServerConfig(**{field: value for _, field, value in EVERY_KEY.values()})
    assert config.tls_enabled


def test_every_key_can_come_from_the_file(tmp_path: Path) -> None:
    body = "".join(f"{key} = {text}\n" for key, (text, _, _) in EVERY_KEY.items())
    config = load_config(ini(tmp_path, body), {})
    assert config == ServerConfig(**{field: value for _, field, value in EVERY_KEY.values()})


@pytest.mark.parametrize("key", [key for key in EVERY_KEY if not key.startswith("SERVER_TLS_")])
def test_each_key_alone_from_the_environment(tmp_path: Path, key: str) -> None:
    text, field, value = EVERY_KEY[key]
    assert getattr(load_config(ini(tmp_path, ""), {key: text}), field) == value


def test_zero_agencies_is_valid(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, "SERVER_AGENCIES = 0\n"), {}).agencies == 0


def test_port_zero_means_any_free_port(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, ""), {"SERVER_PORT": "0"}).port == 0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SERVER_PORT", "http", "SERVER_PORT: port must be a whole number, got 'http'"),
        ("SERVER_PORT", "99999", "SERVER_PORT: port 99999 is out of range 0..65535"),
        ("SERVER_PORT", "65536", "SERVER_PORT: port 65536 is out of range 0..65535"),
        ("SERVER_PORT", "-1", "SERVER_PORT: port -1 is out of range 0..65535"),
        ("SERVER_PORT", "", "SERVER_PORT: port must be a whole number, got ''"),
        ("SERVER_IP", "", "SERVER_IP must be an address or hostname, got ''"),
        ("SERVER_IP", "two words", "SERVER_IP must be an address or hostname, got 'two words'"),
        ("SERVER_LISTEN_BACKLOG", "0", "SERVER_LISTEN_BACKLOG must be at least 1, got 0"),
        ("LOGGING_LEVEL", "LOUD", "LOGGING_LEVEL must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG, got 'LOUD'"),
        ("SERVER_AGENCIES", "-1", "SERVER_AGENCIES must be at least 0, got -1"),
        ("SERVER_AGENCIES", "five", "SERVER_AGENCIES must be a whole number, got 'five'"),
        ("SERVER_AGENCIES", "2.5", "SERVER_AGENCIES must be a whole number, got '2.5'"),
        ("SERVER_MAX_CONNECTIONS", "0", "SERVER_MAX_CONNECTIONS must be at least 1, got 0"),
        ("SERVER_IDLE_TIMEOUT_S", "0", "SERVER_IDLE_TIMEOUT_S must be a positive number of seconds, got '0'"),
        ("SERVER_IDLE_TIMEOUT_S", "-1", "SERVER_IDLE_TIMEOUT_S must be a positive number of seconds, got '-1'"),
        ("SERVER_FRAME_TIMEOUT_S", "nan", "SERVER_FRAME_TIMEOUT_S must be a positive number of seconds, got 'nan'"),
        ("SERVER_HELLO_TIMEOUT_S", "0", "SERVER_HELLO_TIMEOUT_S must be a positive number of seconds, got '0'"),
        ("SERVER_HELLO_TIMEOUT_S", "5s", "SERVER_HELLO_TIMEOUT_S must be a positive number of seconds, got '5s'"),
        ("SERVER_MAX_CONNECTIONS_PER_IP", "-1", "SERVER_MAX_CONNECTIONS_PER_IP must be at least 0, got -1"),
        ("SERVER_MAX_BETS_PER_AGENCY", "0", "SERVER_MAX_BETS_PER_AGENCY must be at least 1, got 0"),
        ("SERVER_MAX_BETS_PER_AGENCY", "1e6", "SERVER_MAX_BETS_PER_AGENCY must be a whole number, got '1e6'"),
        ("SERVER_DATA_DIR", "", "SERVER_DATA_DIR must be a path, got ''"),
        ("SERVER_STATUS_PORT", "65536", "SERVER_STATUS_PORT: port 65536 is out of range 0..65535"),
        (
            "SERVER_SALES_CLOSE_AT",
            "2026-12-24T18:00:00",
            "SERVER_SALES_CLOSE_AT must be an ISO 8601 time with a UTC offset, like 2026-12-24T18:00:00-03:00, "
            "got '2026-12-24T18:00:00'",
        ),
        (
            "SERVER_SALES_CLOSE_AT",
            "tomorrow",
            "SERVER_SALES_CLOSE_AT must be an ISO 8601 time with a UTC offset, like 2026-12-24T18:00:00-03:00, "
            "got 'tomorrow'",
        ),
    ],
)
def test_a_bad_value_names_its_key(tmp_path: Path, key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(ini(tmp_path, ""), {key: value})
    assert str(caught.value) == message
    assert caught.value.__cause__ is None  # a clear message, not a chained traceback
    with pytest.raises(ConfigError, match=rf"^{key}[ :]"):
        load_config(ini(tmp_path, f"{key} = {value}\n"), {})


def test_values_are_stripped(tmp_path: Path) -> None:
    assert load_config(ini(tmp_path, ""), {"SERVER_AGENCIES": " 4 "}).agencies == 4


# --- TLS: all three paths or none --------------------------------------------------------


def test_tls_all_three(tmp_path: Path) -> None:
    config = load_config(ini(tmp_path, ""), TLS)
    assert config.tls_enabled
    assert config.tls_ca == Path("/run/secrets/ca.pem")


@pytest.mark.parametrize("left_out", sorted(TLS))
def test_tls_missing_one_names_it(tmp_path: Path, left_out: str) -> None:
    env = {key: text for key, text in TLS.items() if key != left_out}
    with pytest.raises(ConfigError, match=rf"TLS needs .* together, or none of them: missing {left_out}$"):
        load_config(ini(tmp_path, ""), env)


def test_tls_one_of_three_names_both_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(ini(tmp_path, ""), {"SERVER_TLS_CERT": "/c.pem"})
    assert str(caught.value) == (
        "TLS needs SERVER_TLS_CERT, SERVER_TLS_KEY and SERVER_TLS_CA together, or none of them: "
        "missing SERVER_TLS_KEY, SERVER_TLS_CA"
    )


def test_tls_an_empty_value_is_unset(tmp_path: Path) -> None:
    assert not load_config(ini(tmp_path, "SERVER_TLS_CERT =\n"), {"SERVER_TLS_CA": ""}).tls_enabled
    with pytest.raises(ConfigError, match="missing SERVER_TLS_CA"):
        load_config(ini(tmp_path, ""), {**TLS, "SERVER_TLS_CA": ""})


def test_tls_the_file_and_the_environment_combine(tmp_path: Path) -> None:
    path = ini(tmp_path, "SERVER_TLS_CERT = /c.pem\nSERVER_TLS_KEY = /k.pem\n")
    assert load_config(path, {"SERVER_TLS_CA": "/ca.pem"}).tls_enabled


def test_tls_partly_set_in_code_is_refused() -> None:
    with pytest.raises(ConfigError, match="missing SERVER_TLS_KEY"):
        ServerConfig(tls_cert=Path("c"), tls_ca=Path("ca"))


# --- files ----------------------------------------------------------------------------


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


# --- the shared parsers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "text", "message"),
    [
        (shared_config.port, "99999", ": port 99999 is out of range 1..65535"),
        (shared_config.port, "0", ": port 0 is out of range 1..65535"),
        (shared_config.listen_port, "99999", ": port 99999 is out of range 0..65535"),
        (shared_config.int_in(1, 65535), "99999", ": 99999 is out of range 1..65535"),
        (shared_config.int_in(1), "abc", " must be a whole number, got 'abc'"),
        (shared_config.int_in(1), "١", " must be a whole number, got '١'"),  # no Unicode digits
        (shared_config.host_port, "127.0.0.1:99999", ": port 99999 is out of range 1..65535"),
        (shared_config.host_port, "server", " must be host:port (IPv6 as [::1]:12345), got 'server'"),
        (shared_config.host_port, "::1:80", " must be host:port (IPv6 as [::1]:12345), got '::1:80'"),
        (shared_config.host_port, "server:http", ": port must be a whole number, got 'http'"),
    ],
)
def test_parser_messages(parser: Callable[[str], object], text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parser(text)
    assert str(caught.value) == message


def test_optional_path() -> None:
    assert shared_config.optional_path("") is None
    assert shared_config.optional_path("a/b") == Path("a/b")


# --- --help ----------------------------------------------------------------------------------


def test_help_lists_every_setting() -> None:
    lines = help_text("lottery_gevent")
    for row in SETTINGS:
        (line,) = [line for line in lines if line.split()[:1] == [row.key]]
        assert line.split()[1] == f"[{row.default or '(none)'}]", line
    assert any("--config" in line for line in lines)


PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqSECRET\n-----END PRIVATE KEY-----\n"


def test_pem_text_in_the_key_setting_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(ini(tmp_path, ""), {**TLS, "SERVER_TLS_KEY": PEM_KEY})
    assert "SERVER_TLS_KEY holds PEM text, not a path" in str(caught.value)
    assert "SECRET" not in str(caught.value) and "BEGIN" not in str(caught.value)


def test_a_revocation_list_needs_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SERVER_TLS_CRL needs TLS on"):
        load_config(ini(tmp_path, ""), {"SERVER_TLS_CRL": "/run/secrets/crl.pem"})
