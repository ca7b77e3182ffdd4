"""A TCP proxy for tests that damages the link between clients and the server.

It can (each optional, all seeded so runs repeat):
  - chop: forward at most `chunk` bytes per send (1 = one byte per TCP segment,
    since both sockets have TCP_NODELAY set);
  - delay: pause a random 50-200 ms (any range) before forwarding each chunk;
  - reset: abort a connection with an RST once it has carried a chosen number of
    bytes, cutting frames at arbitrary points;
  - record: keep a copy of every byte it forwards, both ways (a capture of the
    link, for tests that check what crosses it in clear).

Threads, not greenlets: the proxy runs beside a test process that is not gevent
patched. The delay is the simulated latency of the link, not synchronisation.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
from collections.abc import Callable

#: How long the proxy waits for the server to accept its upstream connection.
_CONNECT_TIMEOUT_S = 5.0


def _abort(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """Listens on 127.0.0.1:`port` (chosen free) and forwards to 127.0.0.1:`target_port`.

    Args:
        target_port: where the real server listens.
        chunk: forward at most this many bytes per send (None: as received).
        delay_s: (low, high) pause before each forwarded chunk, or None.
        reset_after: for the n-th connection (0-based), after how many bytes
            (both directions together) to reset it; None means never.
        seed: seeds the delays.
        record: append every forwarded byte to `recorded`.
    """

    def __init__(
        self,
        target_port: int,
        *,
        chunk: int | None = None,
        delay_s: tuple[float, float] | None = None,
        reset_after: Callable[[int], int | None] | None = None,
        seed: int = 0,
        record: bool = False,
    ) -> None:
        self._target = ("127.0.0.1", target_port)
        self._chunk = chunk
        self._delay = delay_s
        self._reset_after = reset_after or (lambda _: None)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._stop = threading.Event()
        # One byte written here by close() leaves it readable for good: every thread
        # blocked in select() on it wakes up, so none needs a polling interval.
        self._wake, self._waker = socket.socketpair()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        #: Connections accepted, and connections reset on purpose.
        self.connections = 0
        self.resets = 0
        self._record = record
        #: With `record`: the bytes forwarded, both directions interleaved in arrival order.
        self.recorded = bytearray()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and forwarding, close every socket, join the threads. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._waker.send(b"x")
        self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                sock.close()
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)
        self._wake.close()
        self._waker.close()

    def _accept_loop(self) -> None:
        while True:
            readable, _, _ = select.select([self._listener, self._wake], [], [])
            if self._wake in readable:
                return
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=_CONNECT_TIMEOUT_S)
            except OSError:
                _abort(downstream)
                continue
            index = self.connections
            self.connections += 1
            budget = [self._reset_after(index)]
            link = threading.Lock()
            for sock in (downstream, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
            with self._lock:
                self._sockets.update((downstream, upstream))
                for source, sink in ((downstream, upstream), (upstream, downstream)):
                    thread = threading.Thread(
                        target=self._pump, args=(source, sink, budget, link, (downstream, upstream)), daemon=True
                    )
                    self._threads.append(thread)
                    thread.start()

    def _pause(self) -> None:
        if self._delay is not None:
            with self._rng_lock:
                pause = self._rng.uniform(*self._delay)
            self._stop.wait(pause)  # the link's latency; cut short when the proxy closes

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        budget: list[int | None],
        link: threading.Lock,
        pair: tuple[socket.socket, socket.socket],
    ) -> None:
        try:
            while True:
                readable, _, _ = select.select([source, self._wake], [], [])
                if self._wake in readable:
                    return
                data = source.recv(65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                if self._record:
                    with self._lock:
                        self.recorded += data
                step = self._chunk or len(data)
                for offset in range(0, len(data), step):
                    piece = data[offset : offset + step]
                    with link:
                        remaining = budget[0]
                        if remaining is not None and remaining <= len(piece):
                            sink.sendall(piece[:remaining])
                            self.resets += 1
                            for sock in pair:
                                _abort(sock)
                            return
                        if remaining is not None:
                            budget[0] = remaining - len(piece)
                    self._pause()
                    sink.sendall(piece)
        except (OSError, ValueError):  # ValueError: select() on a socket closed meanwhile
            for sock in pair:
                sock.close()
