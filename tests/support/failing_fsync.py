"""Run a module with a disk that starts failing: from the Nth fsync of bets.csv on, os.fsync raises EIO.

    python -m tests.support.failing_fsync N -m lottery_gevent [ARGS...]

For a server subprocess: ``ServerProcess(..., interpreter_args=failing_fsync_args(N))``.
Only fsyncs of a file named bets.csv count and fail (found through /proc/self/fd, so Linux
only); the contest id, the directory and the done log sync as usual.
"""

from __future__ import annotations

import errno
import os
import runpy
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING
from unittest import mock

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

BETS_FILENAME = "bets.csv"


def failing_fsync_args(fail_from: int) -> list[str]:
    """Interpreter arguments that run the following ``-m MODULE`` with this fault."""
    return ["-m", __name__, str(fail_from)]


def failing_fsync(fail_from: int) -> Callable[[FileDescriptorLike], None]:
    """An os.fsync that raises EIO from the `fail_from`-th call on a bets.csv descriptor (1-based)."""
    real = os.fsync
    lock = threading.Lock()  # fsync runs on the server's thread pool
    seen = 0

    def fsync(fd: FileDescriptorLike) -> None:
        nonlocal seen
        number = fd if isinstance(fd, int) else fd.fileno()
        if os.path.basename(os.readlink(f"/proc/self/fd/{number}")) == BETS_FILENAME:
            with lock:
                seen += 1
                failing = seen >= fail_from
            if failing:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    return fsync


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "-m":
        sys.exit(f"usage: python -m {__name__} N -m MODULE [ARGS...]")
    fail_from, module = int(argv[0]), argv[2]
    sys.argv = [module, *argv[3:]]
    with mock.patch("os.fsync", failing_fsync(fail_from)):
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
