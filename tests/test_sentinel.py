"""Sentinel: a primary, a replica and a Sentinel started here; reads on the replica,
writes on the primary, and the same alias (sync and async) survives a failover."""

import asyncio

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tests.servers import Sentinel, Server
from tests.writers import ContinuousWriters


def start_topology():
    primary = Server()
    replica = Server(replica_of=primary)
    sentinel = Sentinel(primary)
    sentinel.wait_for_replicas(1)
    return primary, replica, sentinel


@pytest.fixture(scope="module")
def topology():
    """``(primary, replica, sentinel)``, with Sentinel aware of the replica."""
    processes = start_topology()
    yield processes
    for process in reversed(processes):
        process.stop()


@pytest.fixture
def doomed_topology():
    """A topology of its own, for a test that kills its primary."""
    processes = start_topology()
    yield processes
    for process in reversed(processes):
        process.stop()


def sentinel_caches(sentinel, **options):
    common = {"LOCATION": f"valkey://{sentinel.name}/0",
              "OPTIONS": {"SENTINELS": [("127.0.0.1", sentinel.port)],
                          "SOCKET_TIMEOUT": 2, "SOCKET_CONNECT_TIMEOUT": 1, **options}}
    return {
        "default": {"BACKEND": "django_valkey_fast.cache.ValkeyCache",
                    **common, "OPTIONS": dict(common["OPTIONS"],
                                              CLIENT_CLASS="django_valkey_fast.client.SentinelClient")},
        "async": {"BACKEND": "django_valkey_fast.async_cache.cache.AsyncValkeyCache",
                  **common, "OPTIONS": dict(
                      common["OPTIONS"],
                      CLIENT_CLASS="django_valkey_fast.async_cache.client.AsyncSentinelClient")},
    }


def gets_served(server):
    info = server.command("INFO commandstats")[0]
    for line in info.splitlines():
        if line.startswith("cmdstat_get:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_locations_name_primary_and_replicas(topology):
    _, _, sentinel = topology
    with override_settings(CACHES=sentinel_caches(sentinel)):
        servers = caches["default"].client._server
    assert servers == ["valkey://mymaster/0?is_master=1", "valkey://mymaster/0?is_master=0"]


def test_sync_and_async_reads_on_the_replica_writes_on_the_primary(topology):
    primary, replica, sentinel = topology
    with override_settings(CACHES=sentinel_caches(sentinel)):
        cache = caches["default"]
        cache.set("k", "v")
        primary.replicated_to(replica)
        before = gets_served(replica), gets_served(primary)
        assert [cache.get("k") for _ in range(3)] == ["v"] * 3

        async def async_side():
            await cache.aset("a", 1)
            primary.replicated_to(replica)
            return [await cache.aget("a") for _ in range(3)]

        assert asyncio.run(async_side()) == [1, 1, 1]
        assert gets_served(replica) - before[0] == 6
        assert gets_served(primary) == before[1]
        assert primary.command("EXISTS :1:a")[0] == ":1"


def test_async_sentinel_backend(topology):
    primary, replica, sentinel = topology
    with override_settings(CACHES=sentinel_caches(sentinel)):
        cache = caches["async"]

        async def use():
            await cache.set("k", {"x": 1})
            primary.replicated_to(replica)
            client = await cache.client.get_client(write=True)
            assert "Sentinel" in type(client.connection_pool).__name__
            return await cache.get("k")

        assert asyncio.run(use()) == {"x": 1}


def test_failover_under_continuous_writes(doomed_topology, capsys):
    """RECOVERY + no acknowledged write lost after the failover: sync and async
    writers run without pause on one alias while the primary is SIGKILLed. Both
    resume on the promoted replica without a restart; every write acknowledged after
    that is readable (nothing went to a demoted primary); the writes acknowledged
    before the kill that the failover lost are counted and reported."""
    primary, replica, sentinel = doomed_topology
    with override_settings(CACHES=sentinel_caches(sentinel)):
        cache = caches["default"]
        cache.set("before", 1)
        primary.replicated_to(replica)
        writers = ContinuousWriters(cache).start()
        killed, resumed = writers.through(primary.kill, timeout=40)
        assert resumed is not None, "writes never resumed on both sides"
        assert sentinel.primary_port() == replica.port
        assert cache.get("before") == 1
        assert writers.longest_call < 15  # BOUNDED: no call hung through the failover
        assert writers.lost(cache.get_many) == writers.lost(cache.get_many, before=killed)
        lost = writers.lost(cache.get_many, before=killed)
    with capsys.disabled():
        print(f"\n[sentinel failover] sync+async writes resumed {resumed:.1f}s after the "
              f"primary died; {writers.count()} writes acknowledged, {lost} acknowledged "
              f"before the kill lost, {sum(writers.failed.values())} raised "
              "(none lost after it)")


def test_configuration_errors(topology):
    _, _, sentinel = topology
    settings = sentinel_caches(sentinel)
    settings["default"]["OPTIONS"].pop("SENTINELS")
    with override_settings(CACHES=settings):
        with pytest.raises(ImproperlyConfigured, match="SENTINELS"):
            caches["default"].get("k")
    settings = sentinel_caches(sentinel, CONNECTION_FACTORY="django_valkey_fast.pool.ConnectionFactory")
    with override_settings(CACHES=settings):
        with pytest.raises(ImproperlyConfigured, match="Sentinel-managed"):
            caches["default"].get("k")


def test_locks_sync_and_async_hold_on_the_primary(topology):
    """``lock``/``alock`` with SentinelClient and AsyncSentinelClient (the async ones
    used to fail: a Sentinel pool's settings were handed to a plain connection)."""
    primary, _, sentinel = topology
    with override_settings(CACHES=sentinel_caches(sentinel)):
        def held(name):
            return primary.command(f"EXISTS :1:{name}")[0] == ":1"

        async def async_side():
            lock = await caches["async"].lock("alock1", timeout=5)
            async with lock:
                assert await lock.locked() and held("alock1")
            lock = await caches["default"].alock("alock2", timeout=5)
            async with lock:
                assert await lock.locked() and held("alock2")

        asyncio.run(async_side())
        with caches["default"].lock("lock3", timeout=5):
            assert held("lock3")
        assert not held("alock1") and not held("lock3")


@pytest.mark.parametrize("alias", ["default", "async"])
def test_every_async_method_runs_on_the_loop(topology, alias):
    """SentinelClient's and AsyncSentinelClient's ``a*`` methods: no thread hop."""
    from django_valkey_fast.cache import EXTENDED_ASYNC_API
    from tests.native_async import DJANGO_ASYNC_API, exercise_async_api, no_thread_hops

    _, _, sentinel = topology
    settings = sentinel_caches(sentinel)
    for setting in settings.values():  # primary only: the checks read their own writes
        setting["LOCATION"] = [f"valkey://{sentinel.name}/0?is_master=1"]
    with override_settings(CACHES=settings):
        cache = caches[alias]

        async def run():
            with no_thread_hops():
                return await exercise_async_api(cache, prefix=alias)

        assert set(DJANGO_ASYNC_API) | set(EXTENDED_ASYNC_API) <= asyncio.run(run())


def test_a_silent_sentinel_bounds_the_async_lookup_by_the_connect_timeout(topology):
    """Invariant: a Sentinel that accepts connections and answers nothing (paused) never
    holds an async caller longer than the connect timeout: the lookup gives up on it
    and the caller gets ConnectionInterrupted, instead of waiting forever."""
    import time

    from django_valkey_fast.exceptions import ConnectionInterrupted

    primary, replica, sentinel = topology
    settings = sentinel_caches(sentinel, CONNECTION_POOL_KWARGS={"client_name": "silent"},
                               SOCKET_TIMEOUT=6)  # (reads may wait longer than a connect)
    with override_settings(CACHES=settings):
        cache = caches["async"]
        sentinel.pause()
        try:
            async def lookup():
                started = time.monotonic()
                with pytest.raises(ConnectionInterrupted, match="did not answer"):
                    await asyncio.wait_for(cache.get("k"), 15)
                return time.monotonic() - started

            assert asyncio.run(lookup()) < 3  # SOCKET_CONNECT_TIMEOUT is 1 s, not 6
        finally:
            sentinel.resume()
        # The Sentinel answers again: the same alias finds the primary.
        assert asyncio.run(cache.set("k", 1)) is True
