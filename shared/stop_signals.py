# Contract: catch SIGTERM and SIGINT from a program's first moment, not from when
# its event loop is ready: as PID 1 in a container, it ignores a signal it has no
# handler for, so a `docker stop` during start-up would end in SIGKILL.
# `StopSignals()` records stop signals; `attach` hands them to gevent's loop and
# replays what was recorded: a signal is never lost, always handled the same way.
from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Stop signals, recorded early and delivered to one callback once attached."""

    def __init__(self) -> None:
        self._early: list[int] = []
        self._watchers: list[Any] = []
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda received, _frame: self._early.append(received))

    def attach(self, on_signal: Callable[[int], None]) -> None:
        """From now on call `on_signal(signum)` in the event loop; first for any signal already received."""
        import gevent  # only here: creating a StopSignals must stay cheap

        self._watchers = [gevent.signal_handler(signum, on_signal, signum) for signum in STOP_SIGNALS]
        early, self._early = self._early, []
        for signum in early:
            on_signal(signum)

    def detach(self) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        self._watchers = []
