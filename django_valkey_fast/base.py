"""The backend classes: Django's cache API and django-valkey's extended one, sync and
async, on a client (django-valkey's ``base`` module layout)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import operator
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, cast

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.utils.module_loading import import_string

from django_valkey_fast._api import (
    AsyncBackendMethods, BackendExtendedMethods, NativeAsyncExtendedMethods,
)
from django_valkey_fast.config import ErrorPolicy, prepared
from django_valkey_fast.exceptions import ConnectionInterrupted

if TYPE_CHECKING:
    from django_valkey_fast._common import CacheKey
    from django_valkey_fast.operations import Timeout

__all__ = [
    "AsyncBackendCommands", "Backend", "BackendCommands", "BackendConfig", "BaseValkeyCache", "Client",
    "CONNECTION_INTERRUPTED", "ConnectionInterrupted", "EXTENDED_API", "EXTENDED_ASYNC_API",
    "close_async_caches", "decorate_all_methods", "NativeAsyncCommands", "omit_exception",
    "omit_exception_async",
]


# -- the backend classes (django-valkey's ``base`` module layout) ---------------------


def _key_setting(name: str, doc: str) -> property:
    """A backend attribute that the client's keys or timeouts depend on, stored as
    ``name`` (read through ``__getattr__`` from the configuration until this backend
    assigns it). Assigning it after construction (``cache.key_prefix = ...``) reaches
    the client instead of leaving it on the old value, which would read and write
    other keys than the backend says."""

    def assign(backend, value) -> None:
        backend.__dict__[name] = value
        backend._key_settings_changed()

    return property(operator.attrgetter(name), assign, doc=doc)


class BackendConfig(NamedTuple):
    """What a backend configuration (class, LOCATION, params) builds once per process."""

    shared_client: list  # [the client every backend of the configuration uses], once built
    state: dict  # the attributes every backend of the configuration starts with

Client = TypeVar("Client")
Backend = TypeVar("Backend")

# What django-valkey's ``_get`` returns for an ignored error (kept for subclasses).
CONNECTION_INTERRUPTED = object()

# Extended (django-valkey) methods that pass straight through to the client; each
# also has its native-async twin ``a<name>``.
EXTENDED_API = (
    "ttl", "pttl", "persist", "expire", "pexpire", "expire_at", "pexpire_at",
    "get_lock", "lock", "keys", "iter_keys", "mget", "mset",
    "hset", "hget", "hdel", "hlen", "hkeys", "hexists",
    "sadd", "scard", "sdiff", "sdiffstore", "sinter", "sinterstore", "smismember",
    "sismember", "smembers", "smove", "spop", "srandmember", "srem", "sscan",
    "sscan_iter", "sunion", "sunionstore",
)
EXTENDED_ASYNC_API = tuple(f"a{name}" for name in EXTENDED_API) + ("adelete_pattern",)


def _pass_through(name):
    """A backend method that passes its arguments to the client's method ``name``."""
    if name in EXTENDED_ASYNC_API and name not in ("aiter_keys", "asscan_iter"):
        return _named_pass_through(_coroutine_pass_through(name), name)
    return _named_pass_through(_call_pass_through(name), name)


def _coroutine_pass_through(name):
    async def method(self, *args, **kwargs):
        return await getattr(self.client, name)(*args, **kwargs)
    return method


def _call_pass_through(name):
    def method(self, *args, **kwargs):
        return getattr(self.client, name)(*args, **kwargs)
    return method


def _named_pass_through(method, name):
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"See the client's ``{name}``."
    method.pass_through = True
    return method


class BaseValkeyCache(Generic[Client, Backend]):
    """What every backend of this package is built on: settings, the client (built
    on first use), keys. Subclass it with :class:`BackendCommands` and/or
    :class:`NativeAsyncCommands` (and Django's ``BaseCache`` last) for a backend, as
    ``cache.ValkeyCache`` does; ``isinstance(cache, BaseValkeyCache)`` holds for every
    backend here."""

    DEFAULT_CLIENT_CLASS = "django_valkey_fast.client.DefaultClient"
    _missing_key = object()
    # Set by Django's BaseCache.__init__ (the backends derive from BaseCache too),
    # through the properties below.
    _key_prefix: str
    _version: int
    _default_timeout: float | None
    _key_func: Any

    def __init__(self, server: str | Sequence[str], params: dict) -> None:
        config = prepared(
            (type(self), "backend", server if isinstance(server, str) else tuple(server)),
            params, lambda: self._prepare(server, params))
        # What Django's BaseCache.__init__ and this class make of the settings is made
        # once per configuration and read from there (``__getattr__``): a backend
        # built per request holds two attributes of its own, and one assigned later
        # (``cache.key_prefix = ...``) shadows the shared value for this backend only.
        # Copying the two dozen shared attributes into each backend cost more than
        # the rest of building it, in the memory a request touches after a round trip.
        if type(self).__init__ is not BaseValkeyCache.__init__:
            # A subclass's __init__ may have set attributes before calling this one:
            # as Django's BaseCache.__init__ would, the settings' values replace them.
            self.__dict__.update(config.state)
        self._config = config
        shared = config.shared_client
        if shared:  # (its key settings are this configuration's: the same params)
            self.client = shared[0]  # (what the ``client`` property would return)

    def __getattr__(self, name: str) -> Any:
        """An attribute every backend of the configuration shares (its prepared
        state): called only for names this backend does not hold itself."""
        config = self.__dict__.get("_config")
        if config is not None:
            try:
                return config.state[name]
            except KeyError:
                pass
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _prepare(self, server, params) -> BackendConfig:
        BaseCache.__init__(cast(BaseCache, self), params)  # Django's parsing, whatever the MRO
        options = params.get("OPTIONS", {})
        self._server = server
        self._params = params
        self._client_cls = import_string(options.get("CLIENT_CLASS", self.DEFAULT_CLIENT_CLASS))
        errors = ErrorPolicy(options)
        self._default_scan_itersize = getattr(settings, "DJANGO_VALKEY_SCAN_ITERSIZE", 10)
        self._ignore_exceptions = errors.ignore
        self._log_ignored_exceptions = errors.log
        self.logger = errors.logger
        config = self._config = BackendConfig([], {})
        config.state.update(self.__dict__)
        return config

    def _key_settings_changed(self) -> None:
        """A key setting was assigned after construction (as Django's tests do with
        ``key_func``): the client must make this backend's keys from now on."""
        client = self.__dict__.get("client")
        if client is None:
            return
        if client._backend is self:
            client.backend_settings_changed()
        else:  # the configuration's client: this backend now needs one of its own
            del self.__dict__["client"]

    key_func = _key_setting(
        "_key_func", "The KEY_FUNCTION; assigning it (as Django's tests do) reaches the client.")
    key_prefix = _key_setting(
        "_key_prefix", "The KEY_PREFIX; assigning it reaches the client.")
    version = _key_setting(
        "_version", "The default VERSION; assigning it reaches the client.")
    default_timeout = _key_setting(
        "_default_timeout", "The default TIMEOUT in seconds; assigning it reaches the client.")

    @functools.cached_property
    def client(self):
        """The client (built on first use).

        One client serves every backend built from the same configuration in this
        process: Django builds a backend per request under ASGI (and per thread under
        WSGI), and the client holds nothing of a particular backend but its settings.
        A backend whose key settings differ from its configuration's (a ``key_func``
        assigned after construction) gets a client of its own."""
        shared = self._config.shared_client
        if not shared:
            # Built for a backend of its own, that no caller can change the keys of.
            owner = type(self)(self._server, self._params)
            shared.append(self._client_cls(self._server, self._params, owner))
        client = shared[0]
        if self._keys_match(client._backend):
            return client
        return self._client_cls(self._server, self._params, self)

    def _keys_match(self, other) -> bool:
        """Whether backend ``other`` makes the same keys, with the same default timeout."""
        return (other._key_func is self._key_func and other._key_prefix == self._key_prefix
                and other._version == self._version
                and other._default_timeout == self._default_timeout)

    def get_client_class(self) -> type[Client]:
        """The client class named by ``OPTIONS["CLIENT_CLASS"]``."""
        return self._client_cls

    # -- Django's cache API ---------------------------------------------------------

    def make_key(self, key: Any, version: int | None = None,
                 prefix: str | None = None) -> CacheKey:
        """Return the server key for ``key`` (a CacheKey)."""
        return self.client.make_key(key, version=version, prefix=prefix)

    def make_and_validate_key(self, key: Any, version: int | None = None) -> CacheKey:
        """Return the server key, warning about non-portable keys."""
        return self.client.make_key(key, version=version)

    def make_pattern(self, pattern: str, version: int | None = None,
                     prefix: str | None = None) -> CacheKey:
        """Return the glob pattern for ``pattern``."""
        return self.client.make_pattern(pattern, version=version, prefix=prefix)


class BackendCommands(BackendExtendedMethods):
    """The sync cache API (Django's and the extended one), on ``self.client``."""

    client: Any  # BaseValkeyCache's
    _default_scan_itersize: int

    def close(self, **kwargs: Any) -> None:
        """Called by Django at the end of each request; closes only if configured to."""
        client = self.__dict__.get("client")  # never build a client just to close it
        if client is not None:
            client.close()

    def get(self, key: Any, default: Any = None, version: int | None = None,
            client: Any = None) -> Any:
        """Return the value of ``key``, or ``default``."""
        return self.client.get(key, default, version, client=client)

    def set(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
            version: int | None = None, client: Any = None, nx: bool = False,
            xx: bool = False) -> bool:
        """Store ``value`` under ``key`` (``nx``: only if missing, ``xx``: only if present)."""
        return self.client.set(key, value, timeout, version, nx, xx, client=client)

    def add(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
            version: int | None = None, client: Any = None) -> bool:
        """Store ``value`` only if ``key`` is missing; True if stored."""
        return self.client.add(key, value, timeout, version, client=client)

    def delete(self, key: Any, version: int | None = None, prefix: str | None = None,
               client: Any = None) -> bool:
        """Delete ``key``; True if it existed."""
        return bool(self.client.delete(key, version, prefix, client=client))

    def get_many(self, keys: Iterable[Any], version: int | None = None,
                 client: Any = None) -> dict[Any, Any]:
        """Return a dict of the existing values of ``keys`` (one round trip)."""
        return self.client.get_many(keys, version, client=client)

    def set_many(self, data: Mapping[Any, Any], timeout: Timeout = DEFAULT_TIMEOUT,
                 version: int | None = None, client: Any = None) -> list:
        """Store every item of ``data`` (one round trip); return the keys that failed."""
        return self.client.set_many(data, timeout, version, client=client)

    def delete_many(self, keys: Iterable[Any], version: int | None = None,
                    client: Any = None) -> int:
        """Delete ``keys`` (one round trip); return how many existed."""
        return self.client.delete_many(keys, version, client=client)

    def delete_pattern(self, pattern: str, version: int | None = None,
                       prefix: str | None = None, client: Any = None,
                       itersize: int | None = None) -> int:
        """Delete the keys matching the glob ``pattern``; return how many."""
        return self.client.delete_pattern(
            pattern, version=version, prefix=prefix, client=client,
            itersize=itersize or self._default_scan_itersize,
        )

    def has_key(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        """Whether ``key`` exists."""
        return self.client.has_key(key, version, client=client)

    def __contains__(self, key):
        return self.has_key(key)

    def get_or_set(self, key: Any, default: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                   version: int | None = None) -> Any:
        """Return ``key``'s value, first storing ``default`` (or its result) if missing.

        A client with its own ``get_or_set`` (the herd client: one computation per
        process) is used; otherwise Django's get / add / get.
        """
        single_flight = getattr(self.client, "get_or_set", None)
        if single_flight is not None:
            return single_flight(key, default, timeout, version)
        return BaseCache.get_or_set(cast(BaseCache, self), key, default, timeout=timeout,
                                    version=version)

    def incr(self, key: Any, delta: Any = 1, version: int | None = None, client: Any = None,
             ignore_key_check: bool = False) -> Any:
        """Add ``delta`` atomically (TTL kept); ValueError if missing unless ``ignore_key_check``."""
        return self.client.incr(key, delta, version, ignore_key_check, client=client)

    def decr(self, key: Any, delta: Any = 1, version: int | None = None,
             client: Any = None) -> Any:
        """Subtract ``delta`` atomically; ValueError if ``key`` is missing."""
        return self.client.decr(key, delta, version, client=client)

    def incr_version(self, key: Any, delta: int = 1, version: int | None = None,
                     client: Any = None) -> int:
        """Move ``key`` to the next version (value and TTL kept); return the new version."""
        return self.client.incr_version(key, delta, version, client=client)

    def decr_version(self, key: Any, delta: int = 1, version: int | None = None,
                     client: Any = None) -> int:
        """Move ``key`` to the previous version; return the new version."""
        return self.client.decr_version(key, delta, version, client=client)

    def touch(self, key: Any, timeout: Timeout = DEFAULT_TIMEOUT, version: int | None = None,
              client: Any = None) -> bool:
        """Give ``key`` a new timeout; True if it exists."""
        return self.client.touch(key, timeout, version, client=client)

    def clear(self, client: Any = None) -> bool:
        """Delete every key of the database."""
        return self.client.clear(client=client)


class NativeAsyncCommands(NativeAsyncExtendedMethods):
    """The native async cache API (Django's ``a*`` methods and the extended ones)."""

    client: Any  # BaseValkeyCache's
    _default_scan_itersize: int
    _missing_key: object

    async def aclose(self, **kwargs: Any) -> None:
        """The async end-of-request hook; closes only if configured to."""
        client = self.__dict__.get("client")  # never build a client just to close it
        if client is not None:
            await client.aclose()

    async def aget(self, key: Any, default: Any = None, version: int | None = None,
                   client: Any = None) -> Any:
        """Return the value of ``key``, or ``default``."""
        return await self.client.aget(key, default, version, client=client)

    async def aset(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                   version: int | None = None, client: Any = None, nx: bool = False,
                   xx: bool = False) -> bool:
        """Store ``value`` under ``key``."""
        return await self.client.aset(key, value, timeout, version, nx, xx, client=client)

    async def aadd(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                   version: int | None = None, client: Any = None) -> bool:
        """Store ``value`` only if ``key`` is missing; True if stored."""
        return await self.client.aadd(key, value, timeout, version, client=client)

    async def adelete(self, key: Any, version: int | None = None, prefix: str | None = None,
                      client: Any = None) -> bool:
        """Delete ``key``; True if it existed."""
        return bool(await self.client.adelete(key, version, prefix, client=client))

    async def aget_many(self, keys: Iterable[Any], version: int | None = None,
                        client: Any = None) -> dict[Any, Any]:
        """Return a dict of the existing values of ``keys`` (one round trip)."""
        return await self.client.aget_many(keys, version, client=client)

    async def aset_many(self, data: Mapping[Any, Any], timeout: Timeout = DEFAULT_TIMEOUT,
                        version: int | None = None, client: Any = None) -> list:
        """Store every item of ``data`` (one round trip); return the keys that failed."""
        return await self.client.aset_many(data, timeout, version, client=client)

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None,
                           client: Any = None) -> int:
        """Delete ``keys`` (one round trip)."""
        return await self.client.adelete_many(keys, version, client=client)

    async def ahas_key(self, key: Any, version: int | None = None,
                       client: Any = None) -> bool:
        """Whether ``key`` exists."""
        return await self.client.ahas_key(key, version, client=client)

    async def aincr(self, key: Any, delta: Any = 1, version: int | None = None,
                    client: Any = None, ignore_key_check: bool = False) -> Any:
        """Add ``delta`` atomically (TTL kept); ValueError if ``key`` is missing."""
        return await self.client.aincr(key, delta, version, ignore_key_check, client=client)

    async def adecr(self, key: Any, delta: Any = 1, version: int | None = None,
                    client: Any = None) -> Any:
        """Subtract ``delta`` atomically; ValueError if ``key`` is missing."""
        return await self.client.adecr(key, delta, version, client=client)

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None,
                            client: Any = None) -> int:
        """Move ``key`` to the next version; return the new version."""
        return await self.client.aincr_version(key, delta, version, client=client)

    async def adecr_version(self, key: Any, delta: int = 1, version: int | None = None,
                            client: Any = None) -> int:
        """Move ``key`` to the previous version; return the new version."""
        return await self.client.adecr_version(key, delta, version, client=client)

    async def atouch(self, key: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                     version: int | None = None, client: Any = None) -> bool:
        """Give ``key`` a new timeout; True if it exists."""
        return await self.client.atouch(key, timeout, version, client=client)

    async def aclear(self, client: Any = None) -> bool:
        """Delete every key of the database."""
        return await self.client.aclear(client=client)

    async def aget_or_set(self, key: Any, default: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                          version: int | None = None) -> Any:
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

    async def adelete_pattern(self, pattern: str, version: int | None = None,
                              prefix: str | None = None, client: Any = None,
                              itersize: int | None = None) -> int:
        """Delete the keys matching the glob ``pattern``; return how many."""
        return await self.client.adelete_pattern(
            pattern, version=version, prefix=prefix, client=client,
            itersize=itersize or self._default_scan_itersize,
        )


for _name in EXTENDED_API:
    if _name not in BackendCommands.__dict__:
        setattr(BackendCommands, _name, _pass_through(_name))
for _name in EXTENDED_ASYNC_API:
    if _name not in NativeAsyncCommands.__dict__:
        setattr(NativeAsyncCommands, _name, _pass_through(_name))
del _name


class _Closed:
    """What :meth:`AsyncBackendCommands.close` returns: awaitable (django-valkey's
    callers await it: the client's ``close()`` then runs) and harmless when Django's
    sync ``close_caches`` does not await it."""

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


class AsyncBackendCommands(AsyncBackendMethods, NativeAsyncCommands):
    """django-valkey's async backend API: the cache API as coroutines under the
    plain names (``await cache.get(...)``), each also under its ``a*`` name. Each is
    :class:`NativeAsyncCommands`' ``a*`` method: one implementation for both."""

    def close(self, **kwargs: Any) -> Awaitable[None]:
        """Close connections if configured to; safe to call with or without ``await``.

        Django's ``close_caches`` calls ``close()`` without awaiting it at the end of
        every request: nothing is left un-awaited, and no warning is printed.
        """
        client = self.__dict__.get("client")  # never build a client just to close it
        if client is None:
            return _Closed()
        if not client.close_loop_channels():
            return _Closed(client=client)  # awaited: the client's close() runs
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: a closed loop's connections are swept anyway
            return _Closed()
        return _Closed(loop.create_task(client.close()))

    async def aclose(self, **kwargs: Any) -> None:
        """Close connections if configured to."""
        await self.close()

    def __contains__(self, key):
        raise TypeError("use 'await cache.has_key(key)' with AsyncValkeyCache")


for _name in dir(NativeAsyncCommands):
    if _name.startswith("a") and _name != "aclose":
        setattr(AsyncBackendCommands, _name[1:], getattr(NativeAsyncCommands, _name))
del _name


# -- django-valkey's error decorators and request_finished receiver -------------------


def omit_exception(method=None, return_value=None, gen: bool = False):
    """Decorate a backend method: a ``ConnectionInterrupted`` it raises is swallowed
    (``return_value`` returned, logged if configured) when the backend ignores errors
    (``IGNORE_EXCEPTIONS``), and raised otherwise. With ``gen`` the method returns an
    iterator, consumed under the same rule. (The backends here apply the policy in
    their clients already; this is for methods of subclasses.)"""
    if method is None:
        return functools.partial(omit_exception, return_value=return_value, gen=gen)

    if gen:
        @functools.wraps(method)
        def iterate(self, *args, **kwargs):
            try:
                yield from method(self, *args, **kwargs)
            except ConnectionInterrupted as error:
                yield _omitted(self, error, return_value)
        return iterate

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ConnectionInterrupted as error:
            return _omitted(self, error, return_value)
    return call


def _omitted(backend, error, return_value):
    """``return_value`` if ``backend`` ignores errors (logging it if asked), else raise."""
    if getattr(backend, "_ignore_exceptions", False):
        if getattr(backend, "_log_ignored_exceptions", False):
            backend.logger.exception("Exception ignored")
        return return_value
    raise error


def omit_exception_async(method=None, return_value=None, gen: bool = False):
    """:func:`omit_exception` for coroutines and async generators."""
    if method is None:
        return functools.partial(omit_exception_async, return_value=return_value, gen=gen)

    if gen or inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def iterate(self, *args, **kwargs):
            try:
                async for item in method(self, *args, **kwargs):
                    yield item
            except ConnectionInterrupted as error:
                yield _omitted(self, error, return_value)
        return iterate

    @functools.wraps(method)
    async def call(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except ConnectionInterrupted as error:
            return _omitted(self, error, return_value)
    return call


def decorate_all_methods(decorator):
    """Class decorator: apply ``decorator`` (:func:`omit_exception` or
    :func:`omit_exception_async`) to every public method of the class, as
    django-valkey does (``get_many`` falls back to ``{}``, the iterators are iterated
    under the rule)."""

    def decorate(cls):
        for name, attribute in list(vars(cls).items()):
            if name.startswith("__") or not callable(attribute) or name in (
                    "get", "get_or_set", "aget_or_set"):
                continue
            if name in ("get_many", "aget_many"):
                setattr(cls, name, decorator(attribute, return_value={}))
            elif name in ("iter_keys", "sscan_iter"):
                setattr(cls, name, decorator(attribute, gen=True))
            else:
                setattr(cls, name, decorator(attribute))
        return cls

    return decorate


async def close_async_caches(**kwargs) -> None:
    """A ``request_finished`` receiver (django-valkey's): close every initialised
    cache, awaiting the async backends' ``aclose()``. Not connected here: Django's own
    ``close_caches`` already works with every backend of this package (their
    ``close()`` is safe un-awaited); connect it yourself to await the closing."""
    from django.core.cache import caches

    for cache in caches.all(initialized_only=True):
        if getattr(cache, "is_async", False):
            await cache.aclose()
        else:
            cache.close()
