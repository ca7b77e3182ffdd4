"""Start a server subprocess with some module constants changed, before `lottery_gevent.__main__` runs.

`interpreter_args(constants)` goes to ServerProcess(interpreter_args=...): a
`-c` program sets each "package.module.NAME" to its value, then runs the
server module as `-m lottery_gevent` would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.processes import ServerProcess


def interpreter_args(constants: Mapping[str, object]) -> list[str]:
    lines = ["import importlib, runpy, sys"]
    for dotted, value in constants.items():
        module, name = dotted.rsplit(".", 1)
        lines.append(f"setattr(importlib.import_module({module!r}), {name!r}, {value!r})")
    lines.append("sys.argv = ['lottery_gevent', *sys.argv[3:]]")  # drop the '-m lottery_gevent' that follows
    lines.append("runpy.run_module('lottery_gevent', run_name='__main__', alter_sys=True)")
    return ["-c", "\n".join(lines)]


@pytest.fixture(name="start_patched_server")
def patched_server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory like conftest's start_server, plus `constants`; every server is stopped at teardown."""
    started: list[ServerProcess] = []

    def start(constants: Mapping[str, object], agencies: int = 3, env: dict[str, str] | None = None) -> ServerProcess:
        workdir = tmp_path / f"server-{len(started)}"
        workdir.mkdir()
        server = ServerProcess(workdir, agencies=agencies, env=env, interpreter_args=interpreter_args(constants))
        started.append(server)
        return server.wait_listening()

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()
        server.kill()
