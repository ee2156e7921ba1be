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
import time

from valkey.exceptions import ConnectionError, TimeoutError

from django_valkey_fast.cluster import run_on_cluster
from django_valkey_fast.sharding import Router

__all__ = ["AsyncClusterChannel", "AsyncNodes", "AsyncShardChannel", "ClusterChannel",
           "ShardChannel"]


class ShardChannel:
    """Runs each command on the shard its keys live on (sync)."""

    def __init__(self, router: Router, channel_at):
        self.router = router
        self._channel_at = channel_at

    def call(self, command):
        parts, merge = self.router.split(command)
        return merge([self._channel_at(shard).call(part) for shard, part in parts])

    def pipeline(self, commands):
        per_shard, assemble = self.router.plan_pipeline(commands)
        return assemble({shard: self._channel_at(shard).pipeline(shard_commands)
                         for shard, shard_commands in per_shard.items()})


class AsyncNodes:
    """The asyncio channels of one event loop to the servers of a topology, opened on
    first use by ``open_channel(place)`` and kept by place."""

    def __init__(self, router, open_channel):
        self.router = router
        self._open_channel = open_channel
        self._channels: dict = {}

    def _channel_at(self, place):
        channel = self._channels.get(place)
        if channel is None:
            channel = self._channels[place] = self._open_channel(place)
        return channel

    def channels(self) -> list:
        """The channels opened so far."""
        return list(self._channels.values())


class AsyncShardChannel(AsyncNodes):
    """Runs each command on the shard its keys live on (asyncio; shards in parallel)."""

    async def call(self, command):
        parts, merge = self.router.split(command)
        if len(parts) == 1:
            shard, part = parts[0]
            return merge([await self._channel_at(shard).call(part)])
        return merge(await asyncio.gather(
            *[self._channel_at(shard).call(part) for shard, part in parts]))

    async def pipeline(self, commands):
        per_shard, assemble = self.router.plan_pipeline(commands)
        shards = list(per_shard)
        replies = await asyncio.gather(
            *[self._channel_at(shard).pipeline(per_shard[shard]) for shard in shards])
        return assemble(dict(zip(shards, replies)))


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
                step = plan.send(self._run_everywhere(step))
        except StopIteration as stop:
            return stop.value

    def _run_everywhere(self, step) -> dict:
        """Each node's replies to its pipeline (or the error its connection met; the
        plan decides what may be resent): every pipeline is written before any reply
        is read, so the nodes work in parallel and the step costs one round trip."""
        replies: dict = {}
        sent = []
        try:
            for node, commands in _pipelines(step):
                try:
                    sent.append((node, self._node_channel(node).send_pipeline(commands)))
                except (ConnectionError, TimeoutError) as error:
                    replies[node] = error
            for node, pipeline in sent:
                try:
                    replies[node] = pipeline.channel.receive_pipeline(pipeline)
                except (ConnectionError, TimeoutError) as error:
                    replies[node] = error
        finally:
            for _, pipeline in sent:
                pipeline.abandon()  # (those left unread by an error raised above)
        return replies

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
