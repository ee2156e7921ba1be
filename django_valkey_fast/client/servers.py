"""The servers of one cache configuration, shared by every client built from it.

Under ASGI Django builds a new cache backend (and so a new client) for every request:
its cache handler is context-local. Whatever reaches the servers (the valkey-py
clients and their process-wide pools, the sync channels, the asyncio connection
settings and each event loop's channels, the order in which LOCATION lists primary
and replicas) is therefore kept here, once per process per configuration, and a new
client only points at it: building a client and running its first command costs
about what a command on a warm client does.
"""

from __future__ import annotations

import itertools
import threading
import time

from django_valkey_fast import async_channel as aio

__all__ = ["READ_FAILOVER_PAUSE", "Servers"]

# Seconds a server whose read failed (refused, reset, timed out) is left out of the
# reads; then a read tries it again (and leaves it out again if it still fails).
READ_FAILOVER_PAUSE = 5.0


class Servers:
    """The LOCATION servers of one configuration (the first is the primary), and what
    each one is reached through; the lists are indexed like ``urls`` and shared, in
    place, by every client of the configuration."""

    def __init__(self, urls):
        self.urls: list = list(urls)
        count = len(self.urls)
        self.clients: list = [None] * count  # valkey-py clients, built on first use
        self.channels: list = [None] * count  # sync channels
        # (channel, its client-side caching channel) per server, when CLIENT_SIDE_CACHE is on
        self.caching: list = [None] * count
        self.aio_params: list = [None] * count  # asyncio connection settings
        self.aio = aio.PerLoop(lambda loop: [None] * count)  # a loop's asyncio channels
        self.loop_clients = aio.PerLoop(lambda loop: [None] * count)  # valkey.asyncio clients
        self.replica_turns = itertools.cycle(range(1, count))  # round robin over replicas
        # When each server may be read from again (monotonic clock; 0: it may now), and
        # whether any may not (so a read asks the clock only after a failure).
        self.down_until: list = [0.0] * count
        self.any_down = False
        self.listener_pools: dict = {}  # url -> sync pool of the client-side cache's listener
        self._lock = threading.Lock()
        self._topology = None

    def topology(self, build):
        """What ``build()`` returns, built once for this configuration: what a sharded
        or clustered client adds (its router, its channels per event loop)."""
        found = self._topology
        if found is None:
            with self._lock:
                if self._topology is None:
                    self._topology = build()
                found = self._topology
        return found

    def read_index(self) -> int:
        """The server for the next read: the next replica in turn that is not left out
        after a failed read, else the primary."""
        if not self.any_down:
            return next(self.replica_turns)
        now = time.monotonic()
        down_until = self.down_until
        for _ in range(len(down_until) - 1):
            index = next(self.replica_turns)
            if down_until[index] <= now:
                if max(down_until) <= now:
                    self.any_down = False  # (every server is back)
                return index
        return 0

    def read_failed(self, index: int) -> list:
        """Server ``index`` failed a read: leave it out of reads for a while; return the
        servers to read from instead, in order (the replicas not left out, then the
        primary)."""
        now = time.monotonic()
        self.down_until[index] = now + READ_FAILOVER_PAUSE
        self.any_down = True
        others = [other for other in range(1, len(self.urls))
                  if other != index and self.down_until[other] <= now]
        return others + [0] if index != 0 else others

    def make_primary(self, url: str) -> None:
        """Make the server ``url`` the one writes go to (a failover moved the primary).

        Keyed by URL, not position, and done under a lock: several clients finding
        the same new primary at once swap it into first place once."""
        with self._lock:
            index = self.urls.index(url)
            if index == 0:
                return
            for servers in (self.urls, self.clients, self.channels, self.caching,
                            self.aio_params, self.down_until):
                servers[0], servers[index] = servers[index], servers[0]
            self.aio.reset()  # rebuilt, in the new order, on next use
            self.loop_clients.reset()
