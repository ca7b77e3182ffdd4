# Strategy: log lines are an interface that other tools parse, so exactly one
# function builds them:
#
#   action: NAME | result: success|fail|in_progress | key: value | key: value
#
# `Result` is the closed set of result words; passing anything else is a type
# error. Values are made safe for the grammar here (no "|", no line breaks), so
# callers may log peer-supplied text such as an echoed message.
from __future__ import annotations

import enum
import logging

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

#: "|" and every character str.splitlines() breaks a line at, percent-encoded:
#: a peer-supplied value (an echoed message) can neither add a field nor a line.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_UNSAFE = str.maketrans({char: f"%{ord(char):02X}" for char in "|" + _LINE_BREAKS})


class Result(enum.StrEnum):
    """The only words allowed after ``result:``."""

    SUCCESS = "success"
    FAIL = "fail"
    IN_PROGRESS = "in_progress"


def format_action(action: str, outcome: Result, **details: object) -> str:
    """Build one ``action: ... | result: ...`` line.

    Args:
        action: what happened, a snake_case word.
        outcome: how it ended (the word after ``result:``).
        **details: extra ``key: value`` fields, in the order given.
    """
    parts = [f"action: {action}", f"result: {outcome.value}"]
    parts += [f"{key}: {str(value).translate(_UNSAFE)}" for key, value in details.items()]
    return " | ".join(parts)


def log_action(logger: logging.Logger, level: int, action: str, outcome: Result, **details: object) -> None:
    """Log an action line at `level`; builds the text only if the level is enabled."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", format_action(action, outcome, **details))


def setup_logging(level: str) -> None:
    """Configure the root logger with the shared line format.

    Raises:
        ValueError: `level` is not one of LEVELS.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    logging.basicConfig(level=name, format=LOG_FORMAT, datefmt=DATE_FORMAT, force=True)
