# Contract: the resume digest, defined once for both sides (pure: no I/O, no
# logging). The server keeps one per agency over its stored bets; the client
# computes one over as many rows of its file; they agree only if both hashed the
# same bets in the same order and form. The form is the STORED one (what bets.csv
# gives back): each field as its length in code points, ":" and its text, names
# with "\r\n" and "\r" as "\n", the ISO birthdate, the number without leading
# zeros; the length prefix makes the text decodable one way only. Hashed as
# UTF-8, without the agency id. A batch is encoded once: the server's hot path.
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
