"""Broken and slow links between the agencies and the server: connections reset at
random byte offsets, one byte per TCP segment, and 50-200 ms of latency per chunk.
Every case must end exactly as a clean run does."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import (
    check_exact_result,
    dataset_paths,
    start_clients,
)
from tests.proxy import FaultProxy
from tests.support.processes import ServerProcess

SEED = 4_2026
#: Connections (in accept order) that the proxy resets, and the byte range of the cut.
RESET_CONNECTIONS = 20
RESET_RANGE = (1, 400_000)


def test_connection_resets_at_random_offsets(
    start_server: Callable[..., ServerProcess], real_dataset: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    cuts = [rng.randint(*RESET_RANGE) for _ in range(RESET_CONNECTIONS)]
    server = start_server(agencies=5)
    paths = dataset_paths(real_dataset)
    with FaultProxy(server.port, reset_after=lambda n: cuts[n] if n < len(cuts) else None) as proxy:
        clients = start_clients(tmp_path, paths, dict.fromkeys(paths, proxy.port))
        check_exact_result(server, clients, paths)
        resets, connections = proxy.resets, proxy.connections
    print(f"{resets} connections reset, of {connections}")
    assert resets >= 10, f"only {resets} resets happened"


@pytest.mark.parametrize(
    ("link", "agencies"),
    [
        ({"chunk": 1}, (4, 5)),  # every byte in a segment of its own
        ({"delay_s": (0.05, 0.2)}, (5,)),  # 50-200 ms before each chunk, both ways
    ],
    ids=["one-byte-segments", "latency"],
)
def test_slow_and_chopped_links(
    start_server: Callable[..., ServerProcess],
    real_dataset: Path,
    tmp_path: Path,
    link: dict[str, Any],
    agencies: tuple[int, ...],
) -> None:
    """The listed agencies go through the damaged link, the others straight to the server."""
    server = start_server(agencies=5)
    paths = dataset_paths(real_dataset)
    with FaultProxy(server.port, seed=SEED, **link) as proxy:
        ports = {agency: proxy.port if agency in agencies else server.port for agency in paths}
        clients = start_clients(tmp_path, paths, ports)
        check_exact_result(server, clients, paths)
        assert proxy.connections >= len(agencies)
