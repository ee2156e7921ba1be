"""django-valkey's extended API: same names, arguments and return values."""

import datetime
import threading
import time

import pytest
from django.core.cache import caches
from django.test import override_settings

import django_valkey_fast
from django_valkey_fast.util import CacheKey


def test_set_nx_xx(cache):
    assert cache.set("k", 1, nx=True) is True
    assert cache.set("k", 2, nx=True) is False
    assert cache.get("k") == 1
    assert cache.set("absent", 1, xx=True) is False
    assert cache.get("absent") is None
    assert cache.set("k", 3, xx=True) is True
    assert cache.get("k") == 3


def test_ttl_and_pttl(cache):
    cache.set("t", 1, 100)
    assert 99 <= cache.ttl("t") <= 100
    assert 99_000 < cache.pttl("t") <= 100_000
    cache.set("forever", 1, None)
    assert cache.ttl("forever") is None and cache.pttl("forever") is None
    assert cache.ttl("missing") == 0 and cache.pttl("missing") == 0


def test_expire_family_and_persist(cache):
    cache.set("k", 1, None)
    assert cache.expire("k", 20) is True
    assert 19 <= cache.ttl("k") <= 20
    assert cache.expire("k", datetime.timedelta(seconds=30)) is True
    assert 29 <= cache.ttl("k") <= 30
    assert cache.pexpire("k", 5000) is True
    assert 4000 < cache.pttl("k") <= 5000
    assert cache.persist("k") is True and cache.ttl("k") is None
    assert cache.persist("k") is False
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=60)
    assert cache.expire_at("k", at) is True
    assert 58 <= cache.ttl("k") <= 60
    assert cache.pexpire_at("k", int((time.time() + 40) * 1000)) is True
    assert 38 <= cache.ttl("k") <= 40
    assert cache.expire("missing", 10) is False


def test_incr_keeps_ttl_and_ignore_key_check(cache):
    cache.set("counter", 10, 100)
    assert cache.incr("counter", 5) == 15
    assert 98 <= cache.ttl("counter") <= 100
    assert cache.incr("fresh", 3, ignore_key_check=True) == 3
    assert cache.get("fresh") == 3


def test_negative_numbers_and_floats(cache):
    cache.set("neg", -5)
    assert cache.get("neg") == -5 and type(cache.get("neg")) is int
    assert cache.incr("neg", -5) == -10
    cache.set("f", 1.5, 100)
    assert cache.incr("f", 1) == 2.5  # not an integer in the server: read, add, write
    assert cache.get("f") == 2.5 and 98 <= cache.ttl("f") <= 100


def test_incr_beyond_64_bits(cache):
    cache.set("big", 2**63 - 1)
    assert cache.incr("big") == 2**63
    assert cache.get("big") == 2**63


def test_incr_is_atomic_across_threads(cache):
    cache.set("shared", 0)

    def work():
        for _ in range(200):
            caches["default"].incr("shared")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("shared") == 800


def test_incr_survives_script_flush(cache, server):
    cache.set("n", 1)
    assert cache.incr("n") == 2
    server.command("SCRIPT FLUSH")  # the next EVALSHA answers NOSCRIPT
    assert cache.incr("n") == 3


def test_lock(cache):
    with cache.lock("resource", timeout=5):
        other = cache.get_lock("resource", blocking=False)
        assert other.acquire() is False
    other = cache.get_lock("resource", blocking=False)
    assert other.acquire() is True
    other.release()


def test_keys_iter_keys_delete_pattern(cache):
    cache.set_many({f"user:{i}": i for i in range(30)})
    cache.set("other", 1)
    assert sorted(cache.keys("user:*")) == sorted(f"user:{i}" for i in range(30))
    assert sorted(cache.iter_keys("user:*", itersize=7)) == sorted(f"user:{i}" for i in range(30))
    assert cache.delete_pattern("user:1*", itersize=3) == 11
    assert len(cache.keys("user:*")) == 19
    assert cache.delete_pattern("user:*") == 19
    assert cache.keys("*") == ["other"]


def test_delete_pattern_escapes_prefix(make_cache):
    prefixed = make_cache(KEY_PREFIX="a*")
    plain = make_cache(KEY_PREFIX="ab")
    prefixed.set("k", 1)
    plain.set("k", 2)
    assert prefixed.delete_pattern("*") == 1
    assert plain.get("k") == 2


def test_mget_mset(cache):
    assert cache.mset({"a": 1, "b": "two"}) is None
    assert cache.mget(["a", "b", "c"]) == {"a": 1, "b": "two"}
    assert cache.ttl("a") is None  # MSET sets no expiry


def test_hash_commands(cache):
    assert cache.hset("h", "f1", {"x": 1}) == 1
    assert cache.hset("h", "f2", 2) == 1
    assert cache.hset("h", "f2", 3) == 0
    assert cache.hlen("h") == 2
    assert sorted(cache.hkeys("h")) == ["f1", "f2"]
    assert cache.hexists("h", "f1") is True
    assert cache.hget("h", "f1") == {"x": 1} and cache.hget("h", "nope") is None
    assert cache.hdel("h", "f1") == 1
    assert cache.hexists("h", "f1") is False


def test_set_commands(cache):
    assert cache.sadd("s1", 1, 2, "three") == 3
    assert cache.sadd("s2", 2, "three", 4.5) == 3
    assert cache.scard("s1") == 3
    assert cache.smembers("s1") == {1, 2, "three"}
    assert cache.sismember("s1", "three") is True
    assert cache.smismember("s1", 1, 99) == [True, False]
    assert cache.sdiff("s1", "s2") == {1}
    assert cache.sinter("s1", "s2") == {2, "three"}
    assert cache.sunion("s1", "s2") == {1, 2, "three", 4.5}
    assert cache.sdiffstore("d", "s1", "s2") == 1 and cache.smembers("d") == {1}
    assert cache.sinterstore("i", "s1", "s2") == 2
    assert cache.sunionstore("u", "s1", "s2") == 4
    assert cache.smove("s1", "s2", 1) is True and cache.sismember("s2", 1) is True
    assert cache.srem("s2", 1, 2) == 2
    assert cache.sscan("u") == {1, 2, "three", 4.5}
    assert set(cache.sscan_iter("u", count=1)) == {1, 2, "three", 4.5}
    assert cache.srandmember("u") in {1, 2, "three", 4.5}
    assert len(cache.srandmember("u", 2)) == 2
    popped = cache.spop("u")
    assert popped in {1, 2, "three", 4.5} and cache.scard("u") == 3
    assert len(cache.spop("u", 2)) == 2
    assert cache.spop("nothing") is None


def test_sscan_match_without_and_with_compression(cache, make_cache):
    cache.sadd("names", "alice", "bob")
    # As in django-valkey, ``match`` is encoded like a member: it selects that member.
    assert cache.sscan("names", match="alice") == {"alice"}
    assert set(cache.sscan_iter("names", match="bob")) == {"bob"}
    compressed = make_cache(OPTIONS={"COMPRESSOR": "django_valkey_fast.compressors.zlib.ZlibCompressor"})
    with pytest.raises(ValueError, match="compression"):
        compressed.sscan("names", match="a*")


def test_make_key_returns_cache_key_used_as_is(cache):
    made = cache.make_key("foo")
    assert isinstance(made, CacheKey) and made == ":1:foo"
    assert made.original_key() == "foo"
    cache.set(made, 1)
    assert cache.get("foo") == 1
    assert cache.make_pattern("f*") == ":1:f*"


def test_get_valkey_connection(cache):
    import valkey

    client = django_valkey_fast.get_valkey_connection("default")
    assert isinstance(client, valkey.Valkey)
    cache.set("k", 1)
    assert client.get(":1:k") == b"1"
    client.set(":1:raw", b"42")
    assert cache.get("raw") == 42


def test_client_argument_runs_on_that_client(cache):
    raw = cache.client.get_client(write=True)
    assert cache.set("k", "v", client=raw) is True
    assert cache.get("k", client=raw) == "v"


def test_reverse_key_function(make_cache):
    custom = make_cache(KEY_FUNCTION=lambda key, prefix, version: f"{prefix}|{version}|{key}",
                        REVERSE_KEY_FUNCTION="tests.test_extended.reverse_pipe")
    custom.set("alpha", 1)
    assert custom.keys("*") == ["alpha"]


def reverse_pipe(key):
    return key.split("|", 2)[2]


def test_scan_itersize_setting(server):
    from tests.conftest import caches_setting

    with override_settings(CACHES=caches_setting(server.url), DJANGO_VALKEY_SCAN_ITERSIZE=2):
        cache = caches["default"]
        assert cache._default_scan_itersize == 2
        cache.set_many({f"k{i}": i for i in range(5)})
        assert cache.delete_pattern("k*") == 5


def test_single_item_batches(cache):
    assert cache.set_many({"only": 1}) == []
    assert cache.get_many(["only"]) == {"only": 1}
    assert cache.delete_many(["only"]) == 1


def test_bulk_operations_are_one_round_trip(cache, monkeypatch):
    from django_valkey_fast.channel import Channel

    trips = []
    call, pipeline = Channel.call, Channel.pipeline

    def counting_call(self, args):
        trips.append(None)
        return call(self, args)

    def counting_pipeline(self, commands):
        trips.append(len(commands))
        return pipeline(self, commands)

    cache.set("warm", 1)
    monkeypatch.setattr(Channel, "call", counting_call)
    monkeypatch.setattr(Channel, "pipeline", counting_pipeline)
    cache.set_many({f"k{i}": i for i in range(20)})
    assert cache.get_many([f"k{i}" for i in range(20)]) == {f"k{i}": i for i in range(20)}
    cache.delete_many([f"k{i}" for i in range(20)])
    assert cache.ttl("warm") > 0
    assert trips == [20, None, None, None]  # a 20-command pipeline, MGET, DEL, TTL


def test_incr_beyond_64_bits_is_atomic(cache):
    """Eight threads and eight tasks add 2**62 at once to a counter INCRBY cannot hold
    (it overflows 64 bits): no update is lost, the TTL is kept, and ints stay ints."""
    import asyncio
    import threading

    cache.set("big", 0, timeout=100)
    threads = [threading.Thread(target=cache.incr, args=("big", 2 ** 62)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert cache.get("big") == 8 * 2 ** 62

    async def together():
        await asyncio.gather(*[cache.aincr("big", 2 ** 62) for _ in range(8)])

    asyncio.run(together())
    assert cache.get("big") == 16 * 2 ** 62
    assert 90 < cache.ttl("big") <= 100
    assert cache.decr("big", 16 * 2 ** 62) == 0 and type(cache.get("big")) is int
    cache.set("f", 1.5)
    assert cache.incr("f", 2) == 3.5


def _three_caches(make_cache, **options):
    scoped = make_cache(KEY_PREFIX="app", OPTIONS=dict(options, CLEAR_SCOPE="prefix"))
    sibling = make_cache(KEY_PREFIX="app2", OPTIONS=dict(options))
    plain = make_cache(OPTIONS=dict(options))
    return scoped, sibling, plain


def test_clear_scope_prefix_deletes_only_this_caches_keys(make_cache):
    """CLEAR_SCOPE "prefix": clear() and aclear() delete this cache's keys, every
    version, in pages, and nothing else; the default still empties the database."""
    import asyncio

    scoped, sibling, plain = _three_caches(make_cache)
    scoped.set_many({f"k{i}": i for i in range(2500)})
    scoped.set("v", 1, version=7)
    sibling.set("k1", "sibling")
    plain.set("k1", "plain")
    assert scoped.clear() is True
    assert scoped.get("k1") is None and scoped.get("v", version=7) is None
    assert sibling.get("k1") == "sibling" and plain.get("k1") == "plain"
    scoped.set("k2", 2)
    assert asyncio.run(scoped.aclear()) is True
    assert scoped.get("k2") is None and sibling.get("k1") == "sibling"
    assert plain.clear() is True and sibling.get("k1") is None  # FLUSHDB, as Django


def test_clear_scope_prefix_on_async_valkey_cache(make_cache):
    """AsyncValkeyCache honours CLEAR_SCOPE too (its clear is a coroutine)."""
    import asyncio

    from django_valkey_fast.async_cache.cache import AsyncValkeyCache

    location = make_cache()._server
    scoped = AsyncValkeyCache(location, {"KEY_PREFIX": "a", "OPTIONS": {"CLEAR_SCOPE": "prefix"}})
    other = make_cache(KEY_PREFIX="b")
    other.set("k", 1)

    async def use():
        await scoped.set("k", 1)
        assert await scoped.clear() is True
        return await scoped.get("k")

    assert asyncio.run(use()) is None and other.get("k") == 1


def test_clear_scope_is_checked(make_cache):
    """A CLEAR_SCOPE that is neither value is a configuration error."""
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="CLEAR_SCOPE"):
        make_cache(OPTIONS={"CLEAR_SCOPE": "everything"}).get("k")
