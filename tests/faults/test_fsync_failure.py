"""An fsync of bets.csv fails mid-upload: the server logs it once and exits 1; restarted on
the same directory it resumes exactly: every agency gets its winners, and bets.csv holds
each bet of the agencies' files exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.faults.conftest import file_bets, free_port, start_clients, stored_bets
from tests.support.failing_fsync import failing_fsync_args
from tests.support.processes import ServerProcess, winners_reported
from tools.generate_agencies import Agency

#: The first bets.csv fsync that fails: some batches are acknowledged before it.
FAIL_FROM = 4


def test_a_failed_fsync_stops_the_server_and_a_restart_resumes_exactly(
    tmp_path: Path, make_agencies: Callable[..., list[Agency]]
) -> None:
    files = make_agencies(3, 2_000, [2, 1, 0])
    paths = {f.agency: f.path for f in files}
    workdir = tmp_path / "server"
    workdir.mkdir()
    port = free_port()
    failing = ServerProcess(workdir, agencies=3, port=port, interpreter_args=failing_fsync_args(FAIL_FROM))
    failing.wait_listening()
    clients = start_clients(tmp_path, paths, dict.fromkeys(paths, port))
    try:
        assert failing.wait(60) == 1
        failures = [fields for fields in failing.actions() if fields["result"] == "fail"]
        syncs = [fields for fields in failures if fields["action"] == "storage_sync"]
        assert syncs == [
            {
                "action": "storage_sync",
                "result": "fail",
                "data_dir": str(workdir),
                "file": "bets.csv",
                "error": "fsync failed: [Errno 5] Input/output error; "
                "stopping: a restart recovers from what is on disk",
            }
        ]
        assert {fields["action"] for fields in failures} <= {"storage_sync", "apuesta_recibida"}
        acknowledged: Counter[int] = Counter()
        for fields in failing.actions("apuesta_recibida"):
            if fields["result"] == "success":
                acknowledged[int(fields["agency"])] += int(fields["cantidad"])
        assert acknowledged, "the fault came before any batch was acknowledged"
        assert failing.stored_counts() >= acknowledged  # nothing acknowledged is missing from the file
        assert "Traceback" not in failing.output(), failing.output()

        server = ServerProcess(workdir, agencies=3, port=port).wait_listening()
        try:
            assert [client.wait(120) for client in clients.values()] == [0, 0, 0]
            assert [winners_reported(client) for client in clients.values()] == [2, 1, 0]
            assert server.stop() == 0
        finally:
            server.kill()
    finally:
        failing.kill()
        for client in clients.values():
            client.kill()
    assert len(server.stored_rows()) == 6_000
    assert stored_bets(server) == file_bets(paths)
    assert "Traceback" not in server.output()
