"""``DefaultClusterClient``: the cache operations on a Valkey Cluster, sync and async.

Each command goes to the node serving its key's slot; ``get_many``/``set_many``/
``delete_many`` are split by slot, one pipeline per node; ``keys``, ``iter_keys``,
``delete_pattern`` and ``clear`` visit every primary; MOVED/ASK redirections and a
failed-over node are followed (see ``django_valkey_fast.cluster``).
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

from valkey.exceptions import ConnectionError, TimeoutError

from django_valkey_fast.async_cache import channel as aio
from django_valkey_fast.channel import channel_for_pool
from django_valkey_fast.client.default import DefaultClient, bind_operations
from django_valkey_fast.base import prepared
from django_valkey_fast.client.sharded import AsyncNodes, ShardOperations
from django_valkey_fast.cluster import ClusterRouter, run_on_cluster

__all__ = ["DefaultClusterClient"]


def _pipelines(step):
    return step[1].items()


class ClusterChannel:
    """Runs commands on the nodes serving their slots (sync)."""

    def __init__(self, router, node_channel):
        self.router = router
        self._node_channel = node_channel

    def _drive(self, plan):
        try:
            step = next(plan)
            while True:
                if step[0] == "sleep":
                    time.sleep(step[1])
                    step = plan.send(None)
                    continue
                replies = {}
                for node, commands in _pipelines(step):
                    try:
                        replies[node] = self._node_channel(node).pipeline(commands)
                    except (ConnectionError, TimeoutError) as error:
                        replies[node] = error  # the plan decides what may be resent
                step = plan.send(replies)
        except StopIteration as stop:
            return stop.value

    def call(self, command):
        reply = self._drive(run_on_cluster(self.router, [command], False))
        if isinstance(reply, Exception):
            raise reply
        return reply

    def pipeline(self, commands):
        return self._drive(run_on_cluster(self.router, commands, True))


class AsyncClusterChannel(AsyncNodes):
    """Runs commands on the nodes serving their slots (asyncio; nodes in parallel)."""

    _node_channel = AsyncNodes._channel_at

    async def _drive(self, plan):
        try:
            step = next(plan)
            while True:
                if step[0] == "sleep":
                    await asyncio.sleep(step[1])
                    step = plan.send(None)
                    continue
                nodes = [node for node, _ in _pipelines(step)]
                replies = await asyncio.gather(
                    *[self._node_channel(node).pipeline(commands)
                      for node, commands in _pipelines(step)], return_exceptions=True)
                for reply in replies:
                    if isinstance(reply, BaseException) and not isinstance(
                            reply, (ConnectionError, TimeoutError)):
                        raise reply
                step = plan.send(dict(zip(nodes, replies)))
        except StopIteration as stop:
            return stop.value

    async def call(self, command):
        reply = await self._drive(run_on_cluster(self.router, [command], False))
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def pipeline(self, commands):
        return await self._drive(run_on_cluster(self.router, commands, True))


@bind_operations(sync_names=True, operations=ShardOperations)
class DefaultClusterClient(ShardOperations, DefaultClient):
    """The cache on a Valkey Cluster; LOCATION is one node's URL (or a list of seeds)."""

    CONNECTION_FACTORY_PATH = "django_valkey_fast.cluster_cache.pool.ClusterConnectionFactory"

    def __init__(self, server, params, backend):
        super().__init__(server, params, backend)
        seeds = []
        for url in self._server:
            parsed = urlparse(url)
            seeds.append((parsed.hostname or "127.0.0.1", parsed.port or 6379))
        # Shared by every client of this cache: the slot map is learned once per process.
        self._router = prepared((type(self), "router"), params, lambda: ClusterRouter(seeds))
        self._seed_pool = self.connection_factory.seed_pool(self._server[0])
        self._node_channels: dict = {}
        self._cluster_channel = ClusterChannel(self._router, self._sync_node)

    # -- the raw cluster client (django-valkey's get_client) -------------------------

    def get_client(self, write=True, tried=None, key=None, **kwargs):
        """The ``valkey.cluster.ValkeyCluster`` for this cache."""
        return self._client_at(0)

    def keyslot(self, key, version=None) -> int:
        """The cluster slot of ``key``."""
        return self._router.shard_for(self._key(key, version))

    def readonly(self, target_nodes=None, client=None):
        """READONLY on the raw cluster client."""
        return (client or self.get_client()).readonly(target_nodes)

    def readwrite(self, target_nodes=None, client=None):
        """READWRITE on the raw cluster client."""
        return (client or self.get_client()).readwrite(target_nodes)

    # -- channels -----------------------------------------------------------------------

    def _sync_node(self, node):
        channel = self._node_channels.get(node)
        if channel is None:
            channel = self._node_channels[node] = channel_for_pool(
                self.connection_factory.node_pool(self._seed_pool, *node))
        return channel

    def _channel(self, write):
        return self._cluster_channel

    def _aio_state(self, loop):
        """Per event loop: the cluster channel, with its channel to each node."""
        seed = aio.connection_params(self._seed_pool)
        return AsyncClusterChannel(self._router, lambda node: aio.channel_for(
            dict(seed, host=node[0], port=node[1], cluster=True), loop))

    def _achannel(self, write):
        return self._aio.get()

    def _aio_channels(self) -> list:
        state = self._aio.current()
        return state.channels() if state is not None else []

    async def aget_lock(self, key, version=None, *args, client=None, **kwargs):
        """A valkey-py asyncio ``Lock`` on the node serving ``key``."""
        if client is None:
            channel = self._achannel(True)
            if not self._router.ready:
                await channel.call(("PING",))
            slot = self._router.shard_for(self._key(key, version))
            client = self._async_client_of(channel._node_channel(self._router.node_of(slot)))
        return DefaultClient.get_lock(self, key, version, *args, client=client, **kwargs)

    alock = aget_lock

    def get_lock(self, key, version=None, *args, client=None, **kwargs):
        """A valkey-py ``Lock`` (on the cluster client, which routes by key)."""
        return DefaultClient.get_lock(self, key, version, *args,
                                      client=client or self.get_client(), **kwargs)

    lock = get_lock

    def close(self) -> None:
        """Close connections if ``CLOSE_CONNECTION`` asks for it."""
        if self._close_requested():
            for channel in self._node_channels.values():
                channel.disconnect()
