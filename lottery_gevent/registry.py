# Which greenlet speaks for each agency: at most one live session per agency.
# Guarantees: a newer claim ends the older session's greenlet first
# (EndSession(SUPERSEDED); its in-flight batch is stored whole or not at all)
# and only then returns, so the new session reads the count the old one left.
# Never: knows sessions (they depend on it, not the other way round).
from __future__ import annotations

import logging

import gevent

from shared.logs import Result, log_action
from shared.protocol import ErrorCode

logger = logging.getLogger(__name__)


class EndSession(gevent.GreenletExit):  # type: ignore[misc]
    """Thrown into a session's greenlet to end it (takeover, shutdown); `code` is what the peer is told."""

    def __init__(self, reason: str, code: ErrorCode) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class AgencyRegistry:
    """Which greenlet speaks for each agency; a superseded one gets `takeover_timeout_s` to end."""

    def __init__(self, takeover_timeout_s: float) -> None:
        self._takeover_timeout_s = takeover_timeout_s
        self._owners: dict[int, gevent.Greenlet] = {}

    def claim(self, agency: int, owner: gevent.Greenlet) -> None:
        """Make `owner` the agency's only session, ending any older one first."""
        old = self._owners.get(agency)
        self._owners[agency] = owner
        if old is not None and old is not owner:
            log_action(logger, logging.INFO, "takeover", Result.SUCCESS, agency=agency)
            superseded = EndSession("superseded by a newer connection of the same agency", ErrorCode.SUPERSEDED)
            old.kill(superseded, block=True, timeout=self._takeover_timeout_s)

    def agencies(self) -> frozenset[int]:
        """The agencies with a live session."""
        return frozenset(self._owners)

    def release(self, agency: int, owner: gevent.Greenlet) -> None:
        """Forget `owner` as the agency's session, unless a newer one has claimed it."""
        if self._owners.get(agency) is owner:
            del self._owners[agency]
