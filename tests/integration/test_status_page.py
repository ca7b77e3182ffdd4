"""The status page in a real browser: headless Chromium (Debian's `chromium` package) renders
every agency's progress from a running server and shows it move as bets arrive.

Chromium missing: the test skips, except in CI (REQUIRE_DOCKER=1 or REQUIRE_BROWSER=1), where it fails.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.domain import BetFields
from shared.protocol import Bets, BetsAck, Done, DoneAck, Hello
from tests.rawclient import RawPeer
from tests.support.processes import ServerProcess
from tools.generate_agencies import Agency

#: Bound on one browser run.
BROWSER_TIMEOUT_S = 90.0
#: Page time the browser runs the page's script for: the page polls /status every second.
VIRTUAL_TIME_MS = 3500
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--virtual-time-budget={VIRTUAL_TIME_MS}",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("REQUIRE_DOCKER") == "1" or os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (CI: apt-get install -y chromium)")
        pytest.skip("chromium is not installed")
    return found


def rendered(browser: str, profile: Path, port: int) -> str:
    """The page's DOM after its script ran for VIRTUAL_TIME_MS of page time."""
    command = [browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom", f"http://127.0.0.1:{port}/"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=True)
    return done.stdout


def agencies_shown(dom: str) -> dict[int, int]:
    """agency -> the stored count its row shows."""
    rows = re.findall(r'<div class="agency[^"]*" id="agency-(\d+)" data-stored="(\d+)"', dom)
    return {int(agency): int(stored) for agency, stored in rows}


def updates(dom: str) -> int:
    match = re.search(r'data-updates="(\d+)"', dom)
    assert match is not None, dom
    return int(match.group(1))


def rows_of(agency: Agency) -> list[BetFields]:
    with open(agency.path, newline="", encoding="utf-8") as file:
        return [BetFields(*row) for row in csv.reader(file) if row]


def test_the_page_renders_every_agency_and_follows_the_contest(
    start_server: Callable[..., ServerProcess], make_agencies: Callable[..., list[Agency]], tmp_path: Path
) -> None:
    browser = chromium()
    first, second, _ = make_agencies(3, 100, [1, 1, 0])
    server = start_server(agencies=3, env={"SERVER_STATUS_PORT": "0"})
    port = int(server.wait_for_action("status_listen")["port"])
    one, two = rows_of(first), rows_of(second)
    with RawPeer(server.port) as peer, RawPeer(server.port) as other:
        peer.request(Hello(1, len(one)))
        assert peer.request(Bets(0, tuple(one[:40]))) == BetsAck(40)
        other.request(Hello(2, len(two)))
        assert other.request(Bets(0, tuple(two))) == BetsAck(100)
        assert other.request(Done()) == DoneAck()

        before = rendered(browser, tmp_path / "profile", port)
        assert agencies_shown(before) == {1: 40, 2: 100, 3: 0}
        assert updates(before) >= 2  # it polled, more than once
        assert "40 / 100 bets, connected" in before and "100 / 100 bets, done" in before
        assert "the draw waits for agencies 1, 3" in before and "sales open" in before

        assert peer.request(Bets(40, tuple(one[40:]))) == BetsAck(100)
        assert peer.request(Done()) == DoneAck()
        after = rendered(browser, tmp_path / "profile", port)
        assert agencies_shown(after) == {1: 100, 2: 100, 3: 0}
        assert "the draw waits for agencies 3" in after
    for bet in one + two:
        assert not re.search(rf"\b{bet.document}\b", before + after)
