"""The default client: one primary, optional read replicas, sync I/O.

Each operation of :class:`~django_valkey_fast.operations.Operations` becomes a method
here that runs the operation's plan on a :class:`~django_valkey_fast.channel.Channel`:
writes go to the first LOCATION, reads to the others when there are any.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from django.conf import settings
from django.core.cache.backends.base import get_key_func
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from valkey.exceptions import ConnectionError, TimeoutError

from django_valkey_fast import pool
from django_valkey_fast._codec import Codec
from django_valkey_fast._common import CacheKey, without_password
from django_valkey_fast.config import (
    SERVER_ERRORS, ErrorPolicy, build_codec, build_key_maker, prepared,
)
from django_valkey_fast import async_channel as aio
from django_valkey_fast.channel import channel_of
from django_valkey_fast.client.local_cache import LocalCache, local_cache_options
from django_valkey_fast.client.telemetry import telemetry_for
from django_valkey_fast.client.servers import Servers
from django_valkey_fast.commands.hash import HashCommands
from django_valkey_fast.exceptions import interrupted
from django_valkey_fast._api import AsyncOperationMethods, SyncOperationMethods
from django_valkey_fast._drive import run_plan
from django_valkey_fast.operations import PlanHost, primary_search
from django_valkey_fast.plan_methods import arun_plan, bind_operations
from django_valkey_fast.routed_channel import AsyncNodes, SyncNodes
from django_valkey_fast.compressors.identity import IdentityCompressor

if TYPE_CHECKING:
    import valkey
    import valkey.asyncio
    from valkey.asyncio.lock import Lock as AsyncLock
    from valkey.lock import Lock

__all__ = ["BaseClient", "ClientConfig", "DefaultClient", "HashClient"]


def _sentinel_managed_client(sentinel: dict, params: dict):
    """A ``valkey.asyncio`` client that asks Sentinel where the service's primary (or
    a replica) is, as the channel described by ``sentinel`` does."""
    from valkey.asyncio.sentinel import Sentinel

    skip = ("host", "port", "unix", "ssl", "connection_pool", "parser_class")
    sentinel_kwargs = {k: v for k, v in sentinel["sentinels"][0].items() if k not in skip}
    manager = Sentinel([(s["host"], s["port"]) for s in sentinel["sentinels"]],
                       sentinel_kwargs=sentinel_kwargs,
                       **{k: v for k, v in params.items() if k not in skip})
    if sentinel["primary"]:
        return manager.master_for(sentinel["service"])
    return manager.slave_for(sentinel["service"])


class ClientConfig(NamedTuple):
    """What a client configuration (class, LOCATION, params) builds once per process."""

    reverse_key: Callable[[str], str]
    codec: Codec
    errors: ErrorPolicy
    connection_factory: Any
    servers: Servers
    replica_read_only: bool
    clear_scope: str
    close_connection: bool
    scan_itersize: int
    options: dict
    local_cache: Any  # client.local_cache.LocalCache, or None (CLIENT_SIDE_CACHE off)
    telemetry: Any  # client.telemetry.Telemetry, or None (OPENTELEMETRY, PROMETHEUS off)


class BaseClient(AsyncOperationMethods, PlanHost):
    """What the sync and the async clients share (django-valkey's ``BaseClient``):
    the servers of LOCATION (the first is the primary), keys, values, the asyncio
    channels and the native ``a*`` coroutines of every operation.

    ``server`` is the LOCATION: a URL, a comma-separated string of URLs, or a list;
    ``params`` is the cache's settings dict and ``backend`` the cache backend instance.
    """

    CONNECTION_FACTORY_PATH = "django_valkey_fast.pool.ConnectionFactory"
    # Whether LOCATION is a primary and its replicas, so that a write refused as
    # READONLY looks for the primary among them (and reorders them) before one retry.
    LOCATION_IS_PRIMARY_AND_REPLICAS = True
    # The sync connection factory of the client-side cache's invalidation connections.
    SYNC_CONNECTION_FACTORY_PATH = "django_valkey_fast.pool.ConnectionFactory"

    def __init__(self, server: str | Sequence[str], params: dict, backend: Any) -> None:
        if not server:
            raise ImproperlyConfigured("Missing connections string")
        if isinstance(server, str):
            server = server.split(",")
        # Built once per process for this configuration (see ``prepared``); what
        # reaches the servers is shared by its clients (see client/servers.py).
        config = prepared((type(self), "client", tuple(server)), params,
                          lambda: self._prepare(params, server))
        self._params = params
        self._backend = backend
        self._options: dict = config.options
        self.reverse_key = config.reverse_key
        self.connection_factory = config.connection_factory
        self._replica_read_only = config.replica_read_only
        self._clear_scope = config.clear_scope
        self._close_connection = config.close_connection
        servers = self._servers = config.servers
        self._server = servers.urls
        self._clients: list = servers.clients
        self._channels: list = servers.channels
        self._aio_params: list = servers.aio_params
        self._aio = servers.aio
        self._read_index = servers.read_index
        # Whether a read that fails on one server is read again from the others (a
        # primary and its replicas; not shards, not a cluster's seeds).
        self._reads_fail_over = self.LOCATION_IS_PRIMARY_AND_REPLICAS and len(servers.urls) > 1
        codec = self._codec = config.codec
        self._serializer = codec.serializer
        self._compressor = codec.compressor
        self.encode = codec.encode  # type: ignore[method-assign]  # (see encode below)
        self.decode = codec.decode  # type: ignore[method-assign]
        self.decode_many = codec.decode_many  # type: ignore[method-assign]
        self.backend_settings_changed()
        self._errors = config.errors
        self._scan_itersize = config.scan_itersize
        self._local_cache = config.local_cache
        if config.telemetry is not None:
            config.telemetry.instrument(self)

    def _prepare(self, params: dict, server: Sequence[str]) -> ClientConfig:
        """What this client's configuration builds, once per process (see ``prepared``)."""
        options = params.get("OPTIONS", {})
        clear_scope = options.get("CLEAR_SCOPE", "database")
        if clear_scope not in ("database", "prefix"):
            raise ImproperlyConfigured(
                f'CLEAR_SCOPE is "database" (the default) or "prefix", not {clear_scope!r}')
        factory_path = getattr(
            settings, "DJANGO_VALKEY_CONNECTION_FACTORY", self.CONNECTION_FACTORY_PATH
        )
        local_settings = local_cache_options(options)
        local_cache = None if local_settings is None else LocalCache(local_settings)
        return ClientConfig(
            reverse_key=get_key_func(params.get("REVERSE_KEY_FUNCTION")
                                     or "django_valkey_fast.util.default_reverse_key"),
            codec=build_codec(options),
            errors=ErrorPolicy(options),
            connection_factory=pool.get_connection_factory(options=options, path=factory_path),
            servers=Servers(server),
            replica_read_only=options.get("REPLICA_READ_ONLY", True),
            clear_scope=clear_scope,
            close_connection=options.get(
                "CLOSE_CONNECTION", getattr(settings, "DJANGO_VALKEY_CLOSE_CONNECTION", False)),
            scan_itersize=getattr(settings, "DJANGO_VALKEY_SCAN_ITERSIZE", 10),
            options=options,
            local_cache=local_cache,
            telemetry=telemetry_for(options, server[0] if server else ""),
        )

    # -- keys and values ----------------------------------------------------------

    # Each instance binds ``encode``/``decode`` to its codec's methods directly (one
    # attribute lookup on the hot path); these class-level twins name them.
    def encode(self, value: Any) -> bytes | int | float:
        """``value`` as stored in the server (ints and floats raw, the rest serialized
        and compressed)."""
        return self._codec.encode(value)

    def decode(self, value: bytes, key: str | None = None) -> Any:
        """The Python value of bytes ``value`` read from the server."""
        return self._codec.decode(value, key)

    def decode_many(self, keys: list, nkeys: list, replies: list) -> dict:
        """``{key: value}`` for the replies of an MGET that are not None."""
        return self._codec.decode_many(keys, nkeys, replies)

    def backend_settings_changed(self) -> None:
        """(Re)read the backend's prefix, version, key function and default timeout."""
        backend = self._backend
        self._keys = build_key_maker(backend)
        self._key = self._keys.make
        self.version = backend.version
        self.default_timeout = backend.default_timeout

    def make_key(self, key: Any, version: int | None = None,
                 prefix: str | None = None) -> CacheKey:
        """Return the server key for ``key`` as a CacheKey (used as is when passed back)."""
        if type(key) is CacheKey:
            return key
        if prefix is None:
            return CacheKey(self._key(key, version))
        version = self.version if version is None else version
        return CacheKey(self._backend.key_func(key, prefix, version))

    def make_pattern(self, pattern: str, version: int | None = None,
                     prefix: str | None = None) -> CacheKey:
        """Return the glob pattern matching ``pattern`` under the prefix and version."""
        return CacheKey(self._keys.make_pattern(pattern, version, prefix))

    def _has_compression_enabled(self) -> bool:
        return not isinstance(self._compressor, IdentityCompressor)

    # -- servers ------------------------------------------------------------------

    def get_next_client_index(self, write: bool = True,
                              tried: list[int] | None = None) -> int:
        """Index of the server for the next command: 0 for writes, a replica for reads."""
        if write or len(self._server) == 1:
            return 0
        if tried and len(tried) < len(self._server):
            return random.choice([i for i in range(len(self._server)) if i not in tried])
        return random.randint(1, len(self._server) - 1)

    def _connection_params(self, index: int) -> dict:
        """Server ``index``'s connection settings, for its asyncio channels."""
        raise NotImplementedError

    def _achannel(self, write):
        channels = self._aio.get()
        index = 0 if write or len(channels) == 1 else self._read_index()
        channel = channels[index]
        if channel is None or self._local_cache is not None:
            return self._achannel_at(index)  # (opens it, or puts the local cache before it)
        return channel

    def _achannel_at(self, index: int):
        """This loop's asyncio channel to server ``index`` (behind the client-side
        cache when it is on)."""
        channels = self._aio.get()
        channel = channels[index]
        if channel is None:
            channel = channels[index] = aio.channel_for(self._connection_params(index))
        if self._local_cache is not None:
            return self._async_caching_channel(index, channel)
        return channel

    async def _aread_elsewhere(self, channel, error: Exception, run):
        """``_read_elsewhere`` on this loop's asyncio channels."""
        for index in self._read_failover_order(channel, self._aio.get(), error):
            try:
                return await run(self._achannel_at(index))
            except (ConnectionError, TimeoutError) as again:
                self._servers.read_failed(index)
                error = again
        raise error

    def _read_failover_order(self, channel, channels: list, error: Exception) -> list:
        """The servers to read from after ``channel`` (one of ``channels``, or a caching
        channel in front of one) failed; ``error`` is raised if none may be tried."""
        failed = getattr(channel, "inner", channel)
        for index, each in enumerate(channels):
            if each is failed:
                return self._servers.read_failed(index)
        raise error

    def _async_caching_channel(self, index: int, channel):
        """The client-side cache's channel in front of ``channel``, an asyncio channel
        to server ``index``."""
        return self._local_cache.async_channel(self._server[index], self._listener_pool,
                                               channel, index)

    def _listener_pool(self, index: int):
        """A sync valkey-py pool to server ``index``, whose connection class and
        settings the client-side cache's invalidation connection uses (an async
        client's; the sync client's is its own pool)."""
        listener_pools = self._servers.listener_pools
        found = listener_pools.get(self._server[index])
        if found is None:
            # Not OPTIONS["CONNECTION_FACTORY"] nor its CONNECTION_POOL_CLASS: an async
            # client's are asyncio ones; the sync factory picks its own pool class.
            options = {name: value for name, value in self._options.items()
                       if name not in ("CONNECTION_FACTORY", "CONNECTION_POOL_CLASS")}
            factory = import_string(self.SYNC_CONNECTION_FACTORY_PATH)(options)
            found = listener_pools[self._server[index]] = factory.connect(
                self._server[index]).connection_pool
        return found

    def server_connections(self) -> list:
        """``[(address, a sync valkey.Valkey)]`` for every server of LOCATION (each shard,
        the primary and each replica; for Sentinel, where Sentinel points), for
        administration (``manage.py valkey``); the address never shows a password."""
        import valkey

        return [(without_password(url), valkey.Valkey(connection_pool=self._listener_pool(index)))
                for index, url in enumerate(self._server)]

    def local_cache_stats(self) -> dict:
        """The client-side cache's counters per server (``{}`` when it is off):
        hits, misses, entries, bytes, invalidations, flushes, whether hits are being
        served (``live``) and the listener's last connection failure
        (``listener_error``)."""
        return {} if self._local_cache is None else self._local_cache.stats()

    def _aio_channels(self) -> list:
        """The channels this client opened on the running loop."""
        return [channel for channel in self._aio.current() or () if channel is not None]

    # -- which server is the primary ---------------------------------------------------

    async def _afind_primary(self) -> bool:
        """Async ``_find_primary``."""
        if not self.LOCATION_IS_PRIMARY_AND_REPLICAS:
            return False
        loop = asyncio.get_running_loop()
        nodes = AsyncNodes(None, lambda index: aio.channel_for(
            self._connection_params(index), loop))
        return self._primary_found(await arun_plan(primary_search(len(self._server)), nodes))

    def _primary_found(self, index: int | None) -> bool:
        """Make server ``index`` (found by ``primary_search``) the primary, if any."""
        if index is None:
            return False
        self._servers.make_primary(self._server[index])
        return True

    def _close_requested(self) -> bool:
        return self._close_connection

    def close_loop_channels(self) -> bool:
        """If ``CLOSE_CONNECTION`` asks for it, close this client's channels on the
        running loop now and return True (``close()``/``aclose()`` then does the rest)."""
        if not self._close_requested():
            return False
        for channel in self._aio_channels():
            channel.close()
        return True

    # -- operations that are not a single plan --------------------------------------
    def _lock(self, client, key, version=None, timeout=None, sleep=0.1, blocking=True,
              blocking_timeout=None, lock_class=None, thread_local=True):
        """valkey-py's lock on ``key`` through ``client`` (sync or asyncio)."""
        return client.lock(
            self._key(key, version), timeout=timeout, sleep=sleep, blocking=blocking,
            blocking_timeout=blocking_timeout, lock_class=lock_class,
            thread_local=thread_local,
        )

    async def aget_lock(self, key: Any, version: int | None = None,
                        timeout: float | None = None, sleep: float = 0.1,
                        blocking: bool = True, blocking_timeout: float | None = None,
                        client: Any = None, lock_class: Any = None,
                        thread_local: bool = True) -> AsyncLock:
        """Return a valkey-py asyncio ``Lock`` on ``key`` (``async with``)."""
        return self._lock(client or self._async_client(write=True), key, version, timeout,
                          sleep, blocking, blocking_timeout, lock_class, thread_local)

    alock = aget_lock

    def _async_client(self, write=True):
        """A valkey-py asyncio client for the running loop, on the same server."""
        return self._async_client_of(self._achannel(write))

    @staticmethod
    def _async_client_of(channel):
        """A valkey-py asyncio client on ``channel``'s server and loop (made once)."""
        import valkey.asyncio

        client = getattr(channel, "valkey_client", None)
        if client is None:
            params = {k: v for k, v in channel.params.items()
                      if k not in ("unix", "ssl", "cluster", "readonly", "sentinel",
                                   "connection_pool")}
            sentinel = channel.params.get("sentinel")
            if sentinel is not None:
                client = channel.valkey_client = _sentinel_managed_client(sentinel, params)
                return client
            if channel.params["unix"]:
                params["connection_class"] = valkey.asyncio.UnixDomainSocketConnection
            elif channel.params["ssl"]:
                params["connection_class"] = valkey.asyncio.SSLConnection
            params.pop("parser_class", None)
            client = channel.valkey_client = valkey.asyncio.Valkey(
                connection_pool=valkey.asyncio.ConnectionPool(**params)
            )
        return client

    async def aiter_keys(self, search: str, itersize: int | None = None, client: Any = None,
                         version: int | None = None) -> AsyncIterator[str]:
        """Yield the keys matching the glob ``search``, a SCAN page at a time."""
        pattern = self.make_pattern(search, version=version)
        cursor = 0
        reverse = self.reverse_key
        while True:
            cursor, keys = await self._ascan_page(pattern, cursor, itersize, client=client)
            for key in keys:
                yield reverse(key.decode())
            if not cursor:
                return

    async def adelete_pattern(self, pattern: str, version: int | None = None,
                              prefix: str | None = None, client: Any = None,
                              itersize: int | None = None) -> int:
        """Delete the keys matching ``pattern``; return the count."""
        return await self._adelete_pattern(pattern, version, prefix, itersize, client=client)

    async def asscan_iter(self, key: Any, match: Any = None, count: int | None = 10,
                          version: int | None = None,
                          client: Any = None) -> AsyncIterator[Any]:
        """Yield the members of set ``key``, an SSCAN page at a time."""
        cursor = 0
        while True:
            cursor, members = await self._asscan_page(key, cursor, match, count, version,
                                                      client=client)
            for member in members:
                yield member
            if not cursor:
                return


@bind_operations(sync_names=True)
class DefaultClient(SyncOperationMethods, BaseClient):
    """Runs cache operations on a primary and, for reads, its replicas: each operation
    a blocking method (``get``) and a native coroutine (``aget``)."""

    def connect(self, index: int = 0) -> valkey.Valkey:
        """Return a new valkey-py client for server ``index``."""
        return self.connection_factory.connect(self._server[index])

    def _client_at(self, index: int):
        client = self._clients[index]
        if client is None:
            client = self._clients[index] = self.connect(index)
        return client

    def get_client(self, write: bool = True, tried: list[int] | None = None, key: Any = None,
                   **kwargs: Any) -> valkey.Valkey:
        """Return the valkey-py client (``valkey.Valkey``) for a write or a read."""
        return self._client_at(self.get_next_client_index(write=write, tried=tried))

    def get_client_with_index(self, write: bool = True,
                              tried: list[int] | None = None) -> tuple[valkey.Valkey, int]:
        """Return ``(client, index)`` for a write or a read."""
        index = self.get_next_client_index(write=write, tried=tried)
        return self._client_at(index), index

    def _channel(self, write):
        if write or len(self._channels) == 1:
            index = 0
        else:
            index = self._read_index()
        channel = self._channels[index]
        if channel is None or self._local_cache is not None:
            return self._server_channel(index)
        return channel  # (the hot path: no call more)

    def _read_elsewhere(self, channel, error: Exception, run):
        """A read failed on ``channel`` (its connection: refused, reset, timed out): read
        from the other servers, replicas first, then the primary, until one answers
        (``run(channel)`` runs the read); the failed server is left out of reads for
        ``READ_FAILOVER_PAUSE`` seconds. Reads only: they may be sent again."""
        for index in self._read_failover_order(channel, self._channels, error):
            try:
                return run(self._server_channel(index))
            except (ConnectionError, TimeoutError) as again:
                self._servers.read_failed(index)
                error = again
        raise error

    def _server_channel(self, index: int):
        """The sync channel to server ``index`` (made on first use), behind the
        client-side cache when it is on."""
        channel = self._channels[index]
        if channel is None:
            channel = self._channels[index] = channel_of(self._client_at(index))
        if self._local_cache is not None:
            return self._caching_channel(index, channel)
        return channel

    def _caching_channel(self, index: int, channel):
        """The client-side cache's channel in front of server ``index``'s ``channel``."""
        caching = self._servers.caching
        found = caching[index]
        if found is None or found[0] is not channel:
            found = caching[index] = (channel, self._local_cache.sync_channel(
                self._server[index], self._listener_pool(index), channel))
        return found[1]

    def _listener_pool(self, index: int):
        return self._client_at(index).connection_pool

    def _connection_params(self, index: int) -> dict:
        """Server ``index``'s connection settings (as its valkey-py pool holds them)."""
        params = self._aio_params[index]
        if params is None:
            params = self._aio_params[index] = aio.connection_params(
                self._client_at(index).connection_pool
            )
        return params

    def _find_primary(self) -> bool:
        """Ask the LOCATION servers their ROLE; make the primary the write server."""
        if not self.LOCATION_IS_PRIMARY_AND_REPLICAS:
            return False
        nodes = SyncNodes(None, lambda index: channel_of(self._client_at(index)))
        return self._primary_found(run_plan(primary_search(len(self._server)), nodes))

    def disconnect(self, index: int = 0, client: Any = None) -> None:
        """Close the connections of server ``index`` (or of ``client``)."""
        if client is None:
            client = self._clients[index]
        if client is not None:
            channel_of(client).disconnect()
            self.connection_factory.disconnect(client)

    def close(self) -> None:
        """Close connections if ``CLOSE_CONNECTION`` (or the global setting) asks for it."""
        if self._close_requested():
            try:
                for index in range(len(self._clients)):
                    self.disconnect(index)
            except SERVER_ERRORS as error:
                raise interrupted(error, connection=self._clients) from error

    # -- operations that are not a single plan --------------------------------------

    def get_lock(self, key: Any, version: int | None = None, timeout: float | None = None,
                 sleep: float = 0.1, blocking: bool = True,
                 blocking_timeout: float | None = None, client: Any = None,
                 lock_class: Any = None, thread_local: bool = True) -> Lock:
        """Return a valkey-py ``Lock`` on ``key`` (a context manager)."""
        return self._lock(client or self.get_client(write=True), key, version, timeout,
                          sleep, blocking, blocking_timeout, lock_class, thread_local)

    lock = get_lock

    async def aclose(self) -> None:
        """Close connections if ``CLOSE_CONNECTION`` asks for it (async callers)."""
        self.close_loop_channels()
        self.close()

    def iter_keys(self, search: str, itersize: int | None = None, client: Any = None,
                  version: int | None = None) -> Iterator[str]:
        """Yield the keys matching the glob ``search``, a SCAN page at a time."""
        pattern = self.make_pattern(search, version=version)
        cursor = 0
        reverse = self.reverse_key
        while True:
            cursor, keys = self._scan_page(pattern, cursor, itersize, client=client)
            for key in keys:
                yield reverse(key.decode())
            if not cursor:
                return

    def delete_pattern(self, pattern: str, version: int | None = None,
                       prefix: str | None = None, client: Any = None,
                       itersize: int | None = None) -> int:
        """Delete the keys matching ``pattern`` (SCAN, an UNLINK per page); return the count."""
        return self._delete_pattern(pattern, version, prefix, itersize, client=client)

    def sscan_iter(self, key: Any, match: Any = None, count: int | None = 10,
                   version: int | None = None, client: Any = None) -> Iterator[Any]:
        """Yield the members of set ``key``, an SSCAN page at a time."""
        cursor = 0
        while True:
            cursor, members = self._sscan_page(key, cursor, match, count, version,
                                               client=client)
            yield from members
            if not cursor:
                return


# HashCommands' hset takes mapping/items where DefaultClient's takes version (as in
# django-valkey): the one method whose signature a subclass changes.
class HashClient(HashCommands, DefaultClient):  # type: ignore[misc]
    """DefaultClient whose hash commands make the hash name a cache key (see
    :mod:`django_valkey_fast.commands.hash`): django-valkey's ``HashClient``."""
