"""django-valkey's ``HashClient`` / ``AsyncHashClient``: the hash name is a cache key.

Against a real server, sync and async, and side by side with django-valkey 0.4.1's
``HashClient`` on the same server: the same keys and fields in the server.
"""

import pytest
from valkey.exceptions import DataError

from django_valkey_fast.async_cache.cache import AsyncValkeyCache
from django_valkey_fast.cache import ValkeyCache
from django_valkey_fast.client.herd import HerdClient
from django_valkey_fast.commands.hash import HashCommands

HASH = {"CLIENT_CLASS": "django_valkey_fast.client.HashClient"}
ASYNC_HASH = {"CLIENT_CLASS": "django_valkey_fast.async_cache.client.AsyncHashClient"}


def hash_cache(server, **params):
    return ValkeyCache(server.url, {"KEY_PREFIX": "hp", "OPTIONS": dict(HASH), **params})


def test_the_hash_name_and_fields_are_cache_keys(server):
    cache = hash_cache(server)
    raw = cache.client.get_client()
    assert cache.hset("h", "f", {"x": 1}) == 1
    assert cache.hset("h", "f", {"x": 2}) == 0  # field updated, not added
    assert raw.exists("hp:1:h") and not raw.exists("h")
    assert raw.hkeys("hp:1:h") == [b"hp:1:f"]
    assert cache.hget("h", "f") == {"x": 2}  # decoded, not the stored bytes
    assert cache.hget("h", "missing") is None
    assert cache.hlen("h") == 1 and cache.hkeys("h") == ["f"]
    assert cache.hexists("h", "f") and not cache.hexists("h", "g")
    assert cache.hdel("h", "f") == 1 and cache.hlen("h") == 0


def test_mapping_and_items_are_stored_like_key_and_value(server):
    cache = hash_cache(server)
    assert cache.hset("h", "a", 1, mapping={"b": [2]}, items=[("c", "three")]) == 3
    assert {field: cache.hget("h", field) for field in cache.hkeys("h")} == {
        "a": 1, "b": [2], "c": "three"}
    assert cache.client.get_client().hget("hp:1:h", "hp:1:a") == b"1"  # numbers raw


def test_versions_apply_to_the_name_and_the_fields(server):
    cache = hash_cache(server)
    cache.hset("h", "f", "v1")
    cache.hset("h", "f", "v2", version=2)
    assert cache.hget("h", "f") == "v1" and cache.hget("h", "f", version=2) == "v2"
    assert cache.hlen("h", version=2) == 1
    assert cache.client.get_client().hkeys("hp:2:h") == [b"hp:2:f"]


def test_hset_without_pairs_is_a_clear_error(server):
    with pytest.raises(DataError, match="no key value pairs"):
        hash_cache(server).hset("h")


def test_the_default_client_keeps_the_name_as_given(server):
    """django-valkey's DefaultClient (deprecated hash methods): only the field is a key."""
    cache = ValkeyCache(server.url, {"KEY_PREFIX": "hp"})
    cache.hset("plain", "f", 5)
    assert cache.client.get_client().hkeys("plain") == [b"hp:1:f"]
    assert cache.hget("plain", "f") == 5


def test_same_server_layout_as_django_valkeys_hash_client(server):
    from django_valkey.cache import ValkeyCache as PeerValkeyCache

    ours = hash_cache(server)
    theirs = PeerValkeyCache(server.url, {
        "KEY_PREFIX": "hp", "OPTIONS": {"CLIENT_CLASS": "django_valkey.client.HashClient"}})
    theirs.hset("peer", "f", {"x": 1})
    ours.hset("ours", "f", {"x": 1})
    raw = ours.client.get_client()
    assert raw.hgetall("hp:1:peer") == raw.hgetall("hp:1:ours")
    assert ours.hget("peer", "f") == {"x": 1}  # django-valkey's hget returns the raw bytes
    assert ours.hkeys("peer") == theirs.hkeys("ours") == ["f"]
    assert theirs.hexists("ours", "f") and theirs.hlen("ours") == 1


class HerdHashClient(HashCommands, HerdClient):
    """A user's client: the hash commands mixed into the herd client."""


def test_the_mixin_composes_with_the_herd_client(server):
    assert HerdHashClient.get is HerdClient.get
    assert HerdHashClient.operations is HerdClient.operations
    cache = ValkeyCache(server.url, {"OPTIONS": {
        "CLIENT_CLASS": f"{__name__}.HerdHashClient"}})
    cache.hset("h", "f", 1)
    cache.set("k", "v", 30)
    assert cache.hget("h", "f") == 1 and cache.get("k") == "v"
    stored = cache.client.get_client().get(cache.make_key("k"))
    assert b"Marker" in stored  # herd-packed: the herd plans are still in use


async def test_native_async_on_one_alias(server):
    cache = hash_cache(server)
    assert await cache.ahset("h", key="f", value=[1]) == 1
    assert await cache.ahget("h", "f") == [1]
    assert await cache.ahkeys("h") == ["f"] and await cache.ahlen("h") == 1
    assert await cache.ahexists("h", "f") and await cache.ahdel("h", "f") == 1


async def test_async_hash_client(server):
    cache = AsyncValkeyCache(server.url, {"KEY_PREFIX": "hp", "OPTIONS": dict(ASYNC_HASH)})
    assert await cache.hset("h", "f", {"y": 1}, mapping={"g": 2}) == 2
    assert await cache.hget("h", "f") == {"y": 1} and await cache.ahget("h", "g") == 2
    assert sorted(await cache.hkeys("h")) == ["f", "g"] and await cache.hlen("h") == 2
    assert await cache.hexists("h", "g") and await cache.hdel("h", "g") == 1
    raw = ValkeyCache(server.url, {}).client.get_client()
    assert raw.hkeys("hp:1:h") == [b"hp:1:f"]
