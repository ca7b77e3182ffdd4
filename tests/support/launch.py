"""Run a program's main with some module constants replaced: a test's way to shorten them.

    python -m tests.support.launch MODULE CONSTANTS_JSON [ARG ...]

CONSTANTS_JSON maps "package.module.NAME" to a JSON value; each module is imported,
its NAME set, and then MODULE runs as ``python -m MODULE ARG ...`` would.
"""

from __future__ import annotations

import importlib
import json
import runpy
import sys


def main() -> None:
    module, constants, *args = sys.argv[1:]
    for dotted, value in json.loads(constants).items():
        owner, _, name = dotted.rpartition(".")
        setattr(importlib.import_module(owner), name, value)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
