"""The disk fills up mid-upload: the server refuses batches (storing nothing partial),
the agencies retry, and once space is freed everything completes, exactly once."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import file_bets, start_clients, stored_bets
from tests.support.processes import ServerProcess, winners_reported
from tools.generate_agencies import Agency

DISK_BYTES = 1024 * 1024
#: Room left beside the ballast: enough to start, far from enough to finish.
FREE_BYTES = 160 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test only (needs root, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_disk_full_then_freed(small_disk: Path, tmp_path: Path, make_agencies: Callable[..., list[Agency]]) -> None:
    files = make_agencies(3, 2_000, [2, 1, 0])
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (DISK_BYTES - FREE_BYTES))
    server = ServerProcess(small_disk, agencies=3).wait_listening()
    try:
        clients = start_clients(tmp_path, {f.agency: f.path for f in files}, dict.fromkeys(range(1, 4), server.port))
        server.wait_for_line(r"action: apuesta_recibida \| result: fail .*No space left on device", timeout=60)
        refused_while_full = len([f for f in server.actions("apuesta_recibida") if f["result"] == "fail"])
        ballast.unlink()

        assert [client.wait(120) for client in clients.values()] == [0, 0, 0]
        assert [winners_reported(client) for client in clients.values()] == [2, 1, 0]
        assert server.stop() == 0
    finally:
        server.kill()
    assert refused_while_full >= 1
    assert len(server.stored_rows()) == 6_000
    assert stored_bets(server) == file_bets({f.agency: f.path for f in files})
