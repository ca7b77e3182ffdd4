# Contract: the course skeleton's echo loop, a second mode. For each of
# `loop.amount` messages: connect, send one text line (the server's inline echo),
# read it back, close, sleep `loop.period`; a server not up yet is retried with backoff.
from __future__ import annotations

import logging

import gevent

from client_gevent.backoff import Backoff
from client_gevent.config import ClientConfig
from shared.errors import ConnectFailed, PeerClosed, ProtocolError, Timeout
from shared.logs import Result, log_action
from shared.transport import open_connection

logger = logging.getLogger(__name__)

MAX_REPLY_BYTES = 4096  # the longest echo reply read back


def _exchange(config: ClientConfig, message: str) -> str:
    with open_connection(config.server_host, config.server_port, config.reply_timeout.seconds) as stream:
        stream.send_all(f"{message}\n".encode())
        reply = stream.recv_line(MAX_REPLY_BYTES)
    if not reply:
        raise PeerClosed()
    return reply.decode("utf-8", "replace").rstrip("\r\n")


def run_echo_loop(config: ClientConfig, backoff: Backoff) -> int:
    """Send the numbered messages; returns the exit code (0 if every echo matched)."""
    client_id = config.client_id
    mismatches = 0
    for number in range(1, config.loop_amount + 1):
        message = f"[CLIENT {client_id}] Message N°{number}"
        while True:
            try:
                reply = _exchange(config, message)
                break
            except (ConnectFailed, PeerClosed, Timeout, ProtocolError) as exc:
                if not backoff.failed("connect", exc):
                    log_action(logger, logging.ERROR, "receive_message", Result.FAIL, client_id=client_id, error=exc)
                    return 1
        backoff.succeeded()
        if reply == message:
            log_action(logger, logging.INFO, "receive_message", Result.SUCCESS, client_id=client_id, msg=reply)
        else:
            mismatches += 1
            mismatch = {"client_id": client_id, "msg": reply, "error": f"expected {message!r}"}
            log_action(logger, logging.ERROR, "receive_message", Result.FAIL, **mismatch)
        gevent.sleep(config.loop_period.seconds)
    outcome = Result.FAIL if mismatches else Result.SUCCESS
    log_action(logger, logging.INFO, "loop_finished", outcome, client_id=client_id)
    return 1 if mismatches else 0
