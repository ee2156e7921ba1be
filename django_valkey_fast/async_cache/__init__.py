"""Async: django-valkey's ``AsyncValkeyCache`` and the asyncio connection layer."""

__all__ = ["get_valkey_connection"]


async def get_valkey_connection(alias="default", write=True):
    """Return the raw valkey-py asyncio client behind cache ``alias``."""
    from django.core.cache import caches

    cache = caches[alias]
    client = getattr(cache, "client", None)
    if client is None or not hasattr(client, "get_client"):
        raise NotImplementedError("This backend does not support this feature")
    if hasattr(client, "_async_client") and not getattr(cache, "is_async", False):
        return client._async_client(write)
    return await client.get_client(write)
