"""Fake sockets for the transport tests (fakes over mocks, never sleep).

`FakeSocket` plays a script: `recv` hands out the scripted bytes in small
pieces (at most `recv_limit` per call, or seeded-random sizes), raises the
scripted exceptions when it reaches them, and returns b"" (EOF) when the script
runs out. `send` accepts only part of what it is given. Models: redis-py
`tests/mocks.py` (every recv cut short), httpcore `_backends/mock.py` (a list
of chunks), trio `_memory_streams.py` (chunk sizes from a fixed seed).

`BlockingFakeSocket` blocks, cooperatively, where a `FakeSocket` would report
EOF: its `recv` waits on a gevent Event nobody sets, so only a gevent.Timeout
can end the wait.
"""

from __future__ import annotations

import random
import socket
from collections import deque

import gevent.event

ScriptItem = bytes | BaseException


class FakeSocket:
    """A scripted stream socket.

    Args:
        *script: bytes to deliver and exceptions to raise, in order.
        recv_limit: most bytes one recv returns (None: as many as asked).
        seed: if given, each recv returns a random 1..`max_chunk` bytes from
            random.Random(seed), still capped by `recv_limit` and the request.
        max_chunk: the largest random chunk.
        send_limit: most bytes one send accepts (None: all of them).
        send_script: per send call, in order: an int caps what that call
            accepts, an exception is raised instead; then `send_limit` applies.
    """

    def __init__(
        self,
        *script: ScriptItem,
        recv_limit: int | None = None,
        seed: int | None = None,
        max_chunk: int = 7,
        send_limit: int | None = None,
        send_script: tuple[int | BaseException, ...] = (),
    ) -> None:
        self._script: deque[ScriptItem] = deque(item for item in script if item != b"")
        self._recv_limit = recv_limit
        self._rng = random.Random(seed) if seed is not None else None
        self._max_chunk = max_chunk
        self._send_limit = send_limit
        self._send_script: deque[int | BaseException] = deque(send_script)
        #: Everything send() accepted, in order.
        self.sent = bytearray()
        #: The size asked of each recv call.
        self.recv_sizes: list[int] = []
        #: How many bytes each send call accepted.
        self.send_counts: list[int] = []

    def settimeout(self, timeout: float | None) -> None:
        """Recorded and otherwise ignored: timeouts are scripted (a TimeoutError in the script)."""
        self.timeout = timeout

    def close(self) -> None:
        self.closed = True

    @property
    def unread(self) -> bytes:
        """The scripted bytes no recv has returned yet (up to the next exception)."""
        out = bytearray()
        for item in self._script:
            if isinstance(item, BaseException):
                break
            out += item
        return bytes(out)

    def _on_end_of_script(self) -> bytes:
        return b""

    def recv(self, size: int, flags: int = 0, /) -> bytes:
        assert size > 0, "recv(0) would be indistinguishable from EOF"
        self.recv_sizes.append(size)
        if not self._script:
            return self._on_end_of_script()
        head = self._script[0]
        if isinstance(head, BaseException):
            self._script.popleft()
            raise head
        if flags & socket.MSG_PEEK:
            return head[:size]
        take = min(size, len(head))
        if self._recv_limit is not None:
            take = min(take, self._recv_limit)
        if self._rng is not None:
            take = min(take, self._rng.randint(1, self._max_chunk))
        chunk, rest = head[:take], head[take:]
        if rest:
            self._script[0] = rest
        else:
            self._script.popleft()
        return chunk

    def send(self, data: bytes | memoryview, /) -> int:
        limit: int | None = self._send_limit
        if self._send_script:
            step = self._send_script.popleft()
            if isinstance(step, BaseException):
                raise step
            limit = step
        accepted = len(data) if limit is None else min(limit, len(data))
        if self._rng is not None and accepted > 1:
            accepted = self._rng.randint(1, accepted)
        self.sent += bytes(data[:accepted])
        self.send_counts.append(accepted)
        return accepted


class BlockingFakeSocket(FakeSocket):
    """A FakeSocket whose recv blocks (cooperatively, forever) once its script runs out."""

    def __init__(self, *script: ScriptItem, **options: object) -> None:
        super().__init__(*script, **options)  # type: ignore[arg-type]
        self._never = gevent.event.Event()
        #: How many recv calls have blocked.
        self.blocked = 0

    def _on_end_of_script(self) -> bytes:
        self.blocked += 1
        self._never.wait()
        raise AssertionError("unreachable: the event is never set")
