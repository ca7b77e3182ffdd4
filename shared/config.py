# Contract: the one settings loader both programs use. A program lists its
# settings as `Setting` rows (file key, environment variable, field, parser,
# default, help); `load_settings` gives each field the environment's value, else
# the file's, else the default, through the row's parser; `help_epilog` prints
# the rows for `--help`. A parser's ValueError text reads right after the name
# (" must be ..." or ": ..."): never looked at. Never reads os.environ or files.
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from shared.logs import LEVELS

_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def int_in(low: int, high: int | None = None, noun: str = "") -> Callable[[str], int]:
    """A parser of whole numbers in low..high (no upper bound when `high` is None)."""
    lead = f": {noun} " if noun else " "

    def parse(text: str) -> int:
        if not _WHOLE_NUMBER.fullmatch(text):
            raise ValueError(f"{lead}must be a whole number, got {text!r}")
        value = int(text)
        if high is None and value < low:
            raise ValueError(f"{lead}must be at least {low}, got {value}")
        if high is not None and not low <= value <= high:
            raise ValueError(f": {noun}{' ' if noun else ''}{value} is out of range {low}..{high}")
        return value

    return parse


def one_of(choices: Sequence[str], *, upper: bool = False) -> Callable[[str], str]:
    """A parser that accepts one of `choices` (compared in upper case if `upper`)."""

    def parse(text: str) -> str:
        value = text.upper() if upper else text
        if value not in choices:
            raise ValueError(f" must be one of {', '.join(choices)}, got {text!r}")
        return value

    return parse


#: Ready-made parsers: a port to connect to, one to listen on (0: any free port), and a log level.
port = int_in(1, 65535, "port")
listen_port = int_in(0, 65535, "port")
log_level = one_of(LEVELS, upper=True)


def seconds(text: str) -> float:
    """A positive, finite number of seconds ("2", "0.5", "1e3")."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f" must be a positive number of seconds, got {text!r}")
    return value


def host(text: str) -> str:
    """An address or hostname: not empty, no spaces."""
    if not text or any(char.isspace() for char in text):
        raise ValueError(f" must be an address or hostname, got {text!r}")
    return text


def host_port(text: str) -> tuple[str, int]:
    """``host:port``; an IPv6 address goes in brackets (``[::1]:12345``), as in Go."""
    name, colon, number = text.rpartition(":")
    bracketed = name.startswith("[") and name.endswith("]")
    name = name[1:-1] if bracketed else name
    if not colon or not name or not number or (":" in name and not bracketed):
        raise ValueError(f" must be host:port (IPv6 as [::1]:12345), got {text!r}")
    if any(char.isspace() for char in name):
        raise ValueError(f" must be host:port with no spaces, got {text!r}")
    return name, port(number)


def required_path(text: str) -> Path:
    if not text:
        raise ValueError(" must be a path, got ''")
    return Path(text)


def optional_path(text: str) -> Path | None:
    """A path; empty means none."""
    return Path(text) if text else None


def key_path(text: str) -> Path | None:
    """A private key's path (empty: none); PEM text pasted in its place is refused, never echoed."""
    if "-----BEGIN" in text or "\n" in text:
        raise ValueError(" holds PEM text, not a path: write the key to a file and give its path (value not shown)")
    return optional_path(text)


@dataclass(frozen=True)
class Duration:
    """A Go duration: the text as configured (what the log shows), and its value in seconds."""

    text: str
    seconds: float

    def __str__(self) -> str:
        return self.text


# Go accepts both micro signs: U+00B5 (µ) and U+03BC (μ).
_DURATION_PART = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
_DURATION = re.compile(f"0|(?:{_DURATION_PART})+")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> Duration:
    """A Go duration string such as ``150ms``, ``5s`` or ``1m30s`` (never negative)."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f" must be a duration such as 150ms, 5s or 1m30s, got {text!r}")
    parts = re.findall(_DURATION_PART, text)
    return Duration(text, sum((float(number) * _UNIT_SECONDS[unit] for number, unit in parts), 0.0))


@dataclass(frozen=True)
class Setting:
    """One row of a program's settings: `key` None is environment only; `default` None is required."""

    key: str | None
    env: str
    field: str
    parser: Callable[[str], Any]
    default: str | None
    help: str

    @property
    def names(self) -> str:
        """The key and, if it differs, the variable: how messages name the setting."""
        return self.env if self.key in (None, self.env) else f"{self.key} ({self.env})"


def load_settings(
    rows: Iterable[Setting], from_file: Mapping[str, str], environ: Mapping[str, str], source: object
) -> dict[str, Any]:
    """Each row's value by field: the environment's, else `from_file`'s (by key), else the default.

    Raises ConfigError for an unknown key in the file (`source`), a required setting unset, or a bad value.
    """
    rows = tuple(rows)
    unknown = sorted(set(from_file) - {row.key for row in rows})
    if unknown:
        raise ConfigError(f"unknown config keys in {source}: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for row in rows:
        if row.env in environ:
            name, text = row.env, environ[row.env]
        elif row.key is not None and row.key in from_file:
            name, text = row.key, from_file[row.key]
        elif row.default is not None:
            name, text = row.names, row.default
        else:
            raise ConfigError(f"{row.names} is not set: it must be {row.help}")
        try:
            values[row.field] = row.parser(text.strip())
        except ValueError as exc:  # its text reads right after the name (see the header)
            raise ConfigError(f"{name}{exc}") from None
    return values


def require_together(rows: Sequence[Setting], config: object, what: str) -> None:
    """Refuse a config where some, but not all, of `rows` are set (not None)."""
    missing = [row.names for row in rows if getattr(config, row.field) is None]
    if 0 < len(missing) < len(rows):
        together = ", ".join(row.names for row in rows[:-1]) + f" and {rows[-1].names}"
        raise ConfigError(f"{what} needs {together} together, or none of them: missing {', '.join(missing)}")


def help_epilog(intro: str, rows: Iterable[Setting]) -> str:
    """`intro`, then one line per setting: key, environment variable, default, meaning."""
    lines = [intro, ""]
    for row in rows:
        default = "(required)" if row.default is None else row.default or "(none)"
        names = row.env if row.key == row.env else f"{row.key or '-'}  {row.env}"
        lines.append(f"  {names}  [{default}]\n      {row.help}")
    return "\n".join(lines)
