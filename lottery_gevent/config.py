# Strategy: read configuration at the edge, once. `load_config` merges the
# environment over config.ini's [DEFAULT] section over built-in defaults, checks
# every value, and returns a frozen ServerConfig; nothing else in the server
# reads files or os.environ. SETTINGS is the one table of keys (each key is also
# its environment variable), parsers, defaults and help texts; `--help` prints
# it. A key may be missing from the file (tools that rewrite it write only some
# keys); an unknown key is an error, and a bad value is a ConfigError naming it.
from __future__ import annotations

import configparser
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from shared.config import (
    ConfigError,
    Setting,
    boolean,
    host,
    int_in,
    listen_port,
    log_level,
    merge_settings,
    optional_path,
    require_together,
    required_path,
    seconds,
)

__all__ = ["DEFAULT_CONFIG_PATH", "SETTINGS", "TLS_SETTINGS", "ConfigError", "ServerConfig", "load_config"]

#: Used when --config is not given.
DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.ini")


@dataclass(frozen=True)
class ServerConfig:
    """Every server setting; SETTINGS names each field's key, default and meaning."""

    port: int = 12345
    ip: str = "0.0.0.0"
    listen_backlog: int = 128
    logging_level: str = "INFO"
    agencies: int = 5
    max_connections: int = 1024
    idle_timeout_s: float = 60.0
    frame_timeout_s: float = 10.0
    echo_max_bytes: int = 1024
    echo_timeout_s: float = 5.0
    stop_timeout_s: float = 2.0
    fsync: bool = True
    hello_timeout_s: float = 5.0
    max_refusals: int = 8
    max_connections_per_ip: int = 64
    max_bets_per_agency: int = 1_000_000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    data_dir: Path = Path(".")
    wait_log_s: float = 5.0

    def __post_init__(self) -> None:
        require_together(TLS_SETTINGS, {row.field: getattr(self, row.field) for row in TLS_SETTINGS}, "TLS")

    @property
    def tls_enabled(self) -> bool:
        """True when agencies must speak TLS with a certificate from tls_ca."""
        return self.tls_cert is not None


#: TLS: all three or none.
TLS_SETTINGS = (
    Setting("SERVER_TLS_CERT", "SERVER_TLS_CERT", "tls_cert", optional_path, "", "the server's certificate (PEM)"),
    Setting("SERVER_TLS_KEY", "SERVER_TLS_KEY", "tls_key", optional_path, "", "its private key (PEM)"),
    Setting(
        "SERVER_TLS_CA",
        "SERVER_TLS_CA",
        "tls_ca",
        optional_path,
        "",
        "the contest CA (PEM) that signs agency certificates; with all three set, agencies must "
        "speak TLS and are identified by their certificate; with none, they are not authenticated",
    ),
)


def _row(key: str, field: str, parser: Callable[[str], Any], default: str, help: str) -> Setting:
    return Setting(key, key, field, parser, default, help)


#: Every server setting: config key (= environment variable), field, parser, default, meaning.
SETTINGS: tuple[Setting, ...] = (
    _row("SERVER_PORT", "port", listen_port, "12345", "TCP port to listen on (0: any free port, logged by `listen`)"),
    _row("SERVER_IP", "ip", host, "0.0.0.0", "address or hostname to listen on"),
    _row("SERVER_LISTEN_BACKLOG", "listen_backlog", int_in(1), "128", "the listening socket's accept queue"),
    _row("LOGGING_LEVEL", "logging_level", log_level, "INFO", "CRITICAL, ERROR, WARNING, INFO or DEBUG"),
    _row(
        "SERVER_AGENCIES",
        "agencies",
        int_in(0),
        "5",
        "agencies (ids 1..N) that must be done before the draw; 0: echo only",
    ),
    _row("SERVER_MAX_CONNECTIONS", "max_connections", int_in(1), "1024", "concurrent connections; more are refused"),
    _row(
        "SERVER_MAX_CONNECTIONS_PER_IP",
        "max_connections_per_ip",
        int_in(0),
        "64",
        "concurrent connections from one address (0: no cap)",
    ),
    _row(
        "SERVER_HELLO_TIMEOUT_S",
        "hello_timeout_s",
        seconds,
        "5",
        "a new connection must identify itself (Hello) within this many seconds",
    ),
    _row(
        "SERVER_IDLE_TIMEOUT_S",
        "idle_timeout_s",
        seconds,
        "60",
        "close a connection silent this long (refused frames do not count; not while it awaits the draw)",
    ),
    _row("SERVER_FRAME_TIMEOUT_S", "frame_timeout_s", seconds, "10", "a started frame must be complete within this"),
    _row(
        "SERVER_MAX_REFUSALS",
        "max_refusals",
        int_in(1),
        "8",
        "refused frames (unexpected message, bad batch) before the connection is closed",
    ),
    _row(
        "SERVER_MAX_BETS_PER_AGENCY",
        "max_bets_per_agency",
        int_in(1),
        "1000000",
        "most bets one agency may store; a batch that would pass it is refused",
    ),
    _row("SERVER_ECHO_MAX_BYTES", "echo_max_bytes", int_in(1), "1024", "longest inline echo line, in bytes"),
    _row("SERVER_ECHO_TIMEOUT_S", "echo_timeout_s", seconds, "5", "the inline echo line must arrive within this"),
    _row("SERVER_STOP_TIMEOUT_S", "stop_timeout_s", seconds, "2", "on SIGTERM, how long connections get to finish"),
    _row("SERVER_FSYNC", "fsync", boolean, "true", "fsync before acknowledging (turn off only to measure its cost)"),
    _row("SERVER_DATA_DIR", "data_dir", required_path, ".", "the data directory: bets.csv and the contest's files"),
    _row(
        "SERVER_WAIT_LOG_S",
        "wait_log_s",
        seconds,
        "5",
        "while the draw waits for agencies, log the pending ones this often (seconds)",
    ),
    *TLS_SETTINGS,
)

if sorted(row.field for row in SETTINGS) != sorted(field.name for field in fields(ServerConfig)):
    raise AssertionError("SETTINGS and ServerConfig disagree")  # caught at import, by every test


def _read_ini(file: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    try:
        with open(file, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    return {key.upper(): value for key, value in parser.defaults().items()}


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> ServerConfig:
    """Build the server config from `path` (None: the default file, if any) and `environ`.

    Raises:
        ConfigError: the file is missing (when given explicitly) or unreadable, it
            holds an unknown key, a value is invalid, or the TLS paths are only
            partly given.
    """
    file = path if path is not None else DEFAULT_CONFIG_PATH
    from_file = _read_ini(file) if path is not None or file.exists() else {}
    return ServerConfig(**merge_settings(SETTINGS, from_file, environ, file))
