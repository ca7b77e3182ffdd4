# Contract: the agency's settings, read once at the edge: each field is the
# environment's value (CLI_*), else config.yaml's (dotted keys), else the default,
# checked, in a frozen ClientConfig; nothing else in the client reads files or
# os.environ. CLI_ID, CLI_MODE and CLI_BETS_FILE are environment only, as the
# course's tools expect; NOMBRE..NUMERO, all set, make a single bet. Durations
# are Go duration strings, kept as written for the log.
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared.config import (
    Duration,
    Setting,
    go_duration,
    host_port,
    int_in,
    key_path,
    load_settings,
    log_level,
    one_of,
    optional_path,
    require_together,
)
from shared.domain import BetFields
from shared.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_PATH", "SETTINGS", "ClientConfig", "ConfigError", "Duration", "load_config"]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.yaml")  # when --config is not given
MODES = ("lottery", "echo")
SINGLE_BET_VARIABLES = ("NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO")  # all set: send this one bet

TLS_SETTINGS = (
    Setting("tls.ca", "CLI_TLS_CA", "tls_ca", optional_path, "", "the contest CA (PEM) that signs the server"),
    Setting("tls.cert", "CLI_TLS_CERT", "tls_cert", optional_path, "", "this agency's certificate (PEM)"),
    Setting("tls.key", "CLI_TLS_KEY", "tls_key", key_path, "", "its key; all three: lottery mode speaks TLS"),
)
#: The `server_address` row yields (host, port): load_config splits it.
SETTINGS = (
    Setting(None, "CLI_ID", "client_id", int_in(1, 2**32 - 1), None, "this agency's id (1, 2, ...)"),
    Setting(None, "CLI_MODE", "mode", one_of(MODES), "lottery", "lottery (upload bets, ask for winners) or echo"),
    Setting(None, "CLI_BETS_FILE", "bets_file", optional_path, "", "the bets (empty: .data/agency-<CLI_ID>.csv)"),
    Setting("server.address", "CLI_SERVER_ADDRESS", "server_address", host_port, "server:12345", "host:port"),
    Setting("loop.amount", "CLI_LOOP_AMOUNT", "loop_amount", int_in(0, 10**9), "5", "echo mode: messages to send"),
    Setting("loop.period", "CLI_LOOP_PERIOD", "loop_period", go_duration, "5s", "echo mode: pause between messages"),
    Setting("log.level", "CLI_LOG_LEVEL", "log_level", log_level, "INFO", "CRITICAL, ERROR, WARNING, INFO or DEBUG"),
    Setting("batch.maxAmount", "CLI_BATCH_MAXAMOUNT", "batch_max_amount", int_in(1, 10_000), "125", "bets per batch"),
    Setting("connection.retryTimeout", "CLI_CONNECTION_RETRYTIMEOUT", "retry_timeout", go_duration, "30s",
            "give up after failing to reach the server for this long"),
    Setting("connection.replyTimeout", "CLI_CONNECTION_REPLYTIMEOUT", "reply_timeout", go_duration, "30s",
            "longest wait for a reply (not the winners: they wait for every agency)"),
    *TLS_SETTINGS,
)


@dataclass(frozen=True)
class ClientConfig:
    """Every client setting; SETTINGS gives each one's key, variable, default and meaning."""

    client_id: int
    mode: str = "lottery"
    bets_file: Path = Path(".data/agency-1.csv")
    server_host: str = "server"
    server_port: int = 12345
    loop_amount: int = 5
    loop_period: Duration = Duration("5s", 5.0)
    log_level: str = "INFO"
    batch_max_amount: int = 125
    retry_timeout: Duration = Duration("30s", 30.0)
    reply_timeout: Duration = Duration("30s", 30.0)
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    single_bet: BetFields | None = None  # NOMBRE..NUMERO: send this single bet instead of the file
    allow_empty: bool = False  # --allow-empty: an empty bets file is not an error

    def __post_init__(self) -> None:
        require_together(TLS_SETTINGS, self, "TLS")

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
        shown: dict[str, object] = dict(client_id=self.client_id, server_address=self.server_address, mode=self.mode)
        if self.mode == "echo":
            shown.update(loop_amount=self.loop_amount, loop_period=self.loop_period)
        else:
            bets = "single bet (NOMBRE..NUMERO)" if self.single_bet else self.bets_file
            shown.update(bets_file=bets, batch_max_amount=self.batch_max_amount)
        shown.update(log_level=self.log_level, tls="on" if self.tls_enabled and self.mode == "lottery" else "off")
        return shown


def _flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if not isinstance(tree, dict):
        raise ConfigError(f"{prefix or 'the file'} must be a mapping")
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = "" if value is None else str(value)
    return flat


def load_config(
    path: Path | None, environ: Mapping[str, str] = os.environ, *, allow_empty: bool = False
) -> ClientConfig:
    """The client config from `path` (None: the default file, if it exists) and `environ`; ConfigError names the key."""
    file = path if path is not None else DEFAULT_CONFIG_PATH
    from_file: dict[str, str] = {}
    if path is not None or file.exists():
        try:
            with open(file, encoding="utf-8") as handle:
                tree = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
        from_file = _flatten(tree if tree is not None else {})
    values = load_settings(SETTINGS, from_file, environ, file)
    values["server_host"], values["server_port"] = values.pop("server_address")
    if values["bets_file"] is None:
        values["bets_file"] = Path(f".data/agency-{values['client_id']}.csv")
    if all(name in environ for name in SINGLE_BET_VARIABLES):
        values["single_bet"] = BetFields(*(environ[name] for name in SINGLE_BET_VARIABLES))
    return ClientConfig(**values, allow_empty=allow_empty)
