# Contract: the resume digest, defined once for both sides (pure: no I/O, no
# logging). The server keeps one per agency over its stored bets, the client one
# over as many rows of its file: they agree only for the same bets in the same
# order. The form hashed is the STORED one (what bets.csv gives back), as UTF-8,
# without the agency id: each field as its length in code points, ":" and its
# text (so it decodes one way only), names with "\r\n" and "\r" as "\n", the ISO
# birthdate, the number without leading zeros. A batch is encoded at once.
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

DIGEST_SIZE = 32  # bytes of a SHA-256 digest


def _normalise_name(name: str) -> str:
    return name.replace("\r\n", "\n").replace("\r", "\n") if "\r" in name else name


def _canonical_text(bet: Sequence[str]) -> str:
    first_name, last_name, document, date, number = bet
    first = _normalise_name(first_name)
    last = _normalise_name(last_name)
    num = number.lstrip("0") or "0"
    return f"{len(first)}:{first}{len(last)}:{last}{len(document)}:{document}{len(date)}:{date}{len(num)}:{num}"


class BetsDigest:
    """SHA-256 over the canonical form of a sequence of bets, built incrementally."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, bet: Sequence[str]) -> None:
        """Add one bet: as validate_bet accepts it, or as bets.csv holds it."""
        self._hash.update(_canonical_text(bet).encode("utf-8"))

    def update_many(self, bets: Iterable[Sequence[str]]) -> None:
        """Add bets in order, hashing them in one call."""
        self._hash.update("".join(map(_canonical_text, bets)).encode("utf-8"))

    def digest(self) -> bytes:
        return self._hash.digest()


EMPTY_DIGEST = BetsDigest().digest()  # the digest of no bets at all
