"""shared.logs: the one builder of `action: X | result: Y | key: value` lines."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.logs import (
    DATE_FORMAT,
    LOG_FORMAT,
    UNSAFE_CODE_POINTS,
    Result,
    escape_value,
    format_action,
    log_action,
    setup_logging,
)
from tests.support.logs import decode_value
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


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("a|b", "a%7Cb"),
        ("x | result: fail", "x %7C result: fail"),
        ("one\ntwo", "one%0Atwo"),
        ("one\r\ntwo", "one%0D%0Atwo"),
        ("tab\tgoes", "tab%09goes"),
        ("100%7C", "100%257C"),
        ('José, Ñandú; "q" │', 'José, Ñandú; "q" │'),
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


#: Every class the escaping must cover, by name (issue 9, finding 4).
CONTROL_CLASSES = {
    "C0": range(0x00, 0x20),
    "DEL": [0x7F],
    "C1": range(0x80, 0xA0),
    "bidi embeddings and overrides": range(0x202A, 0x202F),
    "bidi isolates": range(0x2066, 0x206A),
    "line and paragraph separators": [0x2028, 0x2029],
    "the escape character and the field separator": [ord("%"), ord("|")],
}


@pytest.mark.parametrize("name", CONTROL_CLASSES)
def test_every_control_class_is_percent_encoded(name: str) -> None:
    for code in CONTROL_CLASSES[name]:
        shown = escape_value(f"a{chr(code)}b")
        assert shown == (f"a%{code:02X}b" if code < 0x100 else f"a%u{code:04X}b"), hex(code)
        assert shown.isprintable() and "|" not in shown
        assert decode_value(shown) == f"a{chr(code)}b"


def test_a_terminal_cannot_be_fooled() -> None:
    # Finding 4: ESC sequences that erase a line and draw a fake one, a backspace,
    # a right-to-left override, NUL: none reaches the log raw.
    attack = "\x1b[1A\x1b[2K\raction: sorteo \u2502 result: fail\x08\u202e\x00"
    line = format_action("receive_message", Result.SUCCESS, msg=attack)
    assert line.isprintable()
    assert not set(line) & {chr(code) for code in UNSAFE_CODE_POINTS - {ord("%"), ord("|")}}
    assert "\u2502" in line  # the look-alike is ordinary text


def test_decoding_is_unambiguous() -> None:
    # A literal "%7C" and an escaped "|" are told apart.
    assert escape_value("%7C") != escape_value("|")
    assert decode_value(escape_value("%7C")) == "%7C" and decode_value(escape_value("|")) == "|"
    for not_encoded in ("100%", "%zz", "%7", "%u12"):
        with pytest.raises(ValueError):
            decode_value(not_encoded)


@deterministic
@given(value=st.text(alphabet=st.characters(exclude_categories=())))
def test_escaping_round_trips(value: str) -> None:
    shown = escape_value(value)
    assert decode_value(shown) == value
    assert not set(shown) & {chr(code) for code in UNSAFE_CODE_POINTS - {ord("%")}}
    assert len(shown.splitlines()) <= 1


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
    assert record.getMessage().endswith("msg: 100%25 %25s %25d")


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
