"""django-valkey's ``AsyncValkeyCache``: the cache API as coroutines.

``BACKEND: "django_valkey_fast.async_cache.cache.AsyncValkeyCache"``. ``get``,
``set``, ... are coroutines (as in django-valkey) and ``aget``, ``aset``, ... are
the same ones. Code written for one alias serving sync and async should use
``django_valkey_fast.cache.ValkeyCache`` instead, whose ``get`` blocks and whose
``aget`` is native async; this class exists for code written against django-valkey's
async backend.
"""

from __future__ import annotations

import asyncio

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from django_valkey_fast.cache import EXTENDED_API, ValkeyCache

__all__ = ["AsyncValkeyCache"]

# Django's names whose coroutine lives on the client under the same name.
_COROUTINES = (
    "get", "set", "add", "get_many", "set_many", "delete_many", "has_key", "incr",
    "decr", "incr_version", "decr_version", "touch", "clear", "delete_pattern",
) + tuple(name for name in EXTENDED_API if name not in ("iter_keys", "sscan_iter"))


class _Closed:
    """What ``close()`` returns: awaitable (django-valkey's callers await it: the
    client's ``close()`` then runs) and harmless when Django's sync ``close_caches``
    does not await it."""

    __slots__ = ("_task", "_client")

    def __init__(self, task=None, client=None):
        self._task = task
        self._client = client

    def __await__(self):
        if self._task is not None:
            return self._task.__await__()
        if self._client is not None:
            return self._client.close().__await__()
        return iter(())


def _coroutine(name):
    async def method(self, *args, **kwargs):
        return await getattr(self.client, name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"Coroutine: see the client's ``{name}``."
    return method


class AsyncValkeyCache(ValkeyCache):
    """A cache whose every operation is a coroutine (django-valkey's async backend)."""

    DEFAULT_CLIENT_CLASS = "django_valkey_fast.async_cache.client.AsyncDefaultClient"
    is_async = True

    async def get_or_set(self, key, default, timeout=DEFAULT_TIMEOUT, version=None):
        """Return the value of ``key``, first storing ``default`` if it is missing."""
        single_flight = getattr(self.client, "get_or_set", None)
        if single_flight is not None:
            return await single_flight(key, default, timeout, version)
        return await ValkeyCache.aget_or_set(self, key, default, timeout, version)

    aget_or_set = get_or_set

    async def delete(self, key, version=None, prefix=None, client=None):
        """Delete ``key``; True if it existed."""
        return bool(await self.client.delete(key, version, prefix, client=client))

    adelete = delete

    def iter_keys(self, *args, **kwargs):
        """An async iterator over the keys matching a glob."""
        return self.client.aiter_keys(*args, **kwargs)

    def sscan_iter(self, *args, **kwargs):
        """An async iterator over the members of a set."""
        return self.client.asscan_iter(*args, **kwargs)

    aiter_keys, asscan_iter = iter_keys, sscan_iter

    def close(self, **kwargs):
        """Close connections if configured to; safe to call with or without ``await``.

        Django's ``close_caches`` calls ``close()`` without awaiting it at the end of
        every request: nothing is left un-awaited, and no warning is printed.
        """
        client = self.__dict__.get("client")  # never build a client just to close it
        if client is None:
            return _Closed()
        if not client._close_requested():
            return _Closed(client=client)  # awaited: the client's close() runs
        for channel in client._aio_channels():
            channel.close()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: a closed loop's connections are swept anyway
            return _Closed()
        return _Closed(loop.create_task(client.close()))

    async def aclose(self, **kwargs):
        """Close connections if configured to."""
        await self.close()

    def __contains__(self, key):
        raise TypeError("use 'await cache.has_key(key)' with AsyncValkeyCache")


for _name in _COROUTINES:
    setattr(AsyncValkeyCache, _name, _coroutine(_name))
    setattr(AsyncValkeyCache, "a" + _name, getattr(AsyncValkeyCache, _name))
del _name
