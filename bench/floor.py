"""The floor: the least a Python process can do for a cache call, with no client at all.

One blocking socket, commands packed by hand, replies parsed by libvalkey's Reader
(this package's pure reader when libvalkey is not installed), values pickled as the
backends pickle them. No key building, no pool, no checks: what any Python cache
client must at least spend per call. Benchmark rows are divided by it ("CPU vs floor").

``BareProtocol`` is the asyncio floor: one ``asyncio.Protocol`` connection, a
future per command, commands of one loop iteration joined in one write, replies handed
to the futures in order. What any asyncio client pays per call (the future, the task's
wake-up, the loop's handle) with nothing of its own on top.
"""

from __future__ import annotations

import asyncio
import collections
import pickle
import socket
from urllib.parse import urlparse

try:
    from libvalkey import Reader
except ImportError:  # pragma: no cover - libvalkey is in the dev extra
    from django_valkey_fast._resp_py import Reader

__all__ = ["BareProtocol", "BareSocket"]


def _pack(*args: bytes) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class BareSocket:
    """The bare-socket floor, with the cache API the benchmark's workloads call."""

    def __init__(self, location: str):
        url = urlparse(location)
        self.sock = socket.create_connection((url.hostname, url.port or 6379))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = Reader()
        self.dumps, self.loads = pickle.dumps, pickle.loads
        self.roundtrip(_pack(b"CLIENT", b"SETNAME", b"bench-floor"))

    def roundtrip(self, packed: bytes, replies: int = 1):
        """Send ``packed`` and return its reply (a list of ``replies`` if more than one)."""
        self.sock.sendall(packed)
        reader, recv, results = self.reader, self.sock.recv, []
        while len(results) < replies:
            reply = reader.gets()
            if reply is False:
                reader.feed(recv(65536))
            else:
                results.append(reply)
        return results[0] if replies == 1 else results

    def get(self, key: str):
        value = self.roundtrip(_pack(b"GET", key.encode()))
        return None if value is None else self.loads(value)

    def set(self, key: str, value) -> bool:
        stored = b"%d" % value if type(value) is int else self.dumps(value)
        return self.roundtrip(_pack(b"SET", key.encode(), stored, b"PX", b"300000")) == b"OK"

    def incr(self, key: str) -> int:
        return self.roundtrip(_pack(b"INCRBY", key.encode(), b"1"))

    def get_many(self, keys: list) -> dict:
        values = self.roundtrip(_pack(b"MGET", *(key.encode() for key in keys)))
        return {key: self.loads(value) for key, value in zip(keys, values) if value is not None}

    def set_many(self, data: dict) -> None:
        dumps = self.dumps
        packed = b"".join(_pack(b"SET", key.encode(), dumps(value), b"PX", b"300000")
                          for key, value in data.items())
        self.roundtrip(packed, len(data))


class BareProtocol(asyncio.Protocol):
    """The asyncio floor, with the ``a*`` cache API the async benchmark's workloads call:
    one connection, opened by its first ``aset`` (the benchmark prepares every
    contender with one) in the loop running it, which every later call must run in."""

    def __init__(self, location: str):
        url = urlparse(location)
        self.address = (url.hostname, url.port or 6379)
        self.reader = Reader()
        self.waiters: collections.deque = collections.deque()
        self.pending: list = []
        self.transport = None
        self.dumps, self.loads = pickle.dumps, pickle.loads

    async def _connect(self):
        loop = asyncio.get_running_loop()
        self.loop = loop
        await loop.create_connection(lambda: self, *self.address)
        await self._send(_pack(b"CLIENT", b"SETNAME", b"bench-async-floor"))

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.reader.feed(data)
        gets, waiters = self.reader.gets, self.waiters
        while waiters:
            reply = gets()
            if reply is False:
                break
            future, count, replies = waiters[0]
            if replies is None:
                waiters.popleft()
                future.set_result(reply)
            else:
                replies.append(reply)
                if len(replies) == count:
                    waiters.popleft()
                    future.set_result(replies)

    def _flush(self):
        pending, self.pending = self.pending, []
        self.transport.write(b"".join(pending))

    def _send(self, packed: bytes, replies: int = 1):
        """The future of the reply to ``packed`` (a list of ``replies`` if more than one)."""
        future = self.loop.create_future()
        self.waiters.append((future, replies, [] if replies > 1 else None))
        if not self.pending:
            self.loop.call_soon(self._flush)
        self.pending.append(packed)
        return future

    async def aget(self, key: str):
        value = await self._send(_pack(b"GET", key.encode()))
        return None if value is None else self.loads(value)

    async def aset(self, key: str, value) -> bool:
        if self.transport is None:  # (the benchmark's first call: prepare)
            await self._connect()
        stored = b"%d" % value if type(value) is int else self.dumps(value)
        return await self._send(_pack(b"SET", key.encode(), stored, b"PX", b"300000")) == b"OK"

    async def aincr(self, key: str) -> int:
        return await self._send(_pack(b"INCRBY", key.encode(), b"1"))

    async def aget_many(self, keys: list) -> dict:
        values = await self._send(_pack(b"MGET", *(key.encode() for key in keys)))
        return {key: self.loads(value) for key, value in zip(keys, values) if value is not None}
