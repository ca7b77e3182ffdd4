# Contract: log lines are an interface other tools parse, so exactly one function
# builds them: `action: NAME | result: success|fail|in_progress | key: value ...`.
# Values are made safe here, so callers may log peer-supplied text as it is: "|",
# "%", every C0/C1 control and DEL, the bidirectional controls, U+2028/U+2029 and
# lone surrogates are percent-encoded ("%XX" below 0x100, "%uXXXX" above); every
# "%" in a value starts an escape, so the original text can always be recovered.
from __future__ import annotations

import enum
import logging

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

LINE_OVERHEAD_BYTES = len("2026-01-01 00:00:00 WARNING  \n")  # a line's bytes beyond its message

#: The code points a value never shows raw (see the header).
UNSAFE_CODE_POINTS = frozenset(
    [ord("|"), ord("%"), *range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
    + [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029, *range(0xD800, 0xE000)]
)
_UNSAFE = str.maketrans({code: f"%{code:02X}" if code < 0x100 else f"%u{code:04X}" for code in UNSAFE_CODE_POINTS})


class Result(enum.StrEnum):
    """The only words allowed after ``result:``."""

    SUCCESS = "success"
    FAIL = "fail"
    IN_PROGRESS = "in_progress"


def format_action(action: str, outcome: Result, **details: object) -> str:
    """One ``action: ... | result: ...`` line, then each of `details` as ``key: value``, in order."""
    parts = [f"action: {action}", f"result: {outcome.value}"]
    parts += [f"{key}: {escape_value(value)}" for key, value in details.items()]
    return " | ".join(parts)


def escape_value(value: object) -> str:
    """`str(value)` with every unsafe code point percent-encoded (see the header)."""
    return str(value).translate(_UNSAFE)


def log_action(logger: logging.Logger, level: int, action: str, outcome: Result, **details: object) -> None:
    """Log an action line at `level`; builds the text only if the level is enabled."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", format_action(action, outcome, **details))


def setup_logging(level: str) -> None:
    """Configure the root logger with the shared line format; ValueError if `level` is not one of LEVELS."""
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    logging.basicConfig(level=name, format=LOG_FORMAT, datefmt=DATE_FORMAT, force=True)
