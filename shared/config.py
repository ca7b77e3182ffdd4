# Strategy: both programs read their settings the same way, so the pieces live
# here once. A program describes its settings as one table of `Setting` rows
# (config-file key, environment variable, dataclass field, parser, default,
# help). `merge_settings` walks that table: the environment wins over the file,
# the file over the default, and every value, defaults included, goes through
# the row's parser. `format_settings` renders the same table for `--help`, so
# the help can never list a key the program does not read, or miss one.
#
# A parser takes the stripped text and returns the value, or raises ValueError
# with a reason that reads after the key's name:
#     "must be a whole number, got 'abc'"  ->  CLI_ID must be a whole number, got 'abc'
#     "port 99999 is out of range 1..65535" ->  CLI_SERVER_ADDRESS: port 99999 is out of range 1..65535
# (`describe` adds the key: a space before "must ...", a colon before anything else).
from __future__ import annotations

import argparse
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from shared.logs import LEVELS

#: Highest TCP port number.
MAX_PORT = 65535
#: Width of the `--help` settings table (argparse's own help is about this wide).
HELP_WIDTH = 110

_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


# --- parsers: text -> value, or ValueError ----------------------------------------


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers in low..high (no upper bound when `high` is None)."""

    def parse(text: str) -> int:
        if not _WHOLE_NUMBER.fullmatch(text):
            raise ValueError(f"must be a whole number, got {text!r}")
        value = int(text)
        if high is None and value < low:
            raise ValueError(f"must be at least {low}, got {value}")
        if high is not None and not low <= value <= high:
            raise ValueError(f"{value} is out of range {low}..{high}")
        return value

    return parse


def _port_in(low: int) -> Callable[[str], int]:
    whole = int_in(low, MAX_PORT)

    def parse(text: str) -> int:
        try:
            return whole(text)
        except ValueError as exc:
            if str(exc).startswith("must "):
                raise
            raise ValueError(f"port {exc}") from None

    return parse


#: A port to connect to: 1..65535.
port = _port_in(1)
#: A port to listen on: 0..65535 (0: any free port).
listen_port = _port_in(0)


def one_of(choices: Sequence[str], *, upper: bool = False) -> Callable[[str], str]:
    """A parser that accepts one of `choices` (compared in upper case if `upper`)."""

    def parse(text: str) -> str:
        value = text.upper() if upper else text
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {text!r}")
        return value

    return parse


#: A logging level name, any case; returned in upper case.
log_level = one_of(LEVELS, upper=True)


def seconds(text: str) -> float:
    """Parse a positive, finite number of seconds ("2", "0.5", "1e3")."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"must be a positive number of seconds, got {text!r}")
    return value


def boolean(text: str) -> bool:
    """Parse true/false, yes/no, on/off or 1/0, any case."""
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false (or yes/no, on/off, 1/0), got {text!r}")


def host(text: str) -> str:
    """Parse an address or hostname: not empty, no spaces."""
    if not text or any(char.isspace() for char in text):
        raise ValueError(f"must be an address or hostname, got {text!r}")
    return text


def host_port(text: str) -> tuple[str, int]:
    """Parse ``host:port``; an IPv6 address goes in brackets (``[::1]:12345``), as in Go."""
    name, colon, number = text.rpartition(":")
    bracketed = name.startswith("[") and name.endswith("]")
    if bracketed:
        name = name[1:-1]
    if not colon or not name or not number or (":" in name and not bracketed):
        raise ValueError(f"must be host:port (IPv6 as [::1]:12345), got {text!r}")
    if any(char.isspace() for char in name):
        raise ValueError(f"must be host:port with no spaces, got {text!r}")
    try:
        return name, port(number)
    except ValueError as exc:
        reason = str(exc)
        raise ValueError(reason if reason.startswith("port ") else f"port {reason}") from None


def required_path(text: str) -> Path:
    """Parse a path that must be given (not empty)."""
    if not text:
        raise ValueError("must be a path, got ''")
    return Path(text)


def optional_path(text: str) -> Path | None:
    """Parse a path; empty means none."""
    return Path(text) if text else None


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
    """Parse a Go duration string such as ``150ms``, ``5s`` or ``1m30s`` (not negative).

    Raises:
        ValueError: `text` is not a duration.
    """
    if text == "0":
        return Duration(text, 0.0)
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position < len(text):
        raise ValueError(f"must be a duration such as 150ms, 5s or 1m30s, got {text!r}")
    return Duration(text, total)


#: The name the settings table uses for Go durations.
go_duration = parse_duration


# --- the settings table -----------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One row of a program's settings table.

    Attributes:
        key: the config-file key (None: environment only).
        env: the environment variable that overrides it.
        field: the config dataclass field it sets.
        parser: text -> value; raises ValueError with a reason.
        default: the text used when neither file nor environment set it (parsed
            like any other value); None: the setting is required.
        help: what it means, for `--help`.
    """

    key: str | None
    env: str
    field: str
    parser: Callable[[str], Any]
    default: str | None
    help: str

    @property
    def names(self) -> str:
        """How errors name the setting: the key and, if it differs, the variable."""
        if self.key is None or self.key == self.env:
            return self.env
        return f"{self.key} ({self.env})"


def describe(name: str, reason: str) -> str:
    """Join a setting's name and a parser's reason into one message."""
    return f"{name} {reason}" if reason.startswith("must ") else f"{name}: {reason}"


def parse_value(name: str, parser: Callable[[str], Any], text: str) -> Any:
    """Run `parser` on `text` (stripped).

    Raises:
        ConfigError: naming `name`, with the parser's reason.
    """
    try:
        return parser(text.strip())
    except ValueError as exc:
        raise ConfigError(describe(name, str(exc))) from None


def merge_settings(
    settings: Iterable[Setting], from_file: Mapping[str, str], environ: Mapping[str, str], source: object
) -> dict[str, Any]:
    """Parse every setting: environment over `from_file` (keyed by file key) over default.

    Args:
        settings: the program's table.
        from_file: the file's values by key; an empty mapping if there is no file.
        environ: the environment.
        source: the file, for the unknown-keys message.

    Returns:
        The parsed values, by dataclass field.

    Raises:
        ConfigError: an unknown key in the file, a required setting missing, or a
            bad value (named by the variable or the key it came from).
    """
    rows = tuple(settings)
    unknown = sorted(set(from_file) - {row.key for row in rows if row.key is not None})
    if unknown:
        raise ConfigError(f"unknown config keys in {source}: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for row in rows:
        if row.env in environ:
            values[row.field] = parse_value(row.env, row.parser, environ[row.env])
        elif row.key is not None and row.key in from_file:
            values[row.field] = parse_value(row.key, row.parser, from_file[row.key])
        elif row.default is None:
            raise ConfigError(f"{row.names} is not set: it must be {row.help}")
        else:
            values[row.field] = parse_value(row.names, row.parser, row.default)
    return values


def require_together(settings: Iterable[Setting], values: Mapping[str, Any], what: str) -> None:
    """Check that the settings are either all set (not None) or all unset.

    Raises:
        ConfigError: naming the ones that are missing.
    """
    rows = tuple(settings)
    missing = [row.names for row in rows if values.get(row.field) is None]
    if missing and len(missing) < len(rows):
        together = ", ".join(row.names for row in rows[:-1]) + f" and {rows[-1].names}"
        raise ConfigError(f"{what} needs {together} together, or none of them: missing {', '.join(missing)}")


def _shown_default(default: str | None) -> str:
    if default is None:
        return "(required)"
    return default or "(none)"


def format_settings(settings: Iterable[Setting]) -> str:
    """Render the settings table for `--help`: key, environment variable, default, meaning."""
    rows = tuple(settings)
    same = all(row.key == row.env for row in rows)
    header = ("key = environment variable",) if same else ("key", "environment variable")
    cells = [((row.env,) if same else (row.key or "-", row.env)) + (_shown_default(row.default),) for row in rows]
    table = [(*header, "default"), *cells]
    widths = [max(len(cell[column]) for cell in table) for column in range(len(header) + 1)]
    indent = sum(widths) + 2 * len(widths)
    meanings = ["meaning", *(row.help for row in rows)]
    lines = []
    for cell, meaning in zip(table, meanings, strict=True):
        left = "".join(text.ljust(width + 2) for text, width in zip(cell, widths, strict=True))
        wrapped = textwrap.wrap(meaning, max(HELP_WIDTH - indent, 30)) or [""]
        lines.append(left + wrapped[0])
        lines.extend(" " * indent + more for more in wrapped[1:])
    return "\n".join(lines)


def argument_parser(
    prog: str,
    description: str,
    settings: Iterable[Setting],
    settings_intro: str,
    default_config: Path,
    footer: str = "",
) -> argparse.ArgumentParser:
    """A program's command line: its description, `--config PATH`, and the settings table in `--help`."""
    epilog = f"{settings_intro}\n\n{format_settings(settings)}" + (f"\n\n{footer}" if footer else "")
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"{default_config.name} to read (default: {default_config}, if present)",
    )
    return parser
