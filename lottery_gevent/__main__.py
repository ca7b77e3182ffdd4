"""Run the lottery server: ``python -m lottery_gevent [--config PATH] [--new-contest]``;
``python -m lottery_gevent [--config PATH] close-sales`` closes sales in SERVER_DATA_DIR (sales.py).

The server resolves every configured path, then works in its data directory (SERVER_DATA_DIR, so
the storage contract's ./bets.csv lands there), locked (contest.py) before recovery touches anything.

Exit codes: 0 after a clean stop (SIGTERM or SIGINT), 1 if the server cannot start (storage
damaged, address not bindable) or stopped because an fsync failed (a restart recovers from what
is on disk), 2 for a bad configuration (TLS files that cannot be loaded included) or a data
directory in use by another server. close-sales exits 0 once the close is recorded (or already
was), 1 if it cannot be.
"""

from __future__ import annotations

from shared.stop_signals import StopSignals

STOP = StopSignals()  # before anything slow: a stop signal during start-up still stops cleanly

import argparse
import dataclasses
import logging
import os
import resource
import signal
import sys
from pathlib import Path

import gevent
from gevent.event import Event

from lottery_gevent.config import DEFAULT_CONFIG_PATH, SETTINGS, ServerConfig, load_config
from lottery_gevent.contest import archive_contest, lock_data_dir
from lottery_gevent.lottery import Lottery
from lottery_gevent.revocation import tls_context
from lottery_gevent.sales import SalesWatch, close_sales_command
from lottery_gevent.server import LotteryServer
from lottery_gevent.status import StatusServer
from lottery_gevent.storage import BetStore, StorageFailure
from shared.config import help_epilog
from shared.errors import ConfigError
from shared.logs import Result, log_action, setup_logging

logger = logging.getLogger("lottery_gevent")

#: File descriptors kept beyond one per connection (listener, storage, logs).
SPARE_FDS = 64
#: How often the interpreter offers the GIL to another thread (CPython's default: 5 ms).
GIL_SWITCH_INTERVAL_S = 0.0005


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lottery_gevent",
        description="Lotería Nacional server: stores agencies' bets, runs the draw, "
        "answers each agency with its winners;\nalso echoes text lines (health checks).",
        epilog=help_epilog("settings (config.ini's [DEFAULT] keys; the environment overrides each):", SETTINGS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, metavar="PATH", help=f"default: {DEFAULT_CONFIG_PATH}, if present")
    parser.add_argument(
        "--new-contest",
        action="store_true",
        help="move the current contest's files into SERVER_DATA_DIR/archive/<contest id>/ "
        "(nothing is deleted), then start an empty contest",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["close-sales"],
        help="close-sales: record the sales close in SERVER_DATA_DIR and tell the server running there, if any",
    )
    return parser.parse_args(argv)


def _absolute_paths(config: ServerConfig) -> ServerConfig:
    """The config with every path made absolute (the server then changes directory)."""
    paths = {name: getattr(config, name) for name in ("data_dir", "tls_cert", "tls_key", "tls_ca", "tls_crl")}
    return dataclasses.replace(config, **{name: path and path.absolute() for name, path in paths.items()})


def _enter_data_dir(config: ServerConfig, new_contest: bool) -> int | None:
    """Create, lock and enter the data directory, archive the contest if asked; None, or the exit code."""
    directory = config.data_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock_data_dir(directory)  # its descriptor stays open: the lock lasts as long as the process
    except (ConfigError, OSError) as exc:  # ConfigError: another server holds it
        log_action(logger, logging.ERROR, "lock_data_dir", Result.FAIL, data_dir=directory, error=exc)
        return 2 if isinstance(exc, ConfigError) else 1
    os.chdir(directory)
    log_action(logger, logging.INFO, "lock_data_dir", Result.SUCCESS, data_dir=directory, pid=os.getpid())
    if new_contest:
        try:
            archived = archive_contest(directory)
        except (ValueError, OSError) as exc:
            log_action(logger, logging.ERROR, "new_contest", Result.FAIL, error=exc)
            return 1
        log_action(logger, logging.INFO, "new_contest", Result.SUCCESS, archived=archived or "nothing to archive")
    return None


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


#: What the two start-up lines show: `config` (what the server is) and `limits` (what it tolerates).
CONFIG_FIELDS = ("port", "listen_backlog", "logging_level", "agencies", "data_dir")
LIMIT_FIELDS = (
    "max_connections", "max_connections_per_ip", "hello_timeout_s", "idle_timeout_s", "frame_timeout_s",
    "max_bets_per_agency",
)


def _log_config(config: ServerConfig) -> None:
    shown = {name: getattr(config, name) for name in CONFIG_FIELDS}
    log_action(logger, logging.INFO, "config", Result.SUCCESS, **shown, tls="on" if config.tls_enabled else "off")
    limits = {name: getattr(config, name) for name in LIMIT_FIELDS}
    log_action(logger, logging.INFO, "limits", Result.SUCCESS, **limits)
    if not config.tls_enabled:
        # No `action:` on purpose: not a failure, but it must be read.
        logger.warning(
            "agencies are not authenticated: TLS is off, so any peer can act as any agency "
            "(set SERVER_TLS_CERT, SERVER_TLS_KEY and SERVER_TLS_CA; see python -m tools.credentials)"
        )


def run(config: ServerConfig, new_contest: bool = False) -> int:
    """Serve until SIGTERM or SIGINT. Returns the process exit code."""
    stop_requested = Event()

    def on_signal(signum: int) -> None:
        log_action(logger, logging.INFO, "shutdown", Result.IN_PROGRESS, signal=signal.Signals(signum).name)
        stop_requested.set()

    STOP.attach(on_signal)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # a close-sales before SalesWatch listens: read at its start
    try:
        tls_context(config)  # bad TLS files fail here, before the data directory is touched
    except ConfigError as exc:
        log_action(logger, logging.ERROR, "tls_setup", Result.FAIL, error=exc)
        STOP.detach()
        return 2
    try:
        refused = _enter_data_dir(config, new_contest)
        if refused is not None:
            return refused
        return _serve(config, stop_requested)
    finally:
        STOP.detach()


def _serve(config: ServerConfig, stop_requested: Event) -> int:
    _raise_fd_limit(config.max_connections + SPARE_FDS)
    # A thread-pool worker whose fsync returned needs the GIL back to report it;
    # by default it waits up to 5 ms for the busy event loop to let go, and every
    # acknowledgement waiting on that fsync waits with it.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    store = BetStore()
    try:
        store.open()
    except (StorageFailure, OSError) as exc:
        log_action(logger, logging.ERROR, "storage_recovery", Result.FAIL, error=exc)
        return 1
    lottery = Lottery(store, config.agencies)
    try:
        server = LotteryServer(config, store, lottery)
    except ConfigError as exc:
        log_action(logger, logging.ERROR, "tls_setup", Result.FAIL, error=exc)
        store.close()
        return 2
    reload = gevent.signal_handler(signal.SIGHUP, server.reload_crl)  # before `listen`: a test may signal then
    try:
        server.start()
    except OSError as exc:
        log_action(logger, logging.ERROR, "listen", Result.FAIL, ip=config.ip, port=config.port, error=exc)
        store.close()
        return 1
    status = StatusServer(server, config.status_port) if config.status_port is not None else None
    if status is not None and not status.start():
        server.stop()
        return 1
    lottery.start()
    sales = SalesWatch(config.data_dir, lottery, config.sales_close_at)
    sales.start()
    gevent.wait([stop_requested, store.failed], count=1)
    sales.stop()
    if status is not None:
        status.stop()
    reload.cancel()
    server.stop()
    if store.failed.ready():  # the store logged why; exit 1 so that a supervisor restarts us
        log_action(logger, logging.INFO, "shutdown", Result.SUCCESS, exit_code=1)
        return 1
    log_action(logger, logging.INFO, "shutdown", Result.SUCCESS)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"lottery_gevent: config error: {exc}", file=sys.stderr)
        return 2
    config = _absolute_paths(config)
    setup_logging(config.logging_level)
    if args.command == "close-sales":
        return close_sales_command(config.data_dir)
    _log_config(config)
    return run(config, args.new_contest)


if __name__ == "__main__":
    sys.exit(main())
