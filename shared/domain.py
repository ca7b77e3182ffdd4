# Contract: the bet as both sides see it, as text, before the server stores it.
# One validation, shared by the client (to stop at a bad CSV row before sending
# it) and the server (to refuse a bad batch before storing any of it); and the
# name an agency's certificate carries. Nothing here sees bytes or sockets.
from __future__ import annotations

import datetime
import re
from typing import NamedTuple

from shared.errors import InvalidBet

MAX_NUMBER_DIGITS = 9  # lottery numbers are non-negative integers of at most this many digits

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class BetFields(NamedTuple):
    """One bet as text, in CSV and wire order. Not validated by construction."""

    first_name: str
    last_name: str
    document: str
    birthdate: str
    number: str


FIELD_COUNT = len(BetFields._fields)


def validate_bet(bet: BetFields) -> None:
    """Check that a bet can be stored; InvalidBet names the first field that breaks a rule."""
    first_name, last_name, document, birthdate, number = bet
    if not first_name.strip():
        raise InvalidBet("first_name", first_name, "must not be empty")
    if not last_name.strip():
        raise InvalidBet("last_name", last_name, "must not be empty")
    if not (document.isascii() and document.isdigit()):
        raise InvalidBet("document", document, "must be digits only")
    if _ISO_DATE.fullmatch(birthdate) is None:
        raise InvalidBet("birthdate", birthdate, "must be a date as YYYY-MM-DD")
    try:
        datetime.date.fromisoformat(birthdate)
    except ValueError as exc:
        raise InvalidBet("birthdate", birthdate, "is not a real date") from exc
    if not (number.isascii() and number.isdigit()):
        raise InvalidBet("number", number, "must be a non-negative integer")
    if len(number) > MAX_NUMBER_DIGITS:
        raise InvalidBet("number", number, f"must have at most {MAX_NUMBER_DIGITS} digits")
    # The other fields are ASCII by now; only a name can hold a lone surrogate.
    if not (first_name.isascii() and last_name.isascii()):
        for name, text in (("first_name", first_name), ("last_name", last_name)):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidBet(name, text, "is not valid UTF-8 text") from exc


def agency_common_name(agency: int) -> str:
    """The subject CN of agency `agency`'s certificate: with TLS on, the only name that may say Hello(agency)."""
    return f"agency-{agency}"
