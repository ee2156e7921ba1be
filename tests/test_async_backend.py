"""django-valkey's AsyncValkeyCache: every method a coroutine, aget the same as get."""

import asyncio
import gc
import inspect
import warnings

import pytest
import valkey.asyncio
from django.core.cache import caches, close_caches
from django.test import override_settings

from django_valkey_fast.async_cache import get_valkey_connection
from django_valkey_fast.async_cache.cache import AsyncValkeyCache
from django_valkey_fast.async_cache.client import AsyncDefaultClient
from django_valkey_fast.async_cache.pool import AsyncConnectionFactory


def test_methods_are_coroutines_and_aliases(async_cache):
    assert isinstance(async_cache, AsyncValkeyCache)
    assert isinstance(async_cache.client, AsyncDefaultClient)
    for name in ("get", "set", "add", "delete", "get_many", "set_many", "incr", "ttl",
                 "expire", "keys", "delete_pattern", "hset", "sadd", "smembers", "lock"):
        assert inspect.iscoroutinefunction(getattr(async_cache, name)), name
        assert getattr(AsyncValkeyCache, "a" + name) is getattr(AsyncValkeyCache, name), name
    assert isinstance(async_cache.client.connection_factory, AsyncConnectionFactory)


async def test_api(async_cache):
    cache = async_cache
    assert await cache.set("k", {"x": 1}, 100) is True
    assert await cache.get("k") == {"x": 1}
    assert await cache.aget("k") == {"x": 1}
    assert await cache.get("missing", "default") == "default"
    assert await cache.add("k", 2) is False
    assert await cache.set_many({"a": 1, "b": 2}) == []
    assert await cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert await cache.incr("a", 10) == 11
    assert await cache.decr("a") == 10
    assert 98 <= await cache.ttl("k") <= 100
    assert await cache.get_or_set("gos", lambda: 5) == 5
    assert sorted([key async for key in cache.iter_keys("*")]) == ["a", "b", "gos", "k"]
    assert await cache.delete_pattern("[ab]") == 2
    assert await cache.sadd("s", 1, 2) == 2
    assert {m async for m in cache.sscan_iter("s")} == {1, 2}
    lock = await cache.lock("l", timeout=5)
    async with lock:
        assert await lock.locked()
    assert await cache.delete("k") is True
    assert await cache.clear() is True


async def test_get_client_and_get_valkey_connection(server):
    setting = {"BACKEND": "django_valkey_fast.async_cache.cache.AsyncValkeyCache",
               "LOCATION": server.url}
    with override_settings(CACHES={"default": setting}):
        cache = caches["default"]
        await cache.set("k", 1)
        client = await get_valkey_connection("default")
        assert isinstance(client, valkey.asyncio.Valkey)
        assert await client.get(":1:k") == b"1"
        assert await cache.client.get_client() is await cache.client.get_client()


async def test_sync_alias_get_valkey_connection_is_async_client(cache):
    client = await get_valkey_connection("default")
    assert isinstance(client, valkey.asyncio.Valkey)
    await cache.aset("k", 1)
    assert await client.get(":1:k") == b"1"


def test_close_is_safe_without_await(async_cache):
    """Django's close_caches calls close() synchronously at the end of a request."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(async_cache.set("k", 1))
        close_caches()
        async_cache.close()
        gc.collect()

    async def awaited():
        await async_cache.close()  # django-valkey's callers await it

    asyncio.run(awaited())


def test_consecutive_loops_with_async_backend(async_cache):
    async def use(value):
        await async_cache.set("k", value)
        client = await async_cache.client.get_client()
        assert await client.get(":1:k") == str(value).encode()
        return await async_cache.get("k")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for value in range(3):
            assert asyncio.run(use(value)) == value
        gc.collect()


async def test_close_connection_option(server):
    setting = {"BACKEND": "django_valkey_fast.async_cache.cache.AsyncValkeyCache",
               "LOCATION": server.url,
               "OPTIONS": {"CLOSE_CONNECTION": True,
                           "CONNECTION_POOL_KWARGS": {"client_name": "async-closing"}}}
    with override_settings(CACHES={"default": setting}):
        cache = caches["default"]
        await cache.set("k", 1)

        assert server.clients_named("async-closing") == 1
        await cache.close()
        # (in a thread: the event loop may still have to run to close the socket)
        assert await asyncio.to_thread(server.settled_clients, "async-closing", 0) == 0
        assert await cache.get("k") == 1


def test_contains_is_refused(async_cache):
    with pytest.raises(TypeError, match="await cache.has_key"):
        "k" in async_cache  # noqa: B015


async def test_top_level_get_valkey_connection_for_an_async_alias(async_cache):
    import django_valkey_fast

    client = await django_valkey_fast.get_valkey_connection("default")
    assert isinstance(client, valkey.asyncio.Valkey)


class RecordingAsyncFactory(AsyncConnectionFactory):
    """A user's connection factory: its ``disconnect`` is the hook django-valkey calls."""

    disconnected: list = []

    async def disconnect(self, connection):
        RecordingAsyncFactory.disconnected.append(connection)
        await super().disconnect(connection)


class RecordingAsyncClient(AsyncDefaultClient):
    closes = 0

    async def close(self):
        RecordingAsyncClient.closes += 1
        await super().close()


async def test_close_disconnects_through_the_connection_factory(server):
    """CLOSE_CONNECTION: ``await cache.close()`` disconnects each valkey-py client
    through the (user's) connection factory, as django-valkey does."""
    RecordingAsyncFactory.disconnected.clear()
    cache = AsyncValkeyCache(server.url, {"OPTIONS": {
        "CLOSE_CONNECTION": True,
        "CONNECTION_FACTORY": "tests.test_async_backend.RecordingAsyncFactory"}})
    await cache.set("k", 1)
    raw = await cache.client.get_client()
    await cache.close()
    assert RecordingAsyncFactory.disconnected == [raw]
    assert await cache.get("k") == 1  # reconnects


async def test_awaited_close_reaches_the_clients_close(server):
    """Without CLOSE_CONNECTION too: a client class that overrides close() gets the call
    (Django's un-awaited close_caches does not run it, and warns about nothing)."""
    RecordingAsyncClient.closes = 0
    cache = AsyncValkeyCache(server.url, {"OPTIONS": {
        "CLIENT_CLASS": "tests.test_async_backend.RecordingAsyncClient"}})
    await cache.set("k", 1)
    await cache.close()
    await cache.aclose()
    assert RecordingAsyncClient.closes == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.close()  # not awaited: nothing runs, nothing warns
        gc.collect()
    assert RecordingAsyncClient.closes == 2
