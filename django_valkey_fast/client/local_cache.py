"""The client-side cache of one configuration (``OPTIONS["CLIENT_SIDE_CACHE"]``): a
store and an invalidation listener per server it reads from, built once per process
and shared by every client of the configuration. See docs/client-side-caching.md.
"""

from __future__ import annotations

import os
import threading
import weakref
from functools import partial

from django.core.exceptions import ImproperlyConfigured

from django_valkey_fast._valkeypy import side_connection
from django_valkey_fast.caching_channel import (
    AsyncCachingChannel, CachingChannel, for_cluster, for_server,
)
from django_valkey_fast.invalidation import InvalidationListener
from django_valkey_fast.local_store import LocalStore

__all__ = ["DEFAULTS", "ClusterNodes", "LocalCache", "ServerCache", "SharedListener",
           "TrackingUnsupported", "local_cache_options"]

DEFAULTS = {
    "MAX_ENTRIES": 10_000,  # replies kept per server
    "MAX_BYTES": 64 * 1024 * 1024,  # bytes of replies kept per server
    "MAX_STALENESS": 1.0,  # seconds a hit may rely on the listener's last proof
}


class TrackingUnsupported(ImproperlyConfigured):
    """CLIENT_SIDE_CACHE is on, and the server refuses ``CLIENT TRACKING`` (Redis
    before 6, Valkey before 7.2 without it, or an ACL that forbids it)."""


def local_cache_options(options: dict) -> dict | None:
    """``OPTIONS["CLIENT_SIDE_CACHE"]`` checked and completed with the defaults, or
    None when it is not set (the cache is off)."""
    given = options.get("CLIENT_SIDE_CACHE")
    if given is None or given is False:
        return None
    if given is True:
        given = {}
    if not isinstance(given, dict):
        raise ImproperlyConfigured(
            "OPTIONS['CLIENT_SIDE_CACHE'] is a dict of settings ({} for the defaults), "
            f"not {type(given).__name__}")
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(
            f"unknown CLIENT_SIDE_CACHE settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    chosen = dict(DEFAULTS, **given)
    for name in ("MAX_ENTRIES", "MAX_BYTES"):
        value = chosen[name]
        if type(value) is not int or value < 1:
            raise ImproperlyConfigured(f"CLIENT_SIDE_CACHE['{name}'] is a positive int, "
                                       f"not {value!r}")
    staleness = chosen["MAX_STALENESS"]
    if isinstance(staleness, bool) or not isinstance(staleness, (int, float)) \
            or not 0 < staleness <= 3600:
        raise ImproperlyConfigured(
            f"CLIENT_SIDE_CACHE['MAX_STALENESS'] is a number of seconds in (0, 3600], "
            f"not {staleness!r}")
    return chosen


class SharedListener:
    """The invalidation listener of one server (host, port, database, user), shared by
    every configuration of the process that reads from it. Their reads share pooled
    connections, and a connection's tracking redirects to one listener only: so there
    is one, and each of its messages goes to every store registered here (a store
    that does not hold a key drops nothing)."""

    def __init__(self, pool, heartbeat: float, name: str):
        self._lock = threading.Lock()
        self._stores: tuple = ()  # (replaced, never changed in place: read without lock)
        self._unread = None  # while the listener is connected: its unread-bytes check
        self._reading = False  # the listener holds bytes it has not applied yet
        self._proven_at: float | None = None
        self.listener = InvalidationListener(
            lambda: side_connection(pool), self, heartbeat=heartbeat, name=name,
            # (Sentinel: data connections may reach another server than the listener)
            verify=getattr(pool, "service_name", None) is not None)

    def add(self, store: LocalStore, heartbeat: float) -> None:
        """Deliver the listener's messages to ``store`` too (at least every
        ``heartbeat`` seconds a proof)."""
        with self._lock:
            self._stores += (store,)
            self.listener.heartbeat = min(self.listener.heartbeat, heartbeat)
            if self._unread is not None:  # (connected already: the new store is empty)
                store.connected(self._unread)
                store.reading(self._reading)
                if self._proven_at is not None:
                    store.proved(self._proven_at)

    def remove(self, store: LocalStore) -> bool:
        """Stop delivering to ``store``; whether no store is left."""
        with self._lock:
            self._stores = tuple(each for each in self._stores if each is not store)
            return not self._stores

    # -- the listener's owner callbacks (see invalidation.py) ---------------------------

    def connected(self, unread) -> None:
        """The listener is subscribed under a new client id."""
        with self._lock:
            self._unread, self._proven_at, self._reading = unread, None, False
            for store in self._stores:
                store.connected(unread)

    def disconnected(self) -> None:
        """The listener lost its connection."""
        with self._lock:
            self._unread = self._proven_at = None
            self._reading = False
            for store in self._stores:
                store.disconnected()

    def invalidate(self, keys) -> None:
        """The server says ``keys`` changed."""
        for store in self._stores:
            store.invalidate(keys)

    def flush(self) -> None:
        """The server says every key may have changed (FLUSHDB, FLUSHALL)."""
        for store in self._stores:
            store.flush()

    def reading(self, busy: bool) -> None:
        """The listener is about to take bytes from its socket, or has applied all.
        (Under the lock: a store added meanwhile gets the same word.)"""
        with self._lock:
            self._reading = busy
            for store in self._stores:
                store.reading(busy)

    def proved(self, as_of: float) -> None:
        """Everything the server sent before ``as_of`` was read."""
        self._proven_at = as_of
        for store in self._stores:
            store.proved(as_of)

    def after_fork(self) -> None:
        """In a forked child: a lock of its own, not connected."""
        self._lock = threading.Lock()
        self._unread = self._proven_at = None
        self.listener.after_fork()


# Every shared listener of the process, by the server it listens to.
_listeners: dict = {}
_listeners_lock = threading.Lock()


def _server_of(pool) -> tuple:
    """What identifies a server for its listener: where it is (for Sentinel, the
    service and whether it is the primary or a replica), the database, the user."""
    kwargs = pool.connection_kwargs
    where: tuple = (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"),
                    getattr(pool, "service_name", None), getattr(pool, "is_master", None))
    if where == (None,) * 5:
        where = (id(pool),)  # (a pool of an unknown kind: a listener of its own)
    return (*where, kwargs.get("db", 0), kwargs.get("username"))


class ServerCache:
    """One configuration's store for one server, and the server's shared listener
    (started on first use)."""

    def __init__(self, pool, settings: dict, name: str):
        staleness = float(settings["MAX_STALENESS"])
        self.store = LocalStore(settings["MAX_ENTRIES"], settings["MAX_BYTES"], staleness)
        self._key = _server_of(pool)
        with _listeners_lock:
            shared = _listeners.get(self._key)
            if shared is None:
                shared = _listeners[self._key] = SharedListener(pool, staleness / 2, name)
            shared.add(self.store, staleness / 2)
        self._shared = shared
        self.listener = shared.listener

    def redirect_id(self) -> int | tuple | None:
        """The listener's client id (None until it is subscribed; with Sentinel, the id
        and how the server sees the listener: ``InvalidationListener.redirect``);
        starts it if needed."""
        listener = self.listener
        listener.ensure_started()
        if listener.unsupported is not None:
            raise TrackingUnsupported(
                "CLIENT_SIDE_CACHE needs CLIENT TRACKING, which the server refused: "
                f"{listener.unsupported}") from listener.unsupported
        return listener.redirect

    def stop(self) -> None:
        """Stop receiving the listener's messages, and so serving hits (what is kept is
        forgotten); the last store of a server stops its listener (tests, shutdown)."""
        self.store.disconnected()  # (first: no hit once its invalidations stop coming)
        with _listeners_lock:
            if self._shared.remove(self.store) and _listeners.get(self._key) is self._shared:
                del _listeners[self._key]
                self.listener.stop()


class LocalCache:
    """The configuration's client-side cache: a :class:`ServerCache` per server URL."""

    def __init__(self, settings: dict):
        self.settings = settings
        self._servers: dict = {}  # url -> ServerCache
        self._stores: tuple = ()  # every server's store (replaced, never changed in place)
        # an asyncio channel -> its caching channel (dropped with the channel's loop)
        self._async: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        _every.add(self)

    def server(self, url: str, pool_of) -> ServerCache:
        """The store and listener of server ``url`` (``pool_of()``: its valkey-py pool,
        asked for the first time only)."""
        found = self._servers.get(url)
        if found is None:
            with self._lock:
                found = self._servers.get(url)
                if found is None:
                    found = self._servers[url] = ServerCache(pool_of(), self.settings, url)
                    self._stores += (found.store,)
        return found

    def __iter__(self):
        """Every server's store (a write of this process forgets its keys in all)."""
        return iter(self._stores)

    def sync_channel(self, url: str, pool, inner) -> CachingChannel:
        """A caching channel in front of ``inner``, the sync channel to ``url`` (the
        client keeps it with the channel)."""
        return for_server(CachingChannel, inner, self.server(url, lambda: pool), self)

    def async_channel(self, url: str, pool_of, inner, index: int) -> AsyncCachingChannel:
        """The caching channel in front of ``inner``, an asyncio channel to ``url``
        (server ``index``, whose sync pool ``pool_of(index)`` gives, when needed)."""
        found = self._async.get(inner)
        if found is None:
            found = self._async[inner] = for_server(
                AsyncCachingChannel, inner, self.server(url, partial(pool_of, index)), self)
        return found

    def forget(self, url: str) -> None:
        """Drop server ``url``'s store (its listener stops with its last store)."""
        with self._lock:
            server = self._servers.pop(url, None)
            if server is None:
                return
            self._stores = tuple(store for store in self._stores if store is not server.store)
        server.stop()

    def stats(self) -> dict:
        """``{url: store counters}`` (hits, misses, entries, bytes, invalidations...),
        with the listener's last connection error (``listener_error``, None if none)."""
        return {url: dict(server.store.stats(), listener_error=_text(server.listener.error))
                for url, server in list(self._servers.items())}

    def stop(self) -> None:
        """Stop every listener and forget what was kept."""
        for server in list(self._servers.values()):
            server.stop()


def _name(node) -> str:
    return f"{node[0]}:{node[1]}"


class ClusterNodes:
    """The client-side cache of a Valkey Cluster: a :class:`ServerCache` per node (in
    the configuration's ``LocalCache``, by ``host:port``), made on the first read from
    that node; and its caching channels in front of the cluster channels. Every change
    of the slot map empties every store (``router.on_change``)."""

    def __init__(self, cache: LocalCache, router, pool_of):
        self._cache = cache
        self._pool_of = pool_of  # node address -> its sync valkey-py pool
        self._servers: dict = {}  # node address -> its ServerCache (read without a lock)
        self._stores: dict = {}  # node address -> its store (read without a lock)
        self.router = router
        router.on_change = self.flush

    def store_of(self, node):
        """The store of ``node`` (an address), or None before its first read."""
        return self._stores.get(node)

    def server_at(self, node) -> ServerCache:
        """The store and listener of ``node`` (made on first use)."""
        server = self._servers.get(node)
        if server is None:
            server = self._cache.server(_name(node), partial(self._pool_of, node))
            self._servers[node] = server
            self._stores[node] = server.store
        return server

    def __iter__(self):
        return iter(self._cache)

    def flush(self) -> None:
        """The slot map changed: forget everything every node's store holds, and the
        stores (and listeners) of nodes that serve no slot any more."""
        for store in self:
            store.flush()
        serving = set(self.router.primaries)
        for node in [node for node in list(self._servers) if node not in serving]:
            self._stores.pop(node, None)
            self._servers.pop(node, None)
            self._cache.forget(_name(node))

    def sync_channel(self, inner) -> CachingChannel:
        """A caching channel in front of ``inner``, a sync cluster channel."""
        return for_cluster(CachingChannel, inner, inner.router, self)

    def async_channel(self, inner) -> AsyncCachingChannel:
        """A caching channel in front of ``inner``, an asyncio cluster channel."""
        return for_cluster(AsyncCachingChannel, inner, inner.router, self)


def _text(error) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


_every: weakref.WeakSet = weakref.WeakSet()


def _forget_in_child() -> None:
    # A forked child has no listener thread, must not trust what its parent kept, and
    # gets locks of its own (a parent thread may have held one at the fork).
    global _listeners_lock
    _listeners_lock = threading.Lock()
    for shared in list(_listeners.values()):
        shared.after_fork()
    for cache in list(_every):
        cache._lock = threading.Lock()
        for server in list(cache._servers.values()):
            server.store.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
