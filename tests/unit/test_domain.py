"""shared.domain.validate_bet: every rule, each naming its field; and InvalidBet's message."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain import MAX_NUMBER_DIGITS, BetFields, validate_bet
from shared.errors import InvalidBet, LotteryError
from shared.protocol import MAX_FRAME_SIZE, Bets, Error, ErrorCode, FrameDecoder, encode
from tests.unit.properties import deterministic

GOOD = BetFields("Santiago Lionel", "Lorca", "30904465", "1999-03-17", "7574")


@pytest.mark.parametrize(
    "bet",
    [
        GOOD,
        GOOD._replace(first_name='José María, "Pepe" | Ñandú; Zoë', last_name="O'Brien\nD'Angelo"),
        GOOD._replace(birthdate="2000-02-29"),  # leap day
        GOOD._replace(number="0"),
        GOOD._replace(number="9" * MAX_NUMBER_DIGITS),
        GOOD._replace(document="0"),
        GOOD._replace(document="00012345678901234567890"),
        GOOD._replace(first_name="  x  "),
    ],
)
def test_valid_bets_pass(bet: BetFields) -> None:
    validate_bet(bet)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", ""),
        ("first_name", "   "),
        ("first_name", "\t\r\n"),
        ("last_name", ""),
        ("last_name", " \u3000 "),  # ideographic space is blank too
        ("document", ""),
        ("document", "12a"),
        ("document", "-123"),
        ("document", " 123"),
        ("document", "12 3"),
        ("document", "١٢٣"),  # Arabic-Indic digits: isdigit() but not ASCII
        ("document", "²"),
        ("birthdate", ""),
        ("birthdate", "2000-1-01"),
        ("birthdate", "20000101"),
        ("birthdate", "01/02/2000"),
        ("birthdate", " 2000-01-01"),
        ("birthdate", "2000-01-01 "),
        ("birthdate", "2000-01-01T00:00"),
        ("birthdate", "２０００-01-01"),  # fullwidth digits
        ("birthdate", "2000-02-30"),
        ("birthdate", "1900-02-29"),  # not a leap year
        ("birthdate", "2000-13-01"),
        ("birthdate", "2000-00-10"),
        ("birthdate", "0000-01-01"),
        ("number", ""),
        ("number", "-1"),
        ("number", "+1"),
        ("number", "1.5"),
        ("number", "1e3"),
        ("number", " 7"),
        ("number", "٧"),
        ("number", "1" * (MAX_NUMBER_DIGITS + 1)),
        ("first_name", "Jos\udce9"),  # undecodable byte from os.environ (surrogateescape)
        ("document", "\ud800"),
    ],
)
def test_each_rule_names_its_field(field: str, value: str) -> None:
    with pytest.raises(InvalidBet) as caught:
        validate_bet(GOOD._replace(**{field: value}))
    assert caught.value.field == field
    assert caught.value.value == value
    assert caught.value.reason
    assert field in str(caught.value)
    assert isinstance(caught.value, LotteryError)


def test_the_first_bad_field_is_named() -> None:
    with pytest.raises(InvalidBet) as caught:
        validate_bet(BetFields("", "", "x", "bad", "bad"))
    assert caught.value.field == "first_name"


def test_a_real_date_error_chains_the_parser_error() -> None:
    with pytest.raises(InvalidBet) as caught:
        validate_bet(GOOD._replace(birthdate="2001-02-29"))
    assert isinstance(caught.value.__cause__, ValueError)


def test_invalid_bet_message_quotes_a_short_value_whole() -> None:
    assert str(InvalidBet("document", "12a", "must be digits only")) == "invalid document '12a': must be digits only"


@pytest.mark.parametrize("blank", [" ", "\n", "\x01", "\u2028"])
def test_the_refusal_of_the_largest_bad_bet_fits_in_an_error_frame(blank: str) -> None:
    # The server answers a bad batch with Error(INVALID_BET, str(exc)). A field
    # can be ~8 KiB, and repr() can double or quadruple it ("\n" -> "\\n",
    # "\x01" -> "\\x01"): the message must still fit in one frame.
    filler = blank * ((MAX_FRAME_SIZE - 60) // len(blank.encode()))
    bet = GOOD._replace(first_name=filler) if blank.isspace() else GOOD._replace(document=filler)
    assert len(encode(Bets(0, (bet,)))) <= MAX_FRAME_SIZE
    with pytest.raises(InvalidBet) as caught:
        validate_bet(bet)
    assert caught.value.value == filler  # the attribute keeps the whole value
    reply = Error(ErrorCode.INVALID_BET, f"{caught.value} (bet #0)")
    decoder = FrameDecoder()
    decoder.feed(encode(reply))
    assert decoder.next_message() == reply


@deterministic
@given(st.text(), st.text(max_size=30))
def test_invalid_bet_message_is_bounded(value: str, reason: str) -> None:
    message = str(InvalidBet("first_name", value, reason))
    assert len(message) <= 500 + len(reason)
    assert message.startswith("invalid first_name ")
