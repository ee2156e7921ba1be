"""``AsyncSentinelClient``: django-valkey's async Sentinel client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_valkey_fast.async_cache.client.default import AsyncDefaultClient
from django_valkey_fast.client.sentinel import check_sentinel_pool, primary_and_replica_urls

if TYPE_CHECKING:
    from collections.abc import Sequence

    import valkey.asyncio

__all__ = ["AsyncSentinelClient"]


class AsyncSentinelClient(AsyncDefaultClient):
    """Async; writes to the primary Sentinel names, reads from its replicas."""

    SYNC_CONNECTION_FACTORY_PATH = "django_valkey_fast.pool.SentinelConnectionFactory"

    CONNECTION_FACTORY_PATH = "django_valkey_fast.async_cache.pool.AsyncSentinelConnectionFactory"

    def __init__(self, server: str | Sequence[str], params: dict, backend: Any) -> None:
        options = params.get("OPTIONS", {})
        options.setdefault("CONNECTION_FACTORY", self.CONNECTION_FACTORY_PATH)
        super().__init__(primary_and_replica_urls(server), params, backend)

    async def connect(self, index: int = 0) -> valkey.asyncio.Valkey:
        """Return a ``valkey.asyncio.Valkey`` whose pool asks Sentinel where to connect."""
        client = await super().connect(index)
        check_sentinel_pool(client.connection_pool, self.CONNECTION_FACTORY_PATH)
        return client
