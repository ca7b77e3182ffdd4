"""Fixtures for the "other hosts" tests: network namespaces joined by veth pairs.

They need root, `ip` and `iptables`. Without them the tests skip, unless
``REQUIRE_DOCKER=1`` (as in CI), which makes them fail: CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.netns.hosts import Host, HostNetwork, problem


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this directory `hosts` (deselect with -m 'not hosts')."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.hosts)


@pytest.fixture
def host_network() -> Iterator[Callable[[int], list[Host]]]:
    """Factory: `count` namespace hosts; all of them (and their rules) are removed after the test."""
    reason = problem()
    if reason is not None:
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"REQUIRE_DOCKER=1, but {reason}", pytrace=False)
        pytest.skip(reason)
    made: list[HostNetwork] = []

    def make(count: int) -> list[Host]:
        network = HostNetwork()
        made.append(network)  # registered before anything exists: a failure half-way is undone too
        return network.add(count)

    yield make
    left = [name for network in made for name in network.remove()]
    assert not left, f"left behind: {left}"
