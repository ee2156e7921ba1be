"""``ClusterValkeyCache``: the Django cache backend for Valkey Cluster, sync and async.

``BACKEND: "django_valkey_fast.cluster_cache.cache.ClusterValkeyCache"``, LOCATION one
node's URL. Everything ``ValkeyCache`` offers (``get``/``aget``, ...) plus
django-valkey's cluster extras (``keyslot``, ``mget_nonatomic``, ``mset_nonatomic``,
``msetnx``, ``readonly``, ``readwrite``, ``flushall``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django_valkey_fast.cache import ValkeyCache

__all__ = ["ClusterCommands", "ClusterValkeyCache"]


class ClusterCommands:
    """The Cluster extras of the backend (django-valkey's ``ClusterCommands``)."""

    client: Any  # BaseValkeyCache's
    _default_scan_itersize: int

    def delete_pattern(self, pattern: str, version: int | None = None,
                       prefix: str | None = None, client: Any = None,
                       itersize: int | None = None, target_nodes: Any = None) -> int:
        """Delete the keys matching ``pattern`` on ``target_nodes`` (default: every
        primary); return how many."""
        return self.client.delete_pattern(
            pattern, version=version, prefix=prefix, client=client,
            itersize=itersize or self._default_scan_itersize, target_nodes=target_nodes)

    async def adelete_pattern(self, pattern: str, version: int | None = None,
                              prefix: str | None = None, client: Any = None,
                              itersize: int | None = None, target_nodes: Any = None) -> int:
        """Delete the keys matching ``pattern`` on ``target_nodes``; return how many."""
        return await self.client.adelete_pattern(
            pattern, version=version, prefix=prefix, client=client,
            itersize=itersize or self._default_scan_itersize, target_nodes=target_nodes)

    def keyslot(self, key: Any, version: int | None = None) -> int:
        """The cluster slot of ``key``."""
        return self.client.keyslot(key, version)

    def mget_nonatomic(self, keys: Iterable[Any], version: int | None = None,
                       client: Any = None) -> dict[Any, Any]:
        """``get_many`` (split by slot; not atomic across slots)."""
        return self.client.mget_nonatomic(keys, version, client=client)

    def mset_nonatomic(self, data: Mapping[Any, Any], version: int | None = None,
                       client: Any = None) -> list:
        """``set_many`` without expiry (split by slot; not atomic across slots)."""
        return self.client.mset_nonatomic(data, version, client=client)

    def msetnx(self, data: Mapping[Any, Any], version: int | None = None,
               client: Any = None) -> bool:
        """MSETNX: all keys must share a slot (use a ``{hash tag}``)."""
        return self.client.msetnx(data, version, client=client)

    def readonly(self, target_nodes: Any = None, client: Any = None) -> Any:
        """READONLY on the raw cluster client."""
        return self.client.readonly(target_nodes, client)

    def readwrite(self, target_nodes: Any = None, client: Any = None) -> Any:
        """READWRITE on the raw cluster client."""
        return self.client.readwrite(target_nodes, client)

    def flushall(self, asynchronous: bool = False, client: Any = None) -> bool:
        """Delete every key on every primary."""
        return self.client.flushall(asynchronous, client=client)

    def invalidate_key_from_cache(self, client: Any = None) -> Any:
        """valkey-py's client-side cache invalidation, on the raw cluster client."""
        return self.client.invalidate_key_from_cache(client=client)


class ClusterValkeyCache(ClusterCommands, ValkeyCache):  # type: ignore[misc]  # (as ValkeyCache)
    """Django cache backend for a Valkey (or Redis) Cluster."""

    DEFAULT_CLIENT_CLASS = "django_valkey_fast.cluster_cache.client.DefaultClusterClient"
