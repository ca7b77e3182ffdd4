"""The server container's health probe: is the server accepting connections?

    python3 /opt/lottery/healthcheck.py        (exit 0: healthy, 1: not)

Strategy: probe exactly the address the server listens on, by reading the config
the way the server does (lottery_gevent.config.load_config: the mounted
config.ini, overridden by the container's environment). A wildcard listen address
means "every interface", so the probe uses loopback; a hostname such as `server`
resolves, inside the container, to the container's own network address.

The probe connects and closes without sending a byte: the server logs such a
connection at DEBUG only, so a probe every second adds nothing to the INFO log
(an inline echo would add a `receive_message` line each time).
"""

from __future__ import annotations

import socket
import sys

from lottery_gevent.config import ConfigError, load_config

#: Listen addresses that mean "all interfaces", and the address that reaches them.
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}
#: A healthy server accepts at once; this only bounds a wedged one.
CONNECT_TIMEOUT_S = 2.0


def main() -> int:
    try:
        config = load_config(None)
    except ConfigError as exc:
        print(f"healthcheck: config error: {exc}", file=sys.stderr)
        return 1
    host = WILDCARDS.get(config.ip, config.ip)
    try:
        with socket.create_connection((host, config.port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        print(f"healthcheck: cannot connect to {host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
