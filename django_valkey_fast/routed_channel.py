"""Channels over a topology of servers: each command goes to the server(s) its keys
live on, as a router says, and the replies are merged back.

``ShardChannel``/``AsyncShardChannel`` run client-side sharding (a ``ShardRouter``
splits each command); ``ClusterChannel``/``AsyncClusterChannel`` drive the cluster
plan (``cluster.run_on_cluster``: slots, MOVED/ASK, retries that keep AT-MOST-ONCE)
over one channel per node. They hold no client: the client that builds one hands
it the function that opens the channel to a place (a shard index or a node
address), so they sit between the plans and the wire and call only downward.
"""

from __future__ import annotations

import asyncio

from valkey.exceptions import ConnectionError, TimeoutError

from django_valkey_fast._drive import run_plan
from django_valkey_fast.cluster import cluster_plan, pipeline_plan
from django_valkey_fast.plan_methods import arun_plan

__all__ = ["AsyncClusterChannel", "AsyncNodes", "AsyncShardChannel", "ClusterChannel",
           "ShardChannel", "SyncNodes"]


class AsyncNodes:
    """The asyncio channels of one event loop to the servers of a topology, opened on
    first use by ``open_channel(place)`` and kept by place; runs ``Fanout`` steps on
    them."""

    def __init__(self, router, open_channel):
        self.router = router
        self._open_channel = open_channel
        self._channels: dict = {}

    def open_connection(self) -> None:
        """None: a command's servers depend on its keys, so it goes through ``call``."""
        return None

    def channel_at(self, place):
        """The channel to the server at ``place`` (opened on first use)."""
        channel = self._channels.get(place)
        if channel is None:
            channel = self._channels[place] = self._open_channel(place)
        return channel

    def channels(self) -> list:
        """The channels opened so far."""
        return list(self._channels.values())

    async def fanout(self, per_node) -> dict:
        """Each node's replies to its pipeline, or the error its connection met."""
        nodes = list(per_node)
        replies = await asyncio.gather(
            *[self.channel_at(node).pipeline(per_node[node]) for node in nodes],
            return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(
                    reply, (ConnectionError, TimeoutError)):
                raise reply
        return dict(zip(nodes, replies))  # (no ``received``: the plan does that work)


class AsyncShardChannel(AsyncNodes):
    """Runs each command on the shard its keys live on (asyncio; shards in parallel)."""

    async def call(self, command):
        parts, merge = self.router.split(command)
        if len(parts) == 1:
            shard, part = parts[0]
            return merge([await self.channel_at(shard).call(part)])
        return merge(await asyncio.gather(
            *[self.channel_at(shard).call(part) for shard, part in parts]))

    async def pipeline(self, commands):
        per_shard, assemble = self.router.plan_pipeline(commands)
        shards = list(per_shard)
        replies = await asyncio.gather(
            *[self.channel_at(shard).pipeline(per_shard[shard]) for shard in shards])
        return assemble(dict(zip(shards, replies)))


class SyncNodes:
    """The sync channels to the servers of a topology, found by ``node_channel(place)``;
    runs ``Fanout`` steps on them."""

    def __init__(self, router, node_channel):
        self.router = router
        self._node_channel = node_channel

    def channel_at(self, place):
        """The channel to the server at ``place``."""
        return self._node_channel(place)

    def fanout(self, per_node) -> dict:
        """Each node's replies to its pipeline (or the error its connection met; the
        plan decides what may be resent): every pipeline is written before any reply
        is read, so the nodes work in parallel and the step costs one round trip."""
        replies: dict = {}
        sent = []
        received = getattr(per_node, "received", None)
        try:
            for node, commands in per_node.items():
                try:
                    sent.append((node, self._node_channel(node).send_pipeline(commands)))
                except (ConnectionError, TimeoutError) as error:
                    replies[node] = error
            for node, pipeline in sent:
                try:
                    answer = replies[node] = pipeline.channel.receive_pipeline(pipeline)
                except (ConnectionError, TimeoutError) as error:
                    replies[node] = error
                else:
                    if received is not None:  # (while the next nodes still work)
                        received(node, answer)
        finally:
            for _, pipeline in sent:
                pipeline.abandon()  # (those left unread by an error raised above)
        return replies


class ShardChannel(SyncNodes):
    """Runs each command on the shard its keys live on (sync)."""

    def call(self, command):
        parts, merge = self.router.split(command)
        return merge([self._node_channel(shard).call(part) for shard, part in parts])

    def pipeline(self, commands):
        per_shard, assemble = self.router.plan_pipeline(commands)
        return assemble({shard: self._node_channel(shard).pipeline(shard_commands)
                         for shard, shard_commands in per_shard.items()})


class ClusterChannel(SyncNodes):
    """Runs commands on the nodes serving their slots (sync): the cluster plan, driven
    by ``run_plan``, whose ``Fanout`` steps this channel runs. Built with ``decode``
    (``decode(value, key)``), it answers an MGET over several slots with the values
    decoded (``cluster.DecodedValues``), each node's as soon as they arrive."""

    def __init__(self, router, node_channel, decode=None):
        super().__init__(router, node_channel)
        self.decode = decode

    def call(self, command):
        """Run one command on the cluster; an error reply is raised."""
        reply = run_plan(cluster_plan(self.router, command, self.decode), self)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def pipeline(self, commands):
        """Run commands on the cluster; their replies, error replies as values."""
        return run_plan(pipeline_plan(self.router, commands), self)


class AsyncClusterChannel(AsyncNodes):
    """Runs commands on the nodes serving their slots (asyncio; nodes in parallel):
    the cluster plan, driven by ``arun_plan``, whose ``Fanout`` steps this channel runs.
    Built with ``decode``, it answers an MGET over several slots with the values
    decoded, as :class:`ClusterChannel` does (here once every node has answered: the
    event loop runs the other callers meanwhile)."""

    def __init__(self, router, channel_at, decode=None):
        super().__init__(router, channel_at)
        self.decode = decode

    async def call(self, command):
        """Run one command on the cluster; an error reply is raised."""
        reply = await arun_plan(cluster_plan(self.router, command, self.decode), self)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def pipeline(self, commands):
        """Run commands on the cluster; their replies, error replies as values."""
        return await arun_plan(pipeline_plan(self.router, commands), self)
