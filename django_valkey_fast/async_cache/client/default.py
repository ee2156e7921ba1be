"""django-valkey's ``AsyncDefaultClient``: every operation is a coroutine.

The operations are the same plans the sync client runs; only the I/O step differs.
``get``, ``set``, ... and ``aget``, ``aset``, ... are the same coroutines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_valkey_fast import async_channel as aio
from django_valkey_fast._api import CoroutineOperationMethods
from django_valkey_fast.client.default import BaseClient
from django_valkey_fast.plan_methods import bind_operations
from django_valkey_fast.commands.hash import AsyncHashCommands

if TYPE_CHECKING:
    from collections.abc import Sequence

    import valkey.asyncio

__all__ = ["AsyncDefaultClient", "AsyncHashClient"]


@bind_operations(sync_names=False)
class AsyncDefaultClient(CoroutineOperationMethods, BaseClient):
    """Primary + replicas, async only (``AsyncValkeyCache``'s default client)."""

    CONNECTION_FACTORY_PATH = "django_valkey_fast.async_cache.pool.AsyncConnectionFactory"

    def __init__(self, server: str | Sequence[str], params: dict, backend: Any) -> None:
        super().__init__(server, params, backend)
        # valkey-py asyncio clients (get_client), per event loop like the channels.
        self._loop_clients = self._servers.loop_clients

    def _connection_params(self, index: int) -> dict:
        params = self._aio_params[index]
        if params is None:
            factory = self.connection_factory
            pool = factory.get_or_create_connection_pool(
                factory.make_connection_params(self._server[index])
            )
            params = self._aio_params[index] = aio.connection_params(pool)
        return params

    async def get_client(self, write: bool = True, tried: list[int] | None = None,
                         key: Any = None, **kwargs: Any) -> valkey.asyncio.Valkey:
        """Return the ``valkey.asyncio.Valkey`` client for a write or a read."""
        client, _ = await self.get_client_with_index(write, tried)
        return client

    async def get_client_with_index(
            self, write: bool = True,
            tried: list[int] | None = None) -> tuple[valkey.asyncio.Valkey, int]:
        """Return ``(client, index)`` for a write or a read, on the running loop."""
        index = self.get_next_client_index(write=write, tried=tried)
        clients = self._loop_clients.get()
        if clients[index] is None:
            clients[index] = await self.connect(index)
        return clients[index], index

    async def connect(self, index: int = 0) -> valkey.asyncio.Valkey:
        """Return a new ``valkey.asyncio.Valkey`` for server ``index``."""
        return await self.connection_factory.connect(self._server[index])

    async def disconnect(self, index: int = 0, client: Any = None) -> None:
        """Close the connections of server ``index`` (or of ``client``) on this loop."""
        if client is None:
            clients = self._loop_clients.current()
            client = clients[index] if clients else None
        if client is not None:
            await self.connection_factory.disconnect(client)
        channels = self._aio.current() or []
        if index < len(channels) and channels[index] is not None:
            channels[index].close()

    async def close(self) -> None:
        """Close connections if ``CLOSE_CONNECTION`` (or the global setting) asks for it."""
        if self._close_requested():
            for index in range(len(self._server)):
                await self.disconnect(index)
            self._loop_clients.reset()

    aclose = close
    get_lock = lock = BaseClient.aget_lock
    iter_keys = BaseClient.aiter_keys
    delete_pattern = BaseClient.adelete_pattern
    sscan_iter = BaseClient.asscan_iter


# AsyncHashCommands' hset takes mapping/items where the default client's takes version.
class AsyncHashClient(AsyncHashCommands, AsyncDefaultClient):  # type: ignore[misc]
    """AsyncDefaultClient whose hash commands make the hash name a cache key (see
    :mod:`django_valkey_fast.commands.hash`): django-valkey's ``AsyncHashClient``."""
