"""Every ``a*`` method is native asyncio, for every backend and client class: ready for
Django 6.1, whose ``BaseCache`` would run an overridden sync method in a thread.

Invariant protected: no ``a*`` method of Django's cache API or of the extended API
hops to a thread (``sync_to_async``/``run_in_executor`` fail loudly here), and none is
inherited from ``BaseCache``, whatever the Django version."""

from __future__ import annotations

import inspect

import pytest
from django.utils.module_loading import import_string

from django_valkey_fast.async_cache.cache import AsyncValkeyCache
from django_valkey_fast.cache import EXTENDED_ASYNC_API, ValkeyCache
from django_valkey_fast.cluster_cache.cache import ClusterValkeyCache
from tests.native_async import (
    DJANGO_ASYNC_API, ThreadHop, exercise_async_api, inherited_from_base_cache,
    no_thread_hops,
)

SYNC_ALIAS_CLIENTS = ["django_valkey_fast.client.DefaultClient",
                      "django_valkey_fast.client.HerdClient",
                      "django_valkey_fast.client.ShardClient"]
ASYNC_CLIENTS = ["django_valkey_fast.async_cache.client.AsyncDefaultClient",
                 "django_valkey_fast.async_cache.client.AsyncHerdClient"]


@pytest.mark.parametrize("backend", [ValkeyCache, AsyncValkeyCache, ClusterValkeyCache])
def test_no_async_method_is_inherited_from_base_cache(backend):
    assert inherited_from_base_cache(backend) == []
    for name in DJANGO_ASYNC_API + list(EXTENDED_ASYNC_API):
        method = getattr(backend, name)
        assert inspect.iscoroutinefunction(method) or name in (
            "aiter_keys", "asscan_iter"), name


@pytest.mark.parametrize("client_path", [
    *SYNC_ALIAS_CLIENTS, *ASYNC_CLIENTS,
    "django_valkey_fast.client.SentinelClient",
    "django_valkey_fast.async_cache.client.AsyncSentinelClient",
    "django_valkey_fast.cluster_cache.client.DefaultClusterClient",
])
def test_every_client_has_native_coroutines(client_path):
    """The backends' ``a*`` methods call these: each a coroutine function (or an
    async generator function for the iterators), on every client class."""
    client_class = import_string(client_path)
    for name in DJANGO_ASYNC_API + list(EXTENDED_ASYNC_API):
        if name in ("aget_or_set", "aclose", "adelete", "aclear") and not hasattr(
                client_class, name):
            continue  # answered by the backend itself
        method = getattr(client_class, name)
        assert inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method), \
            (client_path, name)


def test_the_thread_hop_guard_works():
    """The guard fails a real hop (so the tests below can fail)."""
    from asgiref.sync import sync_to_async

    async def hop():
        return await sync_to_async(lambda: 1)()

    import asyncio

    with no_thread_hops(), pytest.raises(ThreadHop):
        asyncio.run(hop())


@pytest.mark.parametrize("client_path", SYNC_ALIAS_CLIENTS)
async def test_sync_alias_async_api_runs_on_the_loop(make_cache, server, client_path):
    location = server.url
    if "Shard" in client_path:
        location = [server.url, server.url[:-1] + "1", server.url[:-1] + "2"]
    cache = make_cache(LOCATION=location, OPTIONS={"CLIENT_CLASS": client_path})
    with no_thread_hops():
        called = await exercise_async_api(cache, prefix="s")
    assert set(DJANGO_ASYNC_API) | set(EXTENDED_ASYNC_API) <= called


@pytest.mark.parametrize("client_path", ASYNC_CLIENTS)
async def test_async_backend_api_runs_on_the_loop(server, client_path):
    cache = AsyncValkeyCache(server.url, {"OPTIONS": {"CLIENT_CLASS": client_path}})
    with no_thread_hops():
        called = await exercise_async_api(cache, prefix="a")
    assert set(DJANGO_ASYNC_API) | set(EXTENDED_ASYNC_API) <= called
