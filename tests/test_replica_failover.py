"""Reads with read replicas when a replica fails: a primary and two replicas, real
processes; a replica is SIGKILLed, or stopped (SIGSTOP: it holds its socket and
answers nothing), under continuous sync and async reads.

Invariant protected: **while a healthy server remains, no read error reaches the
caller**: a read whose server fails is read again from another replica or the
primary (reads only: a write is never sent twice), within one socket timeout; the
failed replica is left out of reads for a while, then tried again.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from django_valkey_fast.cache import ValkeyCache
from django_valkey_fast.client import servers as servers_module
from tests.servers import Server

TIMEOUT = 0.5


@pytest.fixture
def three():
    """A primary and two replicas of it, each its own process (killed by the test)."""
    primary = Server("--repl-diskless-sync-delay", "0")  # (replicas sync at once)
    replicas = [Server(replica_of=primary), Server(replica_of=primary)]
    yield primary, replicas
    for server in (*replicas, primary):
        server.stop()


@pytest.fixture
def short_pause(monkeypatch):
    monkeypatch.setattr(servers_module, "READ_FAILOVER_PAUSE", 1.0)


def cache_on(primary, replicas, **options):
    cache = ValkeyCache([primary.url, *(r.url for r in replicas)], {
        "KEY_PREFIX": f"failover{time.monotonic_ns()}",
        "OPTIONS": {"SOCKET_TIMEOUT": TIMEOUT, "SOCKET_CONNECT_TIMEOUT": TIMEOUT, **options}})
    cache.set_many({f"k{i}": i for i in range(10)})
    deadline = time.monotonic() + 10
    while not all(cache.get(f"k{i}") == i for i in range(10) for _ in range(3)):
        assert time.monotonic() < deadline, "the replicas never caught up"
        time.sleep(0.02)
    return cache


class Readers:
    """Sync and async readers of ``k0..k9``, each read checked, errors counted."""

    def __init__(self, cache):
        self.cache = cache
        self.stop = threading.Event()
        self.errors: list = []
        self.wrong: list = []
        self.reads = 0
        self.slowest = 0.0
        self.threads = [threading.Thread(target=self._sync), threading.Thread(target=self._async)]

    def _check(self, key, value, started):
        self.reads += 1
        self.slowest = max(self.slowest, time.monotonic() - started)
        if value != int(key[1:]):
            self.wrong.append((key, value))

    def _sync(self):
        i = 0
        while not self.stop.is_set():
            key, i = f"k{i % 10}", i + 1
            started = time.monotonic()
            try:
                self._check(key, self.cache.get(key), started)
                if i % 7 == 0:
                    many = self.cache.get_many([f"k{j}" for j in range(10)])
                    if many != {f"k{j}": j for j in range(10)}:
                        self.wrong.append(("get_many", many))
            except Exception as error:  # noqa: BLE001 - counted: the test asserts none
                self.errors.append(error)

    def _async(self):
        async def run():
            i = 0
            while not self.stop.is_set():
                key, i = f"k{i % 10}", i + 1
                started = time.monotonic()
                try:
                    self._check(key, await self.cache.aget(key), started)
                except Exception as error:  # noqa: BLE001
                    self.errors.append(error)

        asyncio.run(run())

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def test_a_killed_replica_costs_no_read_error(three, short_pause):
    primary, replicas = three
    cache = cache_on(primary, replicas)
    with Readers(cache) as readers:
        time.sleep(0.3)
        replicas[0].kill()
        time.sleep(2.5)  # (longer than the pause: the dead replica is tried again, twice)
        before = readers.reads
        time.sleep(0.5)
        assert readers.reads > before  # still reading
    assert readers.errors == [] and readers.wrong == []
    assert readers.slowest < TIMEOUT + 2.0  # (a hang would last the 30 s join)


def test_a_stopped_replica_is_read_around_within_the_socket_timeout(three, short_pause):
    primary, replicas = three
    cache = cache_on(primary, replicas)
    with Readers(cache) as readers:
        time.sleep(0.3)
        replicas[1].pause()
        try:
            time.sleep(2.5)
        finally:
            replicas[1].resume()
        time.sleep(0.3)
    assert readers.errors == [] and readers.wrong == []
    assert readers.slowest < 2 * TIMEOUT + 2.0  # (one timeout, then another server)


def test_with_every_replica_down_reads_go_to_the_primary(three, short_pause):
    primary, replicas = three
    cache = cache_on(primary, replicas)
    for replica in replicas:
        replica.kill()
    assert [cache.get(f"k{i}") for i in range(10)] == list(range(10))

    async def async_side():
        return [await cache.aget(f"k{i}") for i in range(10)]

    assert asyncio.run(async_side()) == list(range(10))


def test_a_dead_replica_is_read_again_once_it_is_back(three, short_pause):
    primary, replicas = three
    cache = cache_on(primary, replicas)
    replicas[0].kill()
    for i in range(10):
        assert cache.get(f"k{i}") == i
    replicas[0].start()
    deadline = time.monotonic() + 10
    while "master_link_status:up" not in replicas[0].command("INFO replication")[0]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.1)  # (the pause is over)
    before = int(replicas[0].command("INFO stats")[0].split("total_commands_processed:")[1]
                 .split()[0])
    for i in range(20):
        assert cache.get(f"k{i % 10}") == i % 10
    after = int(replicas[0].command("INFO stats")[0].split("total_commands_processed:")[1]
                .split()[0])
    assert after - before >= 5  # it serves reads again


def test_writes_are_never_sent_twice_when_the_primary_fails(three):
    """Only reads fail over: a write whose primary is gone raises."""
    from django_valkey_fast.exceptions import ConnectionInterrupted

    primary, replicas = three
    cache = cache_on(primary, replicas)
    primary.kill()
    with pytest.raises(ConnectionInterrupted):
        cache.set("k0", 99)
    assert cache.get("k0") == 0  # (reads still answered by the replicas)
