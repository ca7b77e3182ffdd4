# Strategy: read configuration at the edge, once. `load_config` merges the
# environment (CLI_*) over config.yaml over built-in defaults, checks every
# value, and returns a frozen ClientConfig. Nothing else in the client reads
# files or os.environ. Durations are Go duration strings ("150ms", "1m30s"),
# kept as written for the log and parsed to seconds for use.
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared.domain import BetFields
from shared.errors import LotteryError
from shared.logs import LEVELS

#: Used when --config is not given.
DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.yaml")
MODES = ("lottery", "echo")
#: Environment variables that, all set, make the client send this one bet.
SINGLE_BET_VARIABLES = ("NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO")
MAX_AGENCY_ID = 2**32 - 1


class ConfigError(LotteryError):
    """A configuration value is missing, malformed or out of range."""


@dataclass(frozen=True)
class Duration:
    """A Go duration: the text as configured, and its value in seconds."""

    text: str
    seconds: float

    def __str__(self) -> str:
        return self.text


# Go accepts both micro signs: U+00B5 (µ) and U+03BC (μ).
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> Duration:
    """Parse a Go duration string such as ``150ms``, ``5s`` or ``1m30s``.

    Raises:
        ValueError: `text` is not a duration.
    """
    if text == "0":
        return Duration(text, 0.0)
    position, seconds = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise ValueError("must be a duration such as 150ms, 5s or 1m30s")
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text:
        raise ValueError("must be a duration such as 150ms, 5s or 1m30s")
    return Duration(text, seconds)


@dataclass(frozen=True)
class ClientConfig:
    """Every client setting."""

    #: CLI_ID: this agency's id.
    client_id: int
    #: server.address / CLI_SERVER_ADDRESS: host:port.
    server_host: str = "server"
    server_port: int = 12345
    #: loop.amount / CLI_LOOP_AMOUNT: echo mode's number of messages.
    loop_amount: int = 5
    #: loop.period / CLI_LOOP_PERIOD: echo mode's pause between messages.
    loop_period: Duration = Duration("5s", 5.0)
    #: log.level / CLI_LOG_LEVEL.
    log_level: str = "INFO"
    #: batch.maxAmount / CLI_BATCH_MAXAMOUNT: most bets per batch.
    batch_max_amount: int = 125
    #: CLI_MODE: "lottery" or "echo".
    mode: str = "lottery"
    #: CLI_BETS_FILE: the agency's CSV (default .data/agency-{id}.csv).
    bets_file: Path = Path(".data/agency-1.csv")
    #: NOMBRE..NUMERO: send this single bet instead of the file.
    single_bet: BetFields | None = None
    #: connection.retryTimeout / CLI_CONNECTION_RETRYTIMEOUT: give up after failing this long.
    retry_timeout: Duration = Duration("30s", 30.0)
    #: connection.replyTimeout / CLI_CONNECTION_REPLYTIMEOUT: longest wait for a reply
    #: (the winners reply excepted: it waits for every agency).
    reply_timeout: Duration = Duration("30s", 30.0)

    @property
    def server_address(self) -> str:
        host = f"[{self.server_host}]" if ":" in self.server_host else self.server_host
        return f"{host}:{self.server_port}"


#: YAML path -> (environment variable, ClientConfig field)
KEYS: dict[str, tuple[str, str]] = {
    "server.address": ("CLI_SERVER_ADDRESS", "server_address"),
    "loop.amount": ("CLI_LOOP_AMOUNT", "loop_amount"),
    "loop.period": ("CLI_LOOP_PERIOD", "loop_period"),
    "log.level": ("CLI_LOG_LEVEL", "log_level"),
    "batch.maxAmount": ("CLI_BATCH_MAXAMOUNT", "batch_max_amount"),
    "connection.retryTimeout": ("CLI_CONNECTION_RETRYTIMEOUT", "retry_timeout"),
    "connection.replyTimeout": ("CLI_CONNECTION_REPLYTIMEOUT", "reply_timeout"),
}


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # [::1]:12345, as Go's net.SplitHostPort
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("must be host:port")
    return host, int(port)


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"must be an integer in {low}..{high}")
        return value

    return parse


def _level(text: str) -> str:
    if text.upper() not in LEVELS:
        raise ValueError(f"must be one of {', '.join(LEVELS)}")
    return text.upper()


def _mode(text: str) -> str:
    if text not in MODES:
        raise ValueError(f"must be one of {', '.join(MODES)}")
    return text


_PARSERS: dict[str, Callable[[str], Any]] = {
    "server_address": _address,
    "loop_amount": _int_in(0, 10**9),
    "loop_period": parse_duration,
    "log_level": _level,
    "batch_max_amount": _int_in(1, 10_000),
    "retry_timeout": parse_duration,
    "reply_timeout": parse_duration,
}


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
    flat = _flatten(tree if tree is not None else {})
    unknown = sorted(set(flat) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown keys in {path}: {', '.join(unknown)}")
    return flat


def _parse_with(name: str, parser: Callable[[str], Any], text: str) -> Any:
    try:
        return parser(text.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={text!r}: {exc}") from None


def _parse(name: str, field: str, text: str) -> Any:
    return _parse_with(name, _PARSERS[field], text)


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> ClientConfig:
    """Build the client config from `path` (None: the default file, if any) and `environ`.

    Raises:
        ConfigError: naming the key whose value is missing or invalid.
    """
    file = path if path is not None else DEFAULT_CONFIG_PATH
    from_file = _read_yaml(file) if path is not None or file.exists() else {}

    values: dict[str, Any] = {}
    for yaml_key, (env_key, field) in KEYS.items():
        if env_key in environ:
            values[field] = _parse(env_key, field, environ[env_key])
        elif yaml_key in from_file:
            values[field] = _parse(yaml_key, field, from_file[yaml_key])
    if "server_address" in values:
        values["server_host"], values["server_port"] = values.pop("server_address")

    if "CLI_ID" not in environ:
        raise ConfigError("CLI_ID is not set: it must be this agency's id (1, 2, ...)")
    client_id = _parse_with("CLI_ID", _int_in(1, MAX_AGENCY_ID), environ["CLI_ID"])
    values["client_id"] = client_id
    if "CLI_MODE" in environ:
        values["mode"] = _parse_with("CLI_MODE", _mode, environ["CLI_MODE"])
    values["bets_file"] = Path(environ.get("CLI_BETS_FILE") or f".data/agency-{client_id}.csv")
    if all(name in environ for name in SINGLE_BET_VARIABLES):
        values["single_bet"] = BetFields(*(environ[name] for name in SINGLE_BET_VARIABLES))
    return ClientConfig(**values)
