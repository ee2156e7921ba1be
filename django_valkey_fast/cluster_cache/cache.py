"""``ClusterValkeyCache``: the Django cache backend for Valkey Cluster, sync and async.

``BACKEND: "django_valkey_fast.cluster_cache.cache.ClusterValkeyCache"``, LOCATION one
node's URL. Everything ``ValkeyCache`` offers (``get``/``aget``, ...) plus
django-valkey's cluster extras (``keyslot``, ``mget_nonatomic``, ``mset_nonatomic``,
``msetnx``, ``readonly``, ``readwrite``, ``flushall``).
"""

from __future__ import annotations

from django_valkey_fast.cache import ValkeyCache

__all__ = ["ClusterValkeyCache"]


class ClusterValkeyCache(ValkeyCache):
    """Django cache backend for a Valkey (or Redis) Cluster."""

    DEFAULT_CLIENT_CLASS = "django_valkey_fast.cluster_cache.client.DefaultClusterClient"

    def delete_pattern(self, pattern, version=None, prefix=None, client=None, itersize=None,
                       target_nodes=None):
        """Delete the keys matching ``pattern`` on ``target_nodes`` (default: every
        primary); return how many."""
        return self.client.delete_pattern(
            pattern, version=version, prefix=prefix, client=client,
            itersize=itersize or self._default_scan_itersize, target_nodes=target_nodes)

    async def adelete_pattern(self, pattern, version=None, prefix=None, client=None,
                              itersize=None, target_nodes=None):
        """Delete the keys matching ``pattern`` on ``target_nodes``; return how many."""
        return await self.client.adelete_pattern(
            pattern, version=version, prefix=prefix, client=client,
            itersize=itersize or self._default_scan_itersize, target_nodes=target_nodes)

    def keyslot(self, key, version=None) -> int:
        """The cluster slot of ``key``."""
        return self.client.keyslot(key, version)

    def mget_nonatomic(self, keys, version=None, client=None):
        """``get_many`` (split by slot; not atomic across slots)."""
        return self.client.get_many(keys, version, client=client)

    def mset_nonatomic(self, data, version=None, client=None):
        """``set_many`` without expiry (split by slot; not atomic across slots)."""
        return self.client.set_many(data, None, version, client=client)

    def msetnx(self, data, version=None, client=None):
        """MSETNX: all keys must share a slot (use a ``{hash tag}``)."""
        raw = client or self.client.get_client()
        made = {self.client._key(k, version): self.client.encode(v) for k, v in data.items()}
        return raw.msetnx(made)

    def readonly(self, target_nodes=None, client=None):
        """READONLY on the raw cluster client."""
        return self.client.readonly(target_nodes, client)

    def readwrite(self, target_nodes=None, client=None):
        """READWRITE on the raw cluster client."""
        return self.client.readwrite(target_nodes, client)

    def flushall(self, client=None):
        """Delete every key on every primary."""
        return self.clear(client=client)
