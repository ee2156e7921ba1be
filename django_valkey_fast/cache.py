"""``ValkeyCache``: the Django cache backend.

``BACKEND: "django_valkey_fast.cache.ValkeyCache"``. Every method maps onto the
client (``OPTIONS["CLIENT_CLASS"]``, default ``client.DefaultClient``), which owns
the servers and runs the operations.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.utils.module_loading import import_string

from django_valkey_fast.base import ErrorPolicy, prepared

__all__ = ["ValkeyCache"]

# Extended (django-valkey) methods that pass straight through to the client; each
# also has its native-async twin ``a<name>``.
EXTENDED_API = (
    "ttl", "pttl", "persist", "expire", "pexpire", "expire_at", "pexpire_at",
    "get_lock", "lock", "keys", "iter_keys", "mget", "mset",
    "hset", "hdel", "hlen", "hkeys", "hexists",
    "sadd", "scard", "sdiff", "sdiffstore", "sinter", "sinterstore", "smismember",
    "sismember", "smembers", "smove", "spop", "srandmember", "srem", "sscan",
    "sscan_iter", "sunion", "sunionstore",
)
EXTENDED_ASYNC_API = tuple(f"a{name}" for name in EXTENDED_API) + ("adelete_pattern",)


def _pass_through(name):
    if name in EXTENDED_ASYNC_API and name not in ("aiter_keys", "asscan_iter"):
        async def method(self, *args, **kwargs):
            return await getattr(self.client, name)(*args, **kwargs)
    else:
        def method(self, *args, **kwargs):
            return getattr(self.client, name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"See the client's ``{name}``."
    return method


class ValkeyCache(BaseCache):
    """Django cache backend for Valkey and Redis.

    The sync methods block on a pooled connection; the ``a*`` methods run natively on
    asyncio (no thread), on a connection per event loop. One alias serves both.
    """

    DEFAULT_CLIENT_CLASS = "django_valkey_fast.client.DefaultClient"

    def __init__(self, server, params: dict) -> None:
        super().__init__(params)
        self._server = server
        self._params = params
        self._client_cls, self._errors, self._default_scan_itersize = prepared(
            (type(self), "backend"), params, lambda: self._prepare(params)
        )
        self._ignore_exceptions = self._errors.ignore
        self._log_ignored_exceptions = self._errors.log
        self.logger = self._errors.logger

    def _prepare(self, params):
        options = params.get("OPTIONS", {})
        return (
            import_string(options.get("CLIENT_CLASS", self.DEFAULT_CLIENT_CLASS)),
            ErrorPolicy(options),
            getattr(settings, "DJANGO_VALKEY_SCAN_ITERSIZE", 10),
        )

    @property
    def key_func(self):
        """The KEY_FUNCTION; assigning it (as Django's tests do) reaches the client."""
        return self._key_func

    @key_func.setter
    def key_func(self, function):
        self._key_func = function
        client = self.__dict__.get("client")
        if client is not None:
            client.key_func_changed()

    @functools.cached_property
    def client(self):
        """The client instance (built on first use)."""
        return self._client_cls(self._server, self._params, self)

    def get_client_class(self):
        """The client class named by ``OPTIONS["CLIENT_CLASS"]``."""
        return self._client_cls

    # -- Django's cache API ---------------------------------------------------------

    def make_key(self, key, version=None, prefix=None):
        """Return the server key for ``key`` (a CacheKey)."""
        return self.client.make_key(key, version=version, prefix=prefix)

    def make_and_validate_key(self, key, version=None):
        """Return the server key, warning about non-portable keys."""
        return self.client.make_key(key, version=version)

    def make_pattern(self, pattern, version=None, prefix=None):
        """Return the glob pattern for ``pattern``."""
        return self.client.make_pattern(pattern, version=version, prefix=prefix)

    def get(self, key, default=None, version=None, client=None):
        """Return the value of ``key``, or ``default``."""
        return self.client.get(key, default, version, client=client)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None,
            nx=False, xx=False):
        """Store ``value`` under ``key`` (``nx``: only if missing, ``xx``: only if present)."""
        return self.client.set(key, value, timeout, version, nx, xx, client=client)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        """Store ``value`` only if ``key`` is missing; True if stored."""
        return self.client.add(key, value, timeout, version, client=client)

    def delete(self, key, version=None, prefix=None, client=None):
        """Delete ``key``; True if it existed."""
        return bool(self.client.delete(key, version, prefix, client=client))

    def get_many(self, keys, version=None, client=None):
        """Return a dict of the existing values of ``keys`` (one round trip)."""
        return self.client.get_many(keys, version, client=client)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        """Store every item of ``data`` (one round trip); return the keys that failed."""
        return self.client.set_many(data, timeout, version, client=client)

    def delete_many(self, keys, version=None, client=None):
        """Delete ``keys`` (one round trip); return how many existed."""
        return self.client.delete_many(keys, version, client=client)

    def delete_pattern(self, pattern, version=None, prefix=None, client=None, itersize=None):
        """Delete the keys matching the glob ``pattern``; return how many."""
        return self.client.delete_pattern(
            pattern, version=version, prefix=prefix, client=client,
            itersize=itersize or self._default_scan_itersize,
        )

    def has_key(self, key, version=None, client=None):
        """Whether ``key`` exists."""
        return self.client.has_key(key, version, client=client)

    def __contains__(self, key):
        return self.has_key(key)

    def get_or_set(self, key, default, timeout=DEFAULT_TIMEOUT, version=None):
        """Return ``key``'s value, first storing ``default`` (or its result) if missing.

        A client with its own ``get_or_set`` (the herd client: one computation per
        process) is used; otherwise Django's get / add / get.
        """
        single_flight = getattr(self.client, "get_or_set", None)
        if single_flight is not None:
            return single_flight(key, default, timeout, version)
        return super().get_or_set(key, default, timeout=timeout, version=version)

    def incr(self, key, delta=1, version=None, client=None, ignore_key_check=False):
        """Add ``delta`` atomically (TTL kept); ValueError if missing unless ``ignore_key_check``."""
        return self.client.incr(key, delta, version, ignore_key_check, client=client)

    def decr(self, key, delta=1, version=None, client=None):
        """Subtract ``delta`` atomically; ValueError if ``key`` is missing."""
        return self.client.decr(key, delta, version, client=client)

    def incr_version(self, key, delta=1, version=None, client=None):
        """Move ``key`` to the next version (value and TTL kept); return the new version."""
        return self.client.incr_version(key, delta, version, client=client)

    def decr_version(self, key, delta=1, version=None, client=None):
        """Move ``key`` to the previous version; return the new version."""
        return self.client.decr_version(key, delta, version, client=client)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        """Give ``key`` a new timeout; True if it exists."""
        return self.client.touch(key, timeout, version, client=client)

    def clear(self, client=None):
        """Delete every key of the database."""
        return self.client.clear(client=client)

    def close(self, **kwargs):
        """Called by Django at the end of each request; closes only if configured to."""
        client = self.__dict__.get("client")  # never build a client just to close it
        if client is not None:
            client.close()

    # -- Django's async cache API, native -------------------------------------------------

    async def aget(self, key, default=None, version=None, client=None):
        """Return the value of ``key``, or ``default``."""
        return await self.client.aget(key, default, version, client=client)

    async def aset(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None,
                   nx=False, xx=False):
        """Store ``value`` under ``key``."""
        return await self.client.aset(key, value, timeout, version, nx, xx, client=client)

    async def aadd(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        """Store ``value`` only if ``key`` is missing; True if stored."""
        return await self.client.aadd(key, value, timeout, version, client=client)

    async def adelete(self, key, version=None, prefix=None, client=None):
        """Delete ``key``; True if it existed."""
        return bool(await self.client.adelete(key, version, prefix, client=client))

    async def aget_many(self, keys, version=None, client=None):
        """Return a dict of the existing values of ``keys`` (one round trip)."""
        return await self.client.aget_many(keys, version, client=client)

    async def aset_many(self, data, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        """Store every item of ``data`` (one round trip); return the keys that failed."""
        return await self.client.aset_many(data, timeout, version, client=client)

    async def adelete_many(self, keys, version=None, client=None):
        """Delete ``keys`` (one round trip)."""
        return await self.client.adelete_many(keys, version, client=client)

    async def ahas_key(self, key, version=None, client=None):
        """Whether ``key`` exists."""
        return await self.client.ahas_key(key, version, client=client)

    async def aincr(self, key, delta=1, version=None, client=None, ignore_key_check=False):
        """Add ``delta`` atomically (TTL kept); ValueError if ``key`` is missing."""
        return await self.client.aincr(key, delta, version, ignore_key_check, client=client)

    async def adecr(self, key, delta=1, version=None, client=None):
        """Subtract ``delta`` atomically; ValueError if ``key`` is missing."""
        return await self.client.adecr(key, delta, version, client=client)

    async def aincr_version(self, key, delta=1, version=None, client=None):
        """Move ``key`` to the next version; return the new version."""
        return await self.client.aincr_version(key, delta, version, client=client)

    async def adecr_version(self, key, delta=1, version=None, client=None):
        """Move ``key`` to the previous version; return the new version."""
        return await self.client.adecr_version(key, delta, version, client=client)

    async def atouch(self, key, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        """Give ``key`` a new timeout; True if it exists."""
        return await self.client.atouch(key, timeout, version, client=client)

    async def aclear(self, client=None):
        """Delete every key of the database."""
        return await self.client.aclear(client=client)

    async def aclose(self, **kwargs):
        """The async end-of-request hook; closes only if configured to."""
        client = self.__dict__.get("client")
        if client is not None:
            await client.aclose()

    async def aget_or_set(self, key, default, timeout=DEFAULT_TIMEOUT, version=None):
        """Return the value of ``key``, first storing ``default`` (or its result) if missing."""
        single_flight = getattr(self.client, "aget_or_set", None)
        if single_flight is not None:
            return await single_flight(key, default, timeout, version)
        value = await self.aget(key, self._missing_key, version=version)
        if value is self._missing_key:
            if callable(default):
                default = default()
            await self.aadd(key, default, timeout=timeout, version=version)
            # Read again: another caller may have added a value in between.
            return await self.aget(key, default, version=version)
        return value

    async def adelete_pattern(self, pattern, version=None, prefix=None, client=None,
                              itersize=None):
        """Delete the keys matching the glob ``pattern``; return how many."""
        return await self.client.adelete_pattern(
            pattern, version=version, prefix=prefix, client=client,
            itersize=itersize or self._default_scan_itersize,
        )


for _name in EXTENDED_API + EXTENDED_ASYNC_API:
    if _name not in ValkeyCache.__dict__:
        setattr(ValkeyCache, _name, _pass_through(_name))
del _name
