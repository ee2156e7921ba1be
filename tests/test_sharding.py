"""Client-side sharding over three real servers, placed as django-valkey places keys."""

import asyncio

import pytest
from django_valkey.cache import ValkeyCache as PeerCache

from django_valkey_fast.cache import ValkeyCache
from django_valkey_fast.sharding import CrossShardError
from tests.clear_checks import check_prefix_scoped_clear
from tests.servers import Server

SHARDED = {"CLIENT_CLASS": "django_valkey_fast.client.ShardClient"}


@pytest.fixture(scope="module")
def shards():
    servers = [Server() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def sharded(shards):
    yield ValkeyCache([s.url for s in shards], {"OPTIONS": dict(SHARDED)})
    for server in shards:
        server.command("FLUSHALL")


def holder(shards, made_key):
    return [s for s in shards if s.command(f"EXISTS {made_key}")[0] == ":1"]


def test_same_placement_as_django_valkey(shards, sharded):
    peer = PeerCache([s.url for s in shards],
                     {"OPTIONS": {"CLIENT_CLASS": "django_valkey.client.ShardClient"}})
    for i in range(30):
        peer.set(f"peer-{i}", i)
        sharded.set(f"ours-{i}", {"i": i})
        assert sharded.get(f"peer-{i}") == i
        assert peer.get(f"ours-{i}") == {"i": i}
        assert len(holder(shards, f":1:ours-{i}")) == 1
        assert (sharded.client.get_server_name(f":1:ours-{i}")
                == peer.client.get_server_name(f":1:ours-{i}"))
    used = {s.port for i in range(30) for s in holder(shards, f":1:ours-{i}")}
    assert len(used) == 3  # the keys really are spread


def test_multi_key_operations_split_and_merge(shards, sharded):
    data = {f"k{i}": i for i in range(40)}
    assert sharded.set_many(data, 100) == []
    assert sharded.get_many(list(data) + ["missing"]) == data
    assert sharded.mget(["k1", "k2"]) == {"k1": 1, "k2": 2}
    assert sharded.delete_many([f"k{i}" for i in range(10)]) == 10
    assert sorted(sharded.keys("k*")) == sorted(f"k{i}" for i in range(10, 40))
    assert sorted(sharded.iter_keys("k*", itersize=3)) == sorted(f"k{i}" for i in range(10, 40))
    assert sharded.delete_pattern("k1*") == 10
    assert sharded.clear() is True
    assert sharded.keys("*") == []


def test_single_key_operations(sharded):
    sharded.set("n", 1, 100)
    assert sharded.incr("n", 4) == 5 and sharded.decr("n") == 4
    assert 98 <= sharded.ttl("n") <= 100
    assert sharded.touch("n", None) is True and sharded.ttl("n") is None
    assert sharded.add("n", 9) is False and sharded.has_key("n")
    sharded.sadd("s", 1, 2)
    assert sharded.smembers("s") == {1, 2}
    with sharded.lock("lock-key", timeout=5):
        assert sharded.get_lock("lock-key", blocking=False).acquire() is False


def test_incr_version_moves_across_shards(shards, sharded):
    moved = None
    for i in range(50):
        key = f"v{i}"
        if sharded.client._router.shard_for(f":1:{key}") != sharded.client._router.shard_for(f":2:{key}"):
            moved = key
            break
    sharded.set(moved, {"x": 1}, 100)
    assert sharded.incr_version(moved) == 2
    assert sharded.get(moved) is None and sharded.get(moved, version=2) == {"x": 1}
    assert 98 <= sharded.ttl(moved, version=2) <= 100


def test_hash_tags_keep_keys_together(shards, sharded):
    sharded.sadd("{team}:a", 1, 2)
    sharded.sadd("{team}:b", 2, 3)
    assert len({s.port for key in ("{team}:a", "{team}:b") for s in holder(shards, f":1:{key}")}) == 1
    assert sharded.sinter("{team}:a", "{team}:b") == {2}
    spread = [f"x{i}" for i in range(20)]
    for key in spread:
        sharded.sadd(key, 1)
    shards_of = {sharded.client._router.shard_for(f":1:{key}") for key in spread}
    assert len(shards_of) > 1
    with pytest.raises(CrossShardError):
        sharded.sinter(*spread)


def test_async_on_shards(shards, sharded):
    async def scenario():
        data = {f"a{i}": i for i in range(30)}
        await sharded.aset_many(data)
        assert await sharded.aget_many(list(data)) == data
        results = await asyncio.gather(*[sharded.aincr(f"a{i}") for i in range(30)])
        assert results == [i + 1 for i in range(30)]
        assert sorted([key async for key in sharded.aiter_keys("a*")]) == sorted(data)
        lock = await sharded.alock("async-lock", timeout=5)
        async with lock:
            pass
        assert await sharded.adelete_pattern("a*") == 30

    asyncio.run(scenario())


def test_clear_scope_prefix_on_shards(shards):
    """CLEAR_SCOPE "prefix" on client-side shards: every shard's keys of this cache
    go (sync and async), another prefix's stay."""
    locations = [s.url for s in shards]
    check_prefix_scoped_clear(
        ValkeyCache(locations, {"KEY_PREFIX": "p", "OPTIONS": dict(SHARDED, CLEAR_SCOPE="prefix")}),
        ValkeyCache(locations, {"KEY_PREFIX": "q", "OPTIONS": dict(SHARDED)}))


def test_a_readonly_shard_never_reorders_the_shards():
    """Invariant: each key stays on its shard. A shard that refuses writes (READONLY:
    it became a replica) gets the error; the primary search that a primary + replicas
    LOCATION runs, which would move another shard into first place, does not run."""
    from django_valkey_fast.exceptions import ConnectionInterrupted

    servers = [Server() for _ in range(3)]
    try:
        cache = ValkeyCache([s.url for s in servers], {"OPTIONS": dict(SHARDED)})
        order = list(cache.client._server)
        placed = {}
        for i in range(40):
            cache.set(f"k{i}", i)
            placed[holder(servers, cache.make_key(f"k{i}"))[0].port] = f"k{i}"
        first, second = (placed[s.port] for s in servers[:2])
        servers[1].command("REPLICAOF 127.0.0.1 1")  # now refuses writes, serves reads
        with pytest.raises(ConnectionInterrupted, match="READONLY|read only"):
            cache.set(second, "refused")
        assert cache.client._server == order
        assert cache.get(first) == int(first[1:])
        assert holder(servers, cache.make_key(first)) == [servers[0]]
    finally:
        for server in servers:
            server.stop()


def test_a_readonly_shard_never_reorders_the_shards_async():
    """The same invariant on the async path."""
    from django_valkey_fast.exceptions import ConnectionInterrupted

    servers = [Server() for _ in range(3)]
    try:
        cache = ValkeyCache([s.url for s in servers], {"OPTIONS": dict(SHARDED)})
        order = list(cache.client._server)

        async def run():
            placed = {}
            for i in range(40):
                await cache.aset(f"k{i}", i)
                placed[holder(servers, cache.make_key(f"k{i}"))[0].port] = f"k{i}"
            first, second = (placed[s.port] for s in servers[:2])
            servers[1].command("REPLICAOF 127.0.0.1 1")
            with pytest.raises(ConnectionInterrupted, match="READONLY|read only"):
                await cache.aset(second, "refused")
            assert cache.client._server == order
            assert await cache.aget(first) == int(first[1:])

        asyncio.run(run())
    finally:
        for server in servers:
            server.stop()
