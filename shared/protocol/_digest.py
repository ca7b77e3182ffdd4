# Strategy: the resume digest, defined once for both sides. The server keeps
# one per agency over the bets it has stored; the client computes one over the
# same number of rows of its file before it trusts `Welcome.stored`. They agree
# only if both hashed the same bets, in the same order, in the same form.
#
# The form is the STORED one: what bets.csv holds and gives back. Each bet adds
# first_name, last_name, document, birthdate, number, each as its length in
# Unicode code points (decimal digits), ":" and its text, where
#   - the names have "\r\n" and "\r" turned into "\n" (the storage contract
#     writes the file without newline="", so a name's "\r\n" reads back as "\n");
#   - the birthdate is the ISO date (YYYY-MM-DD), as validate_bet requires it;
#   - the number has no leading zeros (the contract stores int(number)).
# The length before each field makes the text decodable one way only, so two
# different sequences of bets never hash the same text. The text is hashed as
# UTF-8. The agency id is left out: the digest is always of one agency's bets.
# A batch is built as one string and encoded once: the server hashes every bet
# it stores, so this is on its hot path.
# Pure: no I/O, no logging.
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from shared.domain import BetFields

#: Bytes of a digest (SHA-256).
DIGEST_SIZE = 32


def _normalise_name(name: str) -> str:
    return name.replace("\r\n", "\n").replace("\r", "\n") if "\r" in name else name


def _canonical_text(bet: Sequence[str]) -> str:
    first_name, last_name, document, birthdate, number = bet
    first = _normalise_name(first_name)
    last = _normalise_name(last_name)
    num = number.lstrip("0") or "0"
    return (
        f"{len(first)}:{first}{len(last)}:{last}{len(document)}:{document}{len(birthdate)}:{birthdate}{len(num)}:{num}"
    )


def canonical_bet(bet: Sequence[str]) -> bytes:
    """The bytes one bet adds to a digest (see the module header).

    Args:
        bet: first_name, last_name, document, birthdate, number, as text: a bet
            that validate_bet accepts, or a row as the storage contract wrote it.
    """
    return _canonical_text(bet).encode("utf-8")


class BetsDigest:
    """SHA-256 over the canonical form of a sequence of bets, built incrementally."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, bet: BetFields | Sequence[str]) -> None:
        """Add one bet (in the form `canonical_bet` takes)."""
        self._hash.update(canonical_bet(bet))

    def update_many(self, bets: Iterable[BetFields | Sequence[str]]) -> None:
        """Add bets in order, hashing them in one call."""
        self._hash.update("".join(map(_canonical_text, bets)).encode("utf-8"))

    def digest(self) -> bytes:
        """The DIGEST_SIZE bytes of the bets added so far."""
        return self._hash.digest()

    def copy(self) -> BetsDigest:
        """An independent digest in the same state."""
        clone = BetsDigest.__new__(BetsDigest)
        clone._hash = self._hash.copy()
        return clone


#: The digest of no bets at all.
EMPTY_DIGEST = BetsDigest().digest()
