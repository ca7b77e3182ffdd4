# Strategy: the inline echo, for health checks. A connection whose first byte is
# not the protocol's start byte is a text session, the way Redis accepts inline
# commands typed into telnet: read one line (bounded in length and in time),
# write it back unchanged, log it, close.
#
# A probe that gives up (times out, or closes mid-line) is logged at DEBUG only,
# so health checks never add noise or a "fail" line to the log.
from __future__ import annotations

import logging

import gevent

from shared.errors import LineTooLong, PeerClosed, Timeout
from shared.logs import Result, log_action
from shared.transport import Stream

logger = logging.getLogger(__name__)


def serve_inline_echo(stream: Stream, ip: str, max_bytes: int, timeout_s: float) -> None:
    """Echo one text line back (its first byte is still unread). Never raises for peer behaviour."""
    try:
        with gevent.Timeout(timeout_s, Timeout(f"no full line within {timeout_s}s")):
            line = stream.recv_line(max_bytes)
            stream.send_all(line)
    except LineTooLong as exc:
        log_action(logger, logging.WARNING, "receive_message", Result.FAIL, ip=ip, error=exc)
        return
    except (Timeout, PeerClosed) as exc:
        log_action(
            logger, logging.DEBUG, "close_connection", Result.SUCCESS, ip=ip, reason=f"echo not completed: {exc}"
        )
        return
    message = line.decode("utf-8", "replace").rstrip("\r\n")
    log_action(logger, logging.INFO, "receive_message", Result.SUCCESS, ip=ip, msg=message)
