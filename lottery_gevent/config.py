# Strategy: read configuration at the edge, once. `load_config` merges the
# environment over config.ini's [DEFAULT] section over built-in defaults, checks
# every value, and returns a frozen ServerConfig; nothing else in the server
# reads files or os.environ. A key may be missing from the file (tools that
# rewrite it write only some keys); a bad value is a ConfigError naming the key.
from __future__ import annotations

import configparser
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import LotteryError
from shared.logs import LEVELS

#: Used when --config is not given.
DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.ini")


class ConfigError(LotteryError):
    """A configuration value is missing, malformed or out of range."""


@dataclass(frozen=True)
class ServerConfig:
    """Every server setting. Field metadata names the config key (also the env variable)."""

    #: SERVER_PORT: TCP port to listen on (0: any free port, logged by `action: listen`).
    port: int = 12345
    #: SERVER_IP: address or hostname to listen on.
    ip: str = "0.0.0.0"
    #: SERVER_LISTEN_BACKLOG: the listening socket's accept queue.
    listen_backlog: int = 128
    #: LOGGING_LEVEL.
    logging_level: str = "INFO"
    #: SERVER_AGENCIES: agencies (ids 1..N) that must be done before the draw.
    agencies: int = 5
    #: SERVER_MAX_CONNECTIONS: concurrent connections; more are refused at once.
    max_connections: int = 1024
    #: SERVER_IDLE_TIMEOUT_S: close a connection silent for this long (not while it awaits the draw).
    idle_timeout_s: float = 60.0
    #: SERVER_FRAME_TIMEOUT_S: a started frame must be complete within this time.
    frame_timeout_s: float = 10.0
    #: SERVER_ECHO_MAX_BYTES: longest inline echo line.
    echo_max_bytes: int = 1024
    #: SERVER_ECHO_TIMEOUT_S: the inline echo line must arrive within this time.
    echo_timeout_s: float = 5.0
    #: SERVER_STOP_TIMEOUT_S: on SIGTERM, how long connections get to finish.
    stop_timeout_s: float = 2.0
    #: SERVER_FSYNC: fsync before acknowledging (turn off only to measure its cost).
    fsync: bool = True


#: config key -> ServerConfig field
KEYS: dict[str, str] = {
    "SERVER_PORT": "port",
    "SERVER_IP": "ip",
    "SERVER_LISTEN_BACKLOG": "listen_backlog",
    "LOGGING_LEVEL": "logging_level",
    "SERVER_AGENCIES": "agencies",
    "SERVER_MAX_CONNECTIONS": "max_connections",
    "SERVER_IDLE_TIMEOUT_S": "idle_timeout_s",
    "SERVER_FRAME_TIMEOUT_S": "frame_timeout_s",
    "SERVER_ECHO_MAX_BYTES": "echo_max_bytes",
    "SERVER_ECHO_TIMEOUT_S": "echo_timeout_s",
    "SERVER_STOP_TIMEOUT_S": "stop_timeout_s",
    "SERVER_FSYNC": "fsync",
}


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def _level(text: str) -> str:
    if text.upper() not in LEVELS:
        raise ValueError(f"must be one of {', '.join(LEVELS)}")
    return text.upper()


def _host(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError("must be an address or hostname")
    return text


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "port": _int_in(0, 65535),
    "ip": _host,
    "listen_backlog": _int_in(1),
    "logging_level": _level,
    "agencies": _int_in(0),
    "max_connections": _int_in(1),
    "idle_timeout_s": _positive_seconds,
    "frame_timeout_s": _positive_seconds,
    "echo_max_bytes": _int_in(1),
    "echo_timeout_s": _positive_seconds,
    "stop_timeout_s": _positive_seconds,
    "fsync": _boolean,
}


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> ServerConfig:
    """Build the server config from `path` (None: the default file, if any) and `environ`.

    Raises:
        ConfigError: the file is missing (when given explicitly) or unreadable,
            or a value is invalid.
    """
    raw: dict[str, str] = {}
    file = path if path is not None else DEFAULT_CONFIG_PATH
    if path is not None or file.exists():
        parser = configparser.ConfigParser()
        try:
            with open(file, encoding="utf-8") as handle:
                parser.read_file(handle)
        except (OSError, configparser.Error) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
        raw.update({key.upper(): value for key, value in parser.defaults().items()})
    raw.update({key: environ[key] for key in KEYS if key in environ})

    values: dict[str, Any] = {}
    for key, field_name in KEYS.items():
        if key not in raw:
            continue
        text = raw[key].strip()
        try:
            values[field_name] = _PARSERS[field_name](text)
        except ValueError as exc:
            raise ConfigError(f"{key}={text!r}: {exc}") from None
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown config keys in {file}: {', '.join(unknown)}")
    return ServerConfig(**values)
