"""One contest on this machine, without Docker: ``python3 -m tools.run_local`` (what ``make run`` runs).

    python3 -m tools.run_local [--agencies N] [--data DIR] [--port P] [--keep-contest] [--progress auto|on|off]

Starts the server (its data directory DIR/server, a new contest unless
--keep-contest) and agencies 1..N (DIR/agency-K.csv) as child processes.
Without a terminal (or with --progress off) it prints every line of theirs
prefixed with its process name; on a terminal (or with --progress on) it shows
one live line per agency (a bar of its bets stored, then its winners and exit
code) and writes each process's full log to DIR/server/logs/NAME.log. When
every agency has ended, it stops the server and prints one table: agency, bets,
winners, exit code. Exit code 0 only if every agency got its winners.

Ctrl-C (SIGINT), SIGTERM or SIGHUP stops every child (agencies first, then the
server; SIGKILL for any that outlive STOP_TIMEOUT_S) before the table is
printed: nothing is left running and the port is free.
"""

# Strategy: the children run in sessions of their own, so a terminal's Ctrl-C
# reaches only this runner, which then stops them in order. A reader thread
# per child copies its output, prefixed, and notes the lines the table needs
# (the server's `listen` port, each agency's `cant_ganadores`). The main thread
# only waits: for the server's listen line (an Event), then for each agency's
# exit; a stop signal interrupts that wait with an exception.
from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType

#: The repository root: children import the project from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: How long a child gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0
#: How long the server gets to start listening.
LISTEN_TIMEOUT_S = 60.0
#: The columns of the final table.
TABLE_HEADER = ("agency", "bets", "winners", "exit code")

_LISTEN = re.compile(r"action: listen \| result: success .*\bport: (?P<port>\d+)")
_WINNERS = re.compile(r"action: consulta_ganadores \| result: success \| cant_ganadores: (?P<count>\d+)")
_STORED = re.compile(
    r"action: apuesta_recibida \| result: success \| cantidad: (?P<count>\d+) \| agency: (?P<agency>\d+)"
)
_print_lock = threading.Lock()
#: Seconds between two redraws of the live progress lines.
REDRAW_S = 0.25
BAR_WIDTH = 30


class Stop(Exception):
    """A stop signal arrived."""


class Child:
    """One child process whose output is copied to ours, each line prefixed with `name`."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], width: int, log: Path | None = None
    ) -> None:
        """`log`: write the lines to that file instead of our output (live progress mode)."""
        self.name = name
        self.process = subprocess.Popen(
            list(argv),
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # our Ctrl-C is ours to forward, in order
        )
        self._prefix = f"{name:<{width}} | "
        self.listening = threading.Event()
        self.port: int | None = None
        self.winners: int | None = None
        #: Bets the server acknowledged, per agency (read from the server's lines).
        self.stored: dict[int, int] = {}
        self._log = open(log, "a", encoding="utf-8") if log is not None else None  # noqa: SIM115 (closed by _copy)
        self._show(f"run_local: started, pid {self.process.pid}")
        self._reader = threading.Thread(target=self._copy, daemon=True)
        self._reader.start()

    def _copy(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if self.port is None and (match := _LISTEN.search(line)):
                self.port = int(match["port"])
                self.listening.set()
            if match := _WINNERS.search(line):
                self.winners = int(match["count"])
            if match := _STORED.search(line):
                agency = int(match["agency"])
                self.stored[agency] = self.stored.get(agency, 0) + int(match["count"])
            self._show(line)
        self.listening.set()  # the output ended: nobody waits for a listen line that cannot come
        if self._log is not None:
            self._log.close()

    def _show(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()
            return
        with _print_lock:
            print(self._prefix + line, flush=True)

    def stop(self) -> int:
        """SIGTERM, wait, SIGKILL if it outlives STOP_TIMEOUT_S; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(STOP_TIMEOUT_S)
        return code


# --- credentials (mutual TLS: tools/credentials.py) -------------------------------


def credentials(directory: Path, agencies: int) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
    """The TLS environment of the server and of each agency.

    Makes the files with ``python -m tools.credentials DIR --agencies N`` unless they all exist.
    """
    agency_files = [f"agency-{k}.{ext}" for k in range(1, agencies + 1) for ext in ("pem", "key")]
    wanted = ["ca.pem", "server.pem", "server.key", "crl.pem", *agency_files]
    if not all((directory / name).exists() for name in wanted):
        subprocess.run(
            [sys.executable, "-m", "tools.credentials", str(directory), "--agencies", str(agencies)],
            cwd=REPO_ROOT,
            check=True,
        )
    server = {
        "SERVER_TLS_CERT": str(directory / "server.pem"),
        "SERVER_TLS_KEY": str(directory / "server.key"),
        "SERVER_TLS_CA": str(directory / "ca.pem"),
        "SERVER_TLS_CRL": str(directory / "crl.pem"),
    }
    clients = {
        k: {
            "CLI_TLS_CA": str(directory / "ca.pem"),
            "CLI_TLS_CERT": str(directory / f"agency-{k}.pem"),
            "CLI_TLS_KEY": str(directory / f"agency-{k}.key"),
        }
        for k in range(1, agencies + 1)
    }
    return server, clients


# ---------------------------------------------------------------------------------


def count_bets(path: Path) -> int | None:
    """Rows in an agency file (None if it cannot be read)."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as file:
            return sum(1 for row in csv.reader(file) if row)
    except (OSError, csv.Error):
        return None


def progress_lines(server: Child, clients: Mapping[int, Child], totals: Mapping[int, int | None]) -> list[str]:
    """One line per agency: a bar of its stored bets, then its winners and exit code once known."""
    lines = []
    for k, client in clients.items():
        stored, total = server.stored.get(k, 0), totals.get(k) or 0
        filled = BAR_WIDTH * min(stored, total) // total if total else 0
        state = "running" if client.process.poll() is None else f"exit code {client.process.returncode}"
        winners = "" if client.winners is None else f", winners: {client.winners}"
        lines.append(
            f"agency-{k:<3} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {stored}/{total} bets, {state}{winners}"
        )
    return lines


class LiveProgress:
    """Redraws the progress lines in place, every REDRAW_S, until stopped (then once more)."""

    def __init__(self, render: Callable[[], list[str]]) -> None:
        self._render = render
        self._drawn = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(REDRAW_S):
            self.draw()

    def draw(self) -> None:
        lines = self._render()
        with _print_lock:
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            print(up + "".join(f"\x1b[2K{line}\n" for line in lines), end="", flush=True)
            self._drawn = len(lines)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.draw()


def format_table(rows: Sequence[Sequence[object]]) -> str:
    """A plain text table with TABLE_HEADER; a missing value shows as '-'."""
    cells = [list(TABLE_HEADER)] + [["-" if value is None else str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE_HEADER))]
    lines = [" | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _on_signal(signum: int, _: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def run(agencies: int, data: Path, port: int, new_contest: bool, progress: bool = False) -> int:
    """Run one contest; returns the exit code (see the module docstring)."""
    logs = data / "server" / "logs"
    if progress:
        logs.mkdir(parents=True, exist_ok=True)
        print(f"run_local: full logs in {logs}/", flush=True)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    server_tls, client_tls = credentials(data / "credentials", agencies)
    width = len(f"agency-{agencies}")
    server_env = {
        "SERVER_IP": "127.0.0.1",
        "SERVER_PORT": str(port),
        "SERVER_AGENCIES": str(agencies),
        "SERVER_DATA_DIR": str(data / "server"),
        **server_tls,
    }
    argv = [sys.executable, "-m", "lottery_gevent", *(["--new-contest"] if new_contest else [])]
    clients: dict[int, Child] = {}
    codes: dict[int, int] = {}
    server: Child | None = None
    stopped = ""
    live: LiveProgress | None = None
    try:
        server = Child("server", argv, server_env, width, logs / "server.log" if progress else None)
        if not server.listening.wait(LISTEN_TIMEOUT_S) or server.port is None:
            print(f"run_local: the server did not start listening (exit code {server.stop()})", file=sys.stderr)
            return 1
        for k in range(1, agencies + 1):
            env = {
                "CLI_ID": str(k),
                "CLI_SERVER_ADDRESS": f"127.0.0.1:{server.port}",
                "CLI_BETS_FILE": str(data / f"agency-{k}.csv"),
                **client_tls.get(k, {}),
            }
            log = logs / f"agency-{k}.log" if progress else None
            clients[k] = Child(f"agency-{k}", [sys.executable, "-m", "client_gevent"], env, width, log)
        if progress:
            totals = {k: count_bets(data / f"agency-{k}.csv") for k in clients}
            live = LiveProgress(lambda: progress_lines(server, clients, totals))
        for k, client in clients.items():
            codes[k] = client.process.wait()
    except Stop as exc:
        stopped = str(exc)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for k, client in clients.items():
            codes[k] = client.stop()
        if server is not None:
            server.stop()
        if live is not None:
            live.stop()
    rows = [(k, count_bets(data / f"agency-{k}.csv"), clients[k].winners, codes.get(k)) for k in clients]
    print(format_table(rows), flush=True)
    answered = len(clients) == agencies and all(clients[k].winners is not None and codes.get(k) == 0 for k in clients)
    if stopped:
        print(f"run_local: stopped by {stopped}; every child has ended", file=sys.stderr)
    return 0 if answered and not stopped else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.run_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--agencies", type=int, default=5, help="agencies 1..N (default 5)")
    parser.add_argument("--data", type=Path, default=Path(".data"), help="agency files and the server's data (.data)")
    parser.add_argument("--port", type=int, default=12345, help="the server's port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--keep-contest", action="store_true", help="resume the current contest instead of a new one")
    parser.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="live lines per agency, full logs to files (auto: when the output is a terminal)",
    )
    args = parser.parse_args(argv)
    if args.agencies < 1:
        parser.error("--agencies must be at least 1")
    progress = args.progress == "on" or (args.progress == "auto" and sys.stdout.isatty())
    return run(args.agencies, args.data.absolute(), args.port, not args.keep_contest, progress)


if __name__ == "__main__":
    sys.exit(main())
