# The inline echo, for health checks: a connection whose first byte is not the
# protocol's start byte is a text session. Guarantees: one line, at most
# ECHO_MAX_BYTES, within ECHO_TIMEOUT_S, is written back unchanged and logged
# (`receive_message`) within the echo's LogLimiter; a probe that gives up is
# logged at DEBUG only. Never: raises for what the peer does, or closes (the caller does).
from __future__ import annotations

import logging

from lottery_gevent.policy import LogLimiter
from shared.errors import PeerClosed, ProtocolError, Timeout
from shared.logs import Result, log_action
from shared.transport import Stream, within

logger = logging.getLogger(__name__)

ECHO_MAX_BYTES = 1024  # the longest line echoed, newline included
ECHO_TIMEOUT_S = 5.0  # for the whole line and its echo
#: Echo lines logged in a burst before the server-wide one a second: a Compose project's echo clients fit.
ECHO_LOG_BURST = 64


def serve_inline_echo(stream: Stream, ip: str, limit_log: LogLimiter) -> None:
    """Echo one text line back (its first byte is still unread)."""
    try:
        with within(ECHO_TIMEOUT_S, f"no full line within {ECHO_TIMEOUT_S}s"):
            line = stream.recv_line(ECHO_MAX_BYTES)
            stream.send_all(line)
    except ProtocolError as exc:
        limit_log.log(logger, logging.WARNING, "receive_message", Result.FAIL, ip=ip, error=exc)
    except (Timeout, PeerClosed) as exc:
        reason = f"echo not completed: {exc}"
        log_action(logger, logging.DEBUG, "close_connection", Result.SUCCESS, ip=ip, reason=reason)
    else:
        message = line.decode("utf-8", "replace").rstrip("\r\n")
        limit_log.log(logger, logging.INFO, "receive_message", Result.SUCCESS, ip=ip, msg=message)
