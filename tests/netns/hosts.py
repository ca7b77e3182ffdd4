# Strategy: stand up "other hosts" on this machine as network namespaces, each
# joined to the host by one veth pair on a /30 of its own, and drive faults with
# iptables inside a namespace (never on the host). The ranges are
# 10.231.B.(4i)/30 with B from our pid, so two test runs at once do not collide;
# host i's namespace end is .(4i+2), the host end .(4i+1). Every namespace has a
# default route through its host end, so it reaches the host's other veth
# addresses too: a server bound to host 0's host end serves all of them.
#
# Deleting a namespace deletes its veth end, which deletes the peer on the host,
# and its iptables rules with it; `HostNetwork.remove` deletes every namespace it
# made (after killing any process still inside), then checks that nothing of
# ours is left, even when the test failed.
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import LoggedProcess

#: The second octet's range, and the prefix of every name we create.
NETWORK_PREFIX = "10.231"
NAME_PREFIX = "lot"
COMMAND_TIMEOUT_S = 30.0


def problem() -> str | None:
    """Why namespaces cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "iptables") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    return None


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (ip, iptables) and capture its output.

    Raises:
        subprocess.CalledProcessError: it failed (when `check`).
    """
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=check)


@dataclass(frozen=True)
class Host:
    """One namespace "host": its name, its address, and the host's address on its link."""

    namespace: str
    veth: str
    address: str
    gateway: str

    def iptables(self, *rule: str) -> None:
        """Run ``iptables RULE`` inside this host (and only there)."""
        run("ip", "netns", "exec", self.namespace, "iptables", "-w", *rule)

    def add_loss(self, probability: float) -> None:
        """Drop that fraction of packets at random, both ways."""
        for chain in ("INPUT", "OUTPUT"):
            self.iptables("-A", chain, "-m", "statistic", "--mode", "random", "--probability", str(probability),
                          "-j", "DROP")  # fmt: skip

    def dropped(self) -> int:
        """Packets the random-loss rules have dropped so far."""
        listing = run("ip", "netns", "exec", self.namespace, "iptables", "-w", "-L", "-n", "-v", "-x").stdout
        return sum(int(line.split()[0]) for line in listing.splitlines() if "statistic mode random" in line)

    def partition(self) -> None:
        """Cut the host off: every packet in and out is dropped (first in each chain)."""
        for chain in ("INPUT", "OUTPUT"):
            self.iptables("-I", chain, "1", "-j", "DROP")

    def heal(self) -> None:
        """Undo `partition` (any random loss stays)."""
        for chain in ("INPUT", "OUTPUT"):
            self.iptables("-D", chain, "1")

    def python(self, module: str, cwd: Path, env: Mapping[str, str], args: Sequence[str] = ()) -> LoggedProcess:
        """``python3 -m MODULE`` inside this host (``ip netns exec`` execs it: the pid is Python's)."""
        argv = ["ip", "netns", "exec", self.namespace, sys.executable, "-m", module, *args]
        return LoggedProcess(argv, cwd, env)


class HostNetwork:
    """Namespaces made for one test: `add` makes hosts, `remove()` undoes all of it."""

    def __init__(self) -> None:
        self._block = os.getpid() % 256
        self._tag = f"{NAME_PREFIX}{os.getpid() % 100_000}"
        self.hosts: list[Host] = []

    def __enter__(self) -> HostNetwork:
        return self

    def __exit__(self, *_: object) -> None:
        left = self.remove()
        if left:
            raise AssertionError(f"left behind: {left}")

    def add(self, count: int) -> list[Host]:
        """Make `count` more hosts (at most 64 in all) and return them.

        Raises:
            subprocess.CalledProcessError: an ip command failed (what was made stays listed for `remove`).
        """
        added = []
        for index in range(len(self.hosts), len(self.hosts) + count):
            subnet = ipaddress.ip_network(f"{NETWORK_PREFIX}.{self._block}.{4 * index}/30")
            host = Host(f"{self._tag}h{index}", f"{self._tag}v{index}", str(subnet[2]), str(subnet[1]))
            self.hosts.append(host)  # before creating it: remove() must see a half-made host
            self._create(host)
            added.append(host)
        return added

    def _create(self, host: Host) -> None:
        inside = f"{host.veth}n"
        run("ip", "netns", "add", host.namespace)
        run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", inside, "netns", host.namespace)
        run("ip", "addr", "add", f"{host.gateway}/30", "dev", host.veth)
        run("ip", "link", "set", host.veth, "up")
        run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/30", "dev", inside)
        run("ip", "-n", host.namespace, "link", "set", inside, "up")
        run("ip", "-n", host.namespace, "link", "set", "lo", "up")
        run("ip", "-n", host.namespace, "route", "add", "default", "via", host.gateway)

    def remove(self) -> list[str]:
        """Delete every namespace (killing what still runs inside) and veth; return what was left over."""
        for host in self.hosts:
            pids = run("ip", "netns", "pids", host.namespace, check=False).stdout.split()
            for pid in pids:
                run("kill", "-9", pid, check=False)
            run("ip", "netns", "del", host.namespace, check=False)
            run("ip", "link", "del", host.veth, check=False)
        namespaces = {line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line.strip()}
        links = {
            line.split(":")[1].strip().split("@")[0] for line in run("ip", "-o", "link", "show").stdout.splitlines()
        }
        mine = [name for host in self.hosts for name in (host.namespace, host.veth)]
        return [name for name in mine if name in namespaces or name in links]
