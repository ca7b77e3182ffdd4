"""Run a module as __main__ with os.fsync and os.fdatasync made no-ops: the non-durable column.

    python -m bench.nofsync_server -m lottery_gevent [ARGS...]

Guarantees: the server runs its own code unchanged (acknowledgements still wait for their
"fsync", which now returns at once), so the durable/non-durable ratio is the disk's cost alone.
Never used outside the benchmarks: a server started this way loses acknowledged bets on a crash.
"""

from __future__ import annotations

import os
import runpy
import sys


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "-m":
        sys.exit("usage: python -m bench.nofsync_server -m MODULE [ARGS...]")
    os.fsync = os.fdatasync = lambda fd: None
    module = sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
