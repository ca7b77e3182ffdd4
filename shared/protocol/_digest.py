# Strategy: the resume digest, defined once for both sides. The server keeps
# one per agency over the bets it has stored; the client computes one over the
# same number of rows of its file before it trusts `Welcome.stored`. They agree
# only if both hashed the same bets, in the same order, in the same form.
#
# The form is the STORED one: what bets.csv holds and gives back. Each bet adds
# first_name, last_name, document, birthdate, number, each as a u32 byte length
# and its UTF-8 bytes, where
#   - the names have "\r\n" and "\r" turned into "\n" (the storage contract
#     writes the file without newline="", so a name's "\r\n" reads back as "\n");
#   - the birthdate is the ISO date (YYYY-MM-DD);
#   - the number is str(int(number)), without leading zeros.
# The agency id is left out: the digest is always of one agency's bets.
# Pure: no I/O, no logging.
from __future__ import annotations

import datetime
import hashlib
import struct
from collections.abc import Iterable, Sequence

from shared.domain import BetFields

#: Bytes of a digest (SHA-256).
DIGEST_SIZE = 32

_pack_u32 = struct.Struct(">I").pack
_from_iso = datetime.date.fromisoformat


def _normalise_name(name: str) -> str:
    return name.replace("\r\n", "\n").replace("\r", "\n") if "\r" in name else name


def canonical_bet(bet: Sequence[str]) -> bytes:
    """The bytes one bet adds to a digest (see the module header).

    Args:
        bet: first_name, last_name, document, birthdate, number, as text.

    Raises:
        ValueError: the birthdate is not an ISO date, or the number not an integer.
    """
    first_name, last_name, document, birthdate, number = bet
    first = _normalise_name(first_name).encode("utf-8")
    last = _normalise_name(last_name).encode("utf-8")
    doc = document.encode("utf-8")
    born = _from_iso(birthdate).isoformat().encode("ascii")
    num = str(int(number)).encode("ascii")
    # Written out rather than looped: the server hashes every bet it stores.
    return b"".join(
        (
            _pack_u32(len(first)),
            first,
            _pack_u32(len(last)),
            last,
            _pack_u32(len(doc)),
            doc,
            _pack_u32(len(born)),
            born,
            _pack_u32(len(num)),
            num,
        )
    )


class BetsDigest:
    """SHA-256 over the canonical form of a sequence of bets, built incrementally."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, bet: BetFields | Sequence[str]) -> None:
        """Add one bet (see `canonical_bet`, which names what it raises)."""
        self._hash.update(canonical_bet(bet))

    def update_many(self, bets: Iterable[BetFields | Sequence[str]]) -> None:
        """Add bets in order, hashing them in one call."""
        self._hash.update(b"".join(map(canonical_bet, bets)))

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
