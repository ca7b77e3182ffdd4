"""Run an agency client: ``python -m client_gevent [--config PATH]``.

The work runs in its own greenlet; SIGTERM or SIGINT kills it wherever it is, closing its socket.
Exit codes: 0 on success or on a stop signal, 1 if the job failed, 2 for a bad configuration,
3 if sales closed before all its bets were stored (it still got its winners among those stored)."""

from __future__ import annotations

from shared.stop_signals import StopSignals

STOP = StopSignals()  # before anything slow: a stop signal during start-up still stops cleanly

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import gevent

from client_gevent.backoff import Backoff
from client_gevent.bets_source import CsvBets, SingleBet
from client_gevent.config import DEFAULT_CONFIG_PATH, SETTINGS, SINGLE_BET_VARIABLES, ClientConfig, load_config
from client_gevent.lottery_mode import LotteryAgency
from shared.config import help_epilog
from shared.errors import ConfigError
from shared.logs import Result, log_action, setup_logging

logger = logging.getLogger("client_gevent")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    intro = "settings (config.yaml's dotted keys; '-': environment only; the environment overrides each):"
    single = f"\n\n{', '.join(SINGLE_BET_VARIABLES)}, all set, send that single bet instead of the file."
    parser = argparse.ArgumentParser(
        prog="python -m client_gevent",
        description="Lotería Nacional agency: uploads its bets from a CSV file and asks for its winners\n"
        "(CLI_MODE=lottery), or sends numbered echo messages (CLI_MODE=echo).",
        epilog=help_epilog(intro, SETTINGS) + single,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, metavar="PATH", help=f"default: {DEFAULT_CONFIG_PATH}, if present")
    parser.add_argument("--allow-empty", action="store_true", help="an empty bets file is not an error (no bets sent)")
    return parser.parse_args(argv)


def run(config: ClientConfig) -> int:
    """Run the configured mode until done or stopped. Returns the exit code."""
    backoff = Backoff(config.retry_timeout.seconds, config.client_id)
    if config.mode == "echo":
        from client_gevent.echo_mode import run_echo_loop  # only echo mode pays for its imports

        worker = gevent.spawn(run_echo_loop, config, backoff)
    else:
        source = SingleBet(config.single_bet) if config.single_bet else CsvBets(config.bets_file)
        worker = gevent.spawn(LotteryAgency(config, source, backoff).run)

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        log_action(logger, logging.INFO, "shutdown", Result.IN_PROGRESS, client_id=config.client_id, signal=name)
        worker.kill(block=False)  # GreenletExit: the worker ends where it is

    STOP.attach(on_signal)
    try:
        worker.join()
    finally:
        STOP.detach()
    if isinstance(worker.value, gevent.GreenletExit):
        log_action(logger, logging.INFO, "close_connection", Result.SUCCESS, client_id=config.client_id)
        log_action(logger, logging.INFO, "shutdown", Result.SUCCESS, client_id=config.client_id)
        return 0
    return int(worker.get())  # re-raises if the worker crashed: that is a bug, let it show


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        config = load_config(args.config, allow_empty=args.allow_empty)
    except ConfigError as exc:
        print(f"client_gevent: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    log_action(logger, logging.INFO, "config", Result.SUCCESS, **config.log_fields())
    return run(config)


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skips a teardown of gevent, ssl and yaml that would release nothing
