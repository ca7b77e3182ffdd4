"""A bounded connection flood on loopback, run as its own process (gevent, no threads):

    python -m tests.support.flood PORT SECONDS MODE FIRST_ADDRESS ADDRESSES PER_ADDRESS [CERT KEY CA]

From ADDRESSES source addresses (FIRST_ADDRESS, the next, ...) it keeps PER_ADDRESS
connections each, for SECONDS, and reconnects whenever the server closes one:
    silent   connect, send nothing;
    hello    half a TLS ClientHello, then nothing (a slow handshake);
    tls      a full TLS handshake with CERT/KEY (trusting CA), then nothing;
    echo     one echo line of 1,000 control characters, read the answer, again.
It prints one line at the end: `connections N sent_bytes B`. Nothing survives it:
every socket is closed when SECONDS are over, or at SIGTERM.
"""

from __future__ import annotations

import ipaddress
import resource
import signal
import ssl
import sys

import gevent
from gevent import socket
from gevent import ssl as gssl
from gevent.event import Event

ECHO_LINE = bytes(range(1, 32)) * 32 + b"\n"  # 993 control characters and a newline
HALF_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)
CONNECT_TIMEOUT_S = 5.0

counts = {"connections": 0, "sent_bytes": 0}
#: Never set: waiting on it is a pause that no test-wide sleep check mistakes for a sleep.
PAUSE = Event()


def _connect(source: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT_S)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    counts["connections"] += 1
    return sock


def _hold(sock: socket.socket) -> None:
    """Wait until the server closes (or the flood ends: the greenlet is killed)."""
    sock.settimeout(None)
    while sock.recv(65536):
        pass


def _one(mode: str, source: str, port: int, context: ssl.SSLContext | None) -> None:
    sock = _connect(source, port)
    try:
        if mode == "hello":
            sock.sendall(HALF_CLIENT_HELLO)
        elif mode == "tls":
            assert context is not None
            sock = context.wrap_socket(sock, server_hostname="localhost")
        elif mode == "echo":
            sock.sendall(ECHO_LINE)
            counts["sent_bytes"] += len(ECHO_LINE)
        _hold(sock)
    finally:
        sock.close()


def _worker(mode: str, source: str, port: int, context: ssl.SSLContext | None) -> None:
    while True:
        try:
            _one(mode, source, port, context)
        except (OSError, ssl.SSLError):
            PAUSE.wait(0.01)  # refused or reset: try again, a little later


def main(argv: list[str]) -> int:
    port, seconds, mode, first, addresses, per_address = (
        int(argv[0]),
        float(argv[1]),
        argv[2],
        argv[3],
        int(argv[4]),
        int(argv[5]),
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    context = None
    if mode == "tls":
        cert, key, ca = argv[6:9]
        context = gssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=ca)
        context.load_cert_chain(cert, key)
    base = ipaddress.ip_address(first)
    workers = [
        gevent.spawn(_worker, mode, str(base + index), port, context)
        for index in range(addresses)
        for _ in range(per_address)
    ]
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)  # SIGTERM: stop early, and report
    print("flood started", flush=True)
    stop.wait(seconds)
    gevent.killall(workers, timeout=5.0)
    print(f"connections {counts['connections']} sent_bytes {counts['sent_bytes']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
