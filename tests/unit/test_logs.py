"""shared.logs: the one builder of `action: X | result: Y | key: value` lines."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.logs import DATE_FORMAT, LEVELS, LOG_FORMAT, Result, format_action, log_action, setup_logging
from tests.support.processes import parse_action
from tests.unit.properties import deterministic

#: The grammar of section 5 of the issue, as a regular expression.
ACTION_LINE = re.compile(r"action: [a-z_]+ \| result: (success|fail|in_progress)( \| [a-z_0-9]+: [^|\n]*)*")


def test_the_grammar() -> None:
    line = format_action("apuesta_recibida", Result.SUCCESS, cantidad=100)
    assert line == "action: apuesta_recibida | result: success | cantidad: 100"
    assert ACTION_LINE.fullmatch(line)


def test_no_details() -> None:
    assert format_action("sorteo", Result.SUCCESS) == "action: sorteo | result: success"


def test_details_keep_their_order() -> None:
    line = format_action("config", Result.SUCCESS, port=1, listen_backlog=2, logging_level="INFO", agencies=0)
    assert line == "action: config | result: success | port: 1 | listen_backlog: 2 | logging_level: INFO | agencies: 0"


def test_values_are_formatted_with_str() -> None:
    line = format_action("x", Result.FAIL, error=ValueError("boom"), none=None, flag=True)
    assert line == "action: x | result: fail | error: boom | none: None | flag: True"


def test_result_is_closed() -> None:
    assert [result.value for result in Result] == ["success", "fail", "in_progress"]
    for word in ("waiting", "retry", "ok", "SUCCESS"):
        with pytest.raises(ValueError):
            Result(word)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("a|b", "a%7Cb"),
        ("x | result: fail", "x %7C result: fail"),
        ("one\ntwo", "one%0Atwo"),
        ("one\r\ntwo", "one%0D%0Atwo"),
        ("tab\tstays", "tab\tstays"),
        ('José, Ñandú; "q"', 'José, Ñandú; "q"'),
    ],
)
def test_pipes_and_newlines_in_values_are_neutralised(value: str, shown: str) -> None:
    line = format_action("receive_message", Result.SUCCESS, ip="10.0.0.1", msg=value)
    assert line == f"action: receive_message | result: success | ip: 10.0.0.1 | msg: {shown}"


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_every_line_boundary_is_neutralised(separator: str) -> None:
    # str.splitlines() (and so many log readers) breaks lines at these too.
    line = format_action("receive_message", Result.SUCCESS, msg=f"a{separator}b")
    assert len(line.splitlines()) == 1


@deterministic
@given(values=st.lists(st.text(), min_size=1, max_size=4))
def test_any_value_keeps_the_line_parseable(values: list[str]) -> None:
    details = {f"k{index}": value for index, value in enumerate(values)}
    line = format_action("receive_message", Result.IN_PROGRESS, **details)
    assert len(line.splitlines()) == 1
    assert line.count(" | ") == 1 + len(values)
    assert ACTION_LINE.fullmatch(line)
    parsed = parse_action(line)
    assert parsed is not None
    assert list(parsed) == ["action", "result", *details]
    assert parsed["result"] == "in_progress"


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> Iterator[logging.Logger]:
    caplog.set_level(logging.INFO, logger="tests.unit.logs")
    yield logging.getLogger("tests.unit.logs")


def test_log_action_logs_the_line(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    log_action(logger, logging.INFO, "sorteo", Result.SUCCESS)
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (logging.INFO, "action: sorteo | result: success")
    ]


def test_log_action_builds_nothing_when_the_level_is_off(logger: logging.Logger) -> None:
    class Explosive:
        def __str__(self) -> str:
            raise AssertionError("formatted a line that is not logged")

    log_action(logger, logging.DEBUG, "apuesta_almacenada", Result.SUCCESS, dni=Explosive())


def test_log_action_passes_the_text_as_an_argument(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    # A "%" in a value must not be taken for a format directive.
    log_action(logger, logging.INFO, "receive_message", Result.SUCCESS, msg="100% %s %d")
    (record,) = caplog.records
    assert record.msg == "%s"
    assert record.getMessage().endswith("msg: 100% %s %d")


def test_setup_logging_refuses_an_unknown_level() -> None:
    with pytest.raises(ValueError, match="LOUD"):
        setup_logging("LOUD")


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning"])
def test_setup_logging_sets_the_shared_format(level: str, restore_root_logger: None) -> None:
    setup_logging(level)
    root = logging.getLogger()
    assert root.level == logging.getLevelName(level.upper())
    (handler,) = root.handlers
    assert handler.formatter is not None
    assert handler.formatter._fmt == LOG_FORMAT == "%(asctime)s %(levelname)-8s %(message)s"
    assert handler.formatter.datefmt == DATE_FORMAT == "%Y-%m-%d %H:%M:%S"
    assert set(LEVELS) == {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}
