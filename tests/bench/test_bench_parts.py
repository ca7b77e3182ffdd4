"""The bench's small parts: the no-fsync launcher, the TLS inputs, the profile parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.data import agency_context, client_tls_env, server_tls_env
from bench.profiling import parse_pyspy_raw
from tests.support.processes import REPO_ROOT
from tools.credentials import ensure_credentials

pytestmark = pytest.mark.bench
PROGRAM = "import os, sys\nos.fsync(9999)\nprint('fsync returned', sys.argv[1:])\n"


def test_the_nofsync_launcher_runs_a_module_whose_fsync_does_nothing(tmp_path: Path) -> None:
    (tmp_path / "syncs.py").write_text(PROGRAM, encoding="utf-8")
    env = {"PYTHONPATH": f"{tmp_path}:{REPO_ROOT}"}

    plain = subprocess.run([sys.executable, "-m", "syncs"], env=env, capture_output=True, text=True, timeout=60)
    launched = subprocess.run(
        [sys.executable, "-m", "bench.nofsync_server", "-m", "syncs", "--x"], env=env, capture_output=True, text=True,
        timeout=60,
    )

    assert plain.returncode != 0 and "Bad file descriptor" in plain.stderr  # the real fsync of a closed descriptor
    assert (launched.returncode, launched.stdout) == (0, "fsync returned ['--x']\n")


def test_the_tls_settings_name_existing_credentials(tmp_path: Path) -> None:
    ensure_credentials(tmp_path, 2, durable=False)

    paths = [*server_tls_env(tmp_path).values(), *client_tls_env(tmp_path, 2).values()]

    assert len(paths) == 6 and all(Path(path).is_file() for path in paths)
    assert "agency-2.pem" in client_tls_env(tmp_path, 2)["CLI_TLS_CERT"]
    assert server_tls_env(None) == {}
    assert agency_context(tmp_path, 2).verify_mode.name == "CERT_REQUIRED"


def test_pyspy_raw_output_is_aggregated_by_function() -> None:
    raw = "\n".join(
        [
            "thread (1): MainThread;run (lottery_gevent/session.py:90);store_bets (lottery_gevent/contract.py:40) 6",
            "thread (1): MainThread;run (lottery_gevent/session.py:90) 2",
            "thread (2): Thread-1;__run_task (gevent/threadpool.py:170) 2",
        ]
    )

    samples, main_share, spots = parse_pyspy_raw(raw)

    assert samples == 10
    assert main_share == pytest.approx(0.8)
    by_name = {spot[0]: spot for spot in spots}
    assert by_name["store_bets"][2:] == pytest.approx((0.6, 0.6))
    assert by_name["run"][2:] == pytest.approx((0.2, 0.8))
    assert spots[0][0] == "store_bets"
