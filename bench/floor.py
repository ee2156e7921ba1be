"""The floor: the least a Python process can do for a cache call, with no client at all.

One blocking socket, commands packed by hand, replies parsed by libvalkey's Reader
(this package's pure reader when libvalkey is not installed), values pickled as the
backends pickle them. No key building, no pool, no checks: what any Python cache
client must at least spend per call. Benchmark rows are divided by it ("CPU vs floor").
"""

from __future__ import annotations

import pickle
import socket
from urllib.parse import urlparse

try:
    from libvalkey import Reader
except ImportError:  # pragma: no cover - libvalkey is in the dev extra
    from django_valkey_fast._resp_py import Reader

__all__ = ["BareSocket"]


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
