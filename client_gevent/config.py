# Strategy: read configuration at the edge, once. `load_config` merges the
# environment (CLI_*) over config.yaml over built-in defaults, checks every
# value, and returns a frozen ClientConfig. Nothing else in the client reads
# files or os.environ. SETTINGS is the one table (YAML key, environment
# variable, field, parser, default, help); `--help` prints it. Three settings
# come from the environment only (CLI_ID, CLI_MODE, CLI_BETS_FILE), as the
# course's tools expect; NOMBRE..NUMERO together make a single bet. Durations
# are Go duration strings ("150ms", "1m30s"), kept as written for the log and
# parsed to seconds for use.
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from shared.config import (
    ConfigError,
    Duration,
    Setting,
    go_duration,
    host_port,
    int_in,
    log_level,
    merge_settings,
    one_of,
    optional_path,
    parse_duration,
    require_together,
)
from shared.domain import BetFields

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "MODES",
    "SETTINGS",
    "SINGLE_BET_VARIABLES",
    "TLS_SETTINGS",
    "ClientConfig",
    "ConfigError",
    "Duration",
    "load_config",
    "parse_duration",
]

#: Used when --config is not given.
DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.yaml")
MODES = ("lottery", "echo")
#: Environment variables that, all set, make the client send this one bet.
SINGLE_BET_VARIABLES = ("NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO")
MAX_AGENCY_ID = 2**32 - 1


@dataclass(frozen=True)
class ClientConfig:
    """Every client setting; SETTINGS names each one's key, variable, default and meaning."""

    client_id: int
    server_host: str = "server"
    server_port: int = 12345
    loop_amount: int = 5
    loop_period: Duration = Duration("5s", 5.0)
    log_level: str = "INFO"
    batch_max_amount: int = 125
    mode: str = "lottery"
    #: Default: .data/agency-{client_id}.csv.
    bets_file: Path = Path(".data/agency-1.csv")
    #: NOMBRE..NUMERO: send this single bet instead of the file.
    single_bet: BetFields | None = None
    retry_timeout: Duration = Duration("30s", 30.0)
    #: The winners reply excepted: it waits for every agency.
    reply_timeout: Duration = Duration("30s", 30.0)
    #: While the winners query waits for the draw, log `wait_draw` this often.
    wait_log: Duration = Duration("5s", 5.0)
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: --allow-empty: an empty bets file is not an error.
    allow_empty: bool = False

    def __post_init__(self) -> None:
        require_together(TLS_SETTINGS, {row.field: getattr(self, row.field) for row in TLS_SETTINGS}, "TLS")

    @property
    def server_address(self) -> str:
        host = f"[{self.server_host}]" if ":" in self.server_host else self.server_host
        return f"{host}:{self.server_port}"

    @property
    def tls_enabled(self) -> bool:
        """True when the lottery connection uses TLS (echo mode stays plaintext)."""
        return self.tls_ca is not None

    def log_fields(self) -> dict[str, object]:
        """The fields of the `config` log line: what this mode actually uses."""
        shown: dict[str, object] = {
            "client_id": self.client_id,
            "server_address": self.server_address,
            "mode": self.mode,
        }
        if self.mode == "echo":
            shown.update(loop_amount=self.loop_amount, loop_period=self.loop_period)
        else:
            bets = f"single bet ({SINGLE_BET_VARIABLES[0]}..{SINGLE_BET_VARIABLES[-1]})"
            shown.update(bets_file=bets if self.single_bet else self.bets_file, batch_max_amount=self.batch_max_amount)
        shown.update(log_level=self.log_level, tls="on" if self.tls_enabled and self.mode == "lottery" else "off")
        return shown


#: TLS: all three or none.
TLS_SETTINGS = (
    Setting("tls.ca", "CLI_TLS_CA", "tls_ca", optional_path, "", "the contest CA (PEM) that signs the server"),
    Setting("tls.cert", "CLI_TLS_CERT", "tls_cert", optional_path, "", "this agency's certificate (PEM)"),
    Setting(
        "tls.key",
        "CLI_TLS_KEY",
        "tls_key",
        optional_path,
        "",
        "its private key (PEM); with all three set, lottery mode speaks TLS and checks the server",
    ),
)

#: Every client setting. The `server_address` row yields (host, port); see load_config.
SETTINGS: tuple[Setting, ...] = (
    Setting(None, "CLI_ID", "client_id", int_in(1, MAX_AGENCY_ID), None, "this agency's id (1, 2, ...)"),
    Setting(None, "CLI_MODE", "mode", one_of(MODES), "lottery", "lottery (upload bets, ask for winners) or echo"),
    Setting(
        None,
        "CLI_BETS_FILE",
        "bets_file",
        optional_path,
        "",
        "the agency's CSV file (empty: .data/agency-<CLI_ID>.csv)",
    ),
    Setting("server.address", "CLI_SERVER_ADDRESS", "server_address", host_port, "server:12345", "host:port"),
    Setting("loop.amount", "CLI_LOOP_AMOUNT", "loop_amount", int_in(0, 10**9), "5", "echo mode: messages to send"),
    Setting("loop.period", "CLI_LOOP_PERIOD", "loop_period", go_duration, "5s", "echo mode: pause between messages"),
    Setting("log.level", "CLI_LOG_LEVEL", "log_level", log_level, "INFO", "CRITICAL, ERROR, WARNING, INFO or DEBUG"),
    Setting(
        "batch.maxAmount", "CLI_BATCH_MAXAMOUNT", "batch_max_amount", int_in(1, 10_000), "125", "most bets per batch"
    ),
    Setting(
        "connection.retryTimeout",
        "CLI_CONNECTION_RETRYTIMEOUT",
        "retry_timeout",
        go_duration,
        "30s",
        "give up after failing to reach the server for this long",
    ),
    Setting(
        "connection.replyTimeout",
        "CLI_CONNECTION_REPLYTIMEOUT",
        "reply_timeout",
        go_duration,
        "30s",
        "longest wait for a reply frame (the winners reply excepted: it waits for every agency)",
    ),
    Setting(
        "connection.waitLog",
        "CLI_CONNECTION_WAITLOG",
        "wait_log",
        go_duration,
        "5s",
        "while the winners query waits for the draw, log wait_draw this often",
    ),
    *TLS_SETTINGS,
)

#: ClientConfig fields that no row of SETTINGS sets directly.
_NOT_IN_TABLE = {"server_host", "server_port", "single_bet", "allow_empty"}
_TABLE_FIELDS = {row.field for row in SETTINGS} - {"server_address"}
if _TABLE_FIELDS != {field.name for field in fields(ClientConfig)} - _NOT_IN_TABLE:
    raise AssertionError("SETTINGS and ClientConfig disagree")  # caught at import, by every test


def _flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if not isinstance(tree, dict):
        raise ConfigError(f"{prefix or 'the file'} must be a mapping")
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{path}."))
        else:
            flat[path] = "" if value is None else str(value)
    return flat


def _read_yaml(path: Path) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as file:
            tree = yaml.safe_load(file)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return _flatten(tree if tree is not None else {})


def load_config(
    path: Path | None, environ: Mapping[str, str] = os.environ, *, allow_empty: bool = False
) -> ClientConfig:
    """Build the client config from `path` (None: the default file, if any) and `environ`.

    Args:
        path: the YAML file; None reads DEFAULT_CONFIG_PATH if it exists.
        environ: the environment (CLI_*, and NOMBRE..NUMERO for a single bet).
        allow_empty: an empty bets file is not an error (--allow-empty).

    Raises:
        ConfigError: naming the key whose value is missing or invalid; also for an
            unknown key in the file, or TLS paths only partly given.
    """
    file = path if path is not None else DEFAULT_CONFIG_PATH
    from_file = _read_yaml(file) if path is not None or file.exists() else {}
    values = merge_settings(SETTINGS, from_file, environ, file)
    values["server_host"], values["server_port"] = values.pop("server_address")
    if values["bets_file"] is None:
        values["bets_file"] = Path(f".data/agency-{values['client_id']}.csv")
    if all(name in environ for name in SINGLE_BET_VARIABLES):
        values["single_bet"] = BetFields(*(environ[name] for name in SINGLE_BET_VARIABLES))
    return ClientConfig(**values, allow_empty=allow_empty)
