# Contract: the server's settings, read once at the edge. `load_config` gives
# every field the environment's value, else config.ini's [DEFAULT] section's,
# else the default (each key is also its environment variable), checks every
# value, and returns a frozen ServerConfig; nothing else in the server reads
# files or os.environ. A key may be missing from the file; an unknown key is a
# ConfigError, as is a bad value (naming its key). SETTINGS is what --help prints.
from __future__ import annotations

import configparser
import datetime
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import (
    Setting,
    host,
    int_in,
    key_path,
    listen_port,
    load_settings,
    log_level,
    optional_path,
    require_together,
    required_path,
    seconds,
)
from shared.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_PATH", "SETTINGS", "ConfigError", "ServerConfig", "load_config"]

#: Used when --config is not given.
DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.ini")


def _instant(text: str) -> datetime.datetime | None:
    """An ISO 8601 time with a UTC offset; empty means none."""
    try:
        value = datetime.datetime.fromisoformat(text) if text else None
    except ValueError:
        value = datetime.datetime.min
    if value is not None and value.tzinfo is None:
        raise ValueError(f" must be an ISO 8601 time with a UTC offset, like 2026-12-24T18:00:00-03:00, got {text!r}")
    return value


def _optional_port(text: str) -> int | None:
    return listen_port(text) if text else None


def _row(key: str, field: str, parser: Callable[[str], Any], default: str, help: str) -> Setting:
    return Setting(key, key, field, parser, default, help)


TLS_SETTINGS = (
    _row("SERVER_TLS_CERT", "tls_cert", optional_path, "", "the server's certificate (PEM)"),
    _row("SERVER_TLS_KEY", "tls_key", key_path, "", "its private key (PEM): a path, never the key itself"),
    _row(
        "SERVER_TLS_CA",
        "tls_ca",
        optional_path,
        "",
        "the contest CA (PEM) that signs agency certificates; with all three TLS settings, agencies must "
        "speak TLS and are identified by their certificate; with none, they are not authenticated",
    ),
)

CRL_SETTING = _row(
    "SERVER_TLS_CRL",
    "tls_crl",
    optional_path,
    "",
    "the contest CA's revocation list (PEM, python -m tools.credentials DIR --revoke K); re-read on SIGHUP",
)

SETTINGS = (
    _row("SERVER_PORT", "port", listen_port, "12345", "TCP port to listen on (0: any free port, logged by `listen`)"),
    _row("SERVER_IP", "ip", host, "0.0.0.0", "address or hostname to listen on"),
    _row("SERVER_LISTEN_BACKLOG", "listen_backlog", int_in(1), "128", "the listening socket's accept queue"),
    _row("LOGGING_LEVEL", "logging_level", log_level, "INFO", "CRITICAL, ERROR, WARNING, INFO or DEBUG"),
    _row("SERVER_AGENCIES", "agencies", int_in(0), "5", "agencies (ids 1..N) that must be done before the draw"),
    _row("SERVER_MAX_CONNECTIONS", "max_connections", int_in(1), "1024", "concurrent connections; more are refused"),
    _row("SERVER_MAX_CONNECTIONS_PER_IP", "max_connections_per_ip", int_in(0), "64", "per address (0: no cap)"),
    _row("SERVER_HELLO_TIMEOUT_S", "hello_timeout_s", seconds, "5", "a new connection must send Hello within this"),
    _row("SERVER_IDLE_TIMEOUT_S", "idle_timeout_s", seconds, "60", "close a connection silent this long"),
    _row("SERVER_FRAME_TIMEOUT_S", "frame_timeout_s", seconds, "10", "a started frame must be complete within this"),
    _row("SERVER_MAX_BETS_PER_AGENCY", "max_bets_per_agency", int_in(1), "1000000", "most bets one agency may store"),
    _row("SERVER_SALES_CLOSE_AT", "sales_close_at", _instant, "", "close sales then (ISO 8601 + offset)"),
    _row("SERVER_STATUS_PORT", "status_port", _optional_port, "", "HTTP status port (unset: off)"),
    _row("SERVER_DATA_DIR", "data_dir", required_path, ".", "the data directory: bets.csv and the contest's files"),
    *TLS_SETTINGS,
    CRL_SETTING,
)


@dataclass(frozen=True)
class ServerConfig:
    """Every server setting; SETTINGS gives each field's key, default and meaning."""

    port: int = 12345
    ip: str = "0.0.0.0"
    listen_backlog: int = 128
    logging_level: str = "INFO"
    agencies: int = 5
    max_connections: int = 1024
    max_connections_per_ip: int = 64
    hello_timeout_s: float = 5.0
    idle_timeout_s: float = 60.0
    frame_timeout_s: float = 10.0
    max_bets_per_agency: int = 1_000_000
    sales_close_at: datetime.datetime | None = None
    status_port: int | None = None
    data_dir: Path = Path(".")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_crl: Path | None = None

    def __post_init__(self) -> None:
        require_together(TLS_SETTINGS, self, "TLS")
        if self.tls_crl is not None and self.tls_ca is None:
            raise ConfigError("SERVER_TLS_CRL needs TLS on (SERVER_TLS_CERT, SERVER_TLS_KEY and SERVER_TLS_CA)")

    @property
    def tls_enabled(self) -> bool:
        """True when agencies must speak TLS with a certificate from tls_ca."""
        return self.tls_cert is not None


def _read_ini(file: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    try:
        with open(file, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    return {key.upper(): value for key, value in parser.defaults().items()}


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> ServerConfig:
    """The server config from `path` (None: the default file, if it exists) and `environ`.

    Raises:
        ConfigError: the file is unreadable (or missing, when given), holds an unknown
            key, a value is invalid, or the TLS paths are only partly given.
    """
    file = path if path is not None else DEFAULT_CONFIG_PATH
    from_file = _read_ini(file) if path is not None or file.exists() else {}
    return ServerConfig(**load_settings(SETTINGS, from_file, environ, file))
