"""Async connection factories: django-valkey's ``AsyncConnectionFactory``.

They build ``valkey.asyncio.Valkey`` clients (what ``await cache.client.get_client()``
returns) over pools that are process-wide per event loop: a pool created on one loop
is never handed to another, and a closed loop's pools are dropped.
"""

from __future__ import annotations

import asyncio
import atexit


from django_valkey_fast._valkeypy import abandon_valkey_pool
from django_valkey_fast.pool import ConnectionFactory, sentinel_pool

__all__ = ["AsyncConnectionFactory", "AsyncSentinelConnectionFactory", "drop_closed_loop_pools"]


def drop_closed_loop_pools() -> None:
    """Close and forget the pools whose event loop has closed."""
    pools = AsyncConnectionFactory._pools
    for stale in [key for key in pools if key[0].is_closed()]:
        abandon_valkey_pool(pools.pop(stale))


class AsyncConnectionFactory(ConnectionFactory):
    """Builds valkey-py asyncio clients; one pool per URL, parameters and event loop."""

    path_pool_cls = "valkey.asyncio.connection.ConnectionPool"
    path_base_cls = "valkey.asyncio.client.Valkey"

    _pools: dict = {}

    # django-valkey's async and cluster factories read PARSER_CLS.
    parser_options = ("PARSER_CLS", "PARSER_CLASS")
    default_parser = "valkey.asyncio.connection.DefaultParser"

    def _pool_key(self, params: dict):
        return (asyncio.get_running_loop(),) + super()._pool_key(params)

    def get_or_create_connection_pool(self, params: dict):
        """The pool for ``params`` on the running loop (a closed loop's pools are dropped)."""
        if self._pool_key(params) not in self._pools:
            drop_closed_loop_pools()
        return super().get_or_create_connection_pool(params)

    async def get_connection(self, params: dict):
        """Return a ``valkey.asyncio.Valkey`` over the shared pool."""
        pool = self.get_or_create_connection_pool(params)
        return self.base_client_cls(connection_pool=pool, **self.base_client_cls_kwargs)

    async def connect(self, url: str):
        """Return a ``valkey.asyncio.Valkey`` for ``url``."""
        return await self.get_connection(self.make_connection_params(url))

    async def disconnect(self, connection) -> None:  # type: ignore[override]  # (async)
        """Close every connection of ``connection``'s pool."""
        await connection.connection_pool.disconnect()


class AsyncSentinelConnectionFactory(AsyncConnectionFactory):
    """Async clients whose pool asks Sentinel for the primary (or a replica).

    LOCATION ``valkey://service_name/db``; OPTIONS ``SENTINELS`` (a list of
    ``(host, port)``) and ``SENTINEL_KWARGS``, as for the sync factory.
    """

    def __init__(self, options: dict):
        from django.core.exceptions import ImproperlyConfigured

        options.setdefault("CONNECTION_POOL_CLASS",
                           "valkey.asyncio.sentinel.SentinelConnectionPool")
        super().__init__(options)
        if not options.get("SENTINELS"):
            raise ImproperlyConfigured("SENTINELS must be provided as a list of (host, port).")
        self.sentinels = options["SENTINELS"]

    def _pool_key(self, params: dict):
        # The URL names a service, not the servers: the Sentinels are part of the key.
        return super()._pool_key(params) + (
            repr(self.sentinels), repr(self.options.get("SENTINEL_KWARGS")),
        )

    def get_connection_pool(self, params: dict):
        """Return a Sentinel-managed asyncio pool for ``params["url"]`` (on this loop)."""
        from valkey.asyncio.sentinel import Sentinel

        connection_kwargs = dict(params)
        connection_kwargs.pop("url")
        connection_kwargs.update(self.pool_cls_kwargs)
        sentinel = Sentinel(self.sentinels, sentinel_kwargs=self.options.get("SENTINEL_KWARGS"),
                            **connection_kwargs)
        return sentinel_pool(super().get_connection_pool, params, sentinel)


atexit.register(drop_closed_loop_pools)
