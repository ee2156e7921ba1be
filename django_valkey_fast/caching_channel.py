"""Channels with a client-side cache in front: a local hit of ``GET`` costs no I/O;
everything else runs a plan of ``caching.py`` (``through_stores``, or
``through_cluster_stores`` on a cluster) on the channel behind.

Built by a client whose ``OPTIONS["CLIENT_SIDE_CACHE"]`` is set, one per server
(sync) or per server and event loop (asyncio), around the channel it would use
anyway; on a cluster, one in front of the cluster channel (sync, or per event loop).
"""

from __future__ import annotations

from functools import partial

from django_valkey_fast._drive import run_plan
from django_valkey_fast.caching import (
    answer_locally, answer_on_cluster, through_cluster_stores, through_stores,
)
from django_valkey_fast.local_store import MISSING
from django_valkey_fast.plan_methods import arun_plan

__all__ = ["AsyncCachingChannel", "CachingChannel", "for_cluster", "for_server"]


def for_server(channel_class, inner, server, stores):
    """A caching channel (``channel_class``) in front of ``inner``, a channel to one
    server: ``server`` is the ``LocalCache`` entry of that server (its store and
    listener), ``stores`` every store of the configuration."""
    return channel_class(inner, partial(answer_locally, server.store),
                         partial(through_stores, server.store, stores, server.redirect_id))


def for_cluster(channel_class, inner, router, nodes):
    """A caching channel (``channel_class``) in front of ``inner``, a cluster channel
    routed by ``router``: ``nodes`` is the configuration's client-side cache of the
    cluster (a store and a listener per node)."""
    return channel_class(inner, partial(answer_on_cluster, nodes, router),
                         partial(through_cluster_stores, router, nodes))


class _Caching:
    """What both caching channels hold: the channel behind (``inner``), how a
    two-word command is answered locally (``answer``: the reply or MISSING) and the
    plan every other command runs (``plan_of(command)``)."""

    __slots__ = ("inner", "answer", "plan_of")

    def __init__(self, inner, answer, plan_of):
        self.inner = inner
        self.answer = answer
        self.plan_of = plan_of

    def __getattr__(self, name):
        return getattr(self.inner, name)  # (disconnect, idle_count, channel_at...)


class CachingChannel(_Caching):
    """A sync channel (``channel.Channel``, or a cluster channel) behind local stores."""

    __slots__ = ()

    def call(self, command):
        """Run one command; a ``GET`` (or ``EXISTS``) the store can answer costs no I/O."""
        if len(command) == 2:
            reply = self.answer(command)
            if reply is not MISSING:
                return reply
        reply = self.pipeline(command)
        if isinstance(reply, Exception):  # (a cluster plan's error reply)
            raise reply
        return reply

    def pipeline(self, commands):
        """Run a command or several in one round trip (writes forget their keys
        locally): the plan, closed whatever happens (its reads in flight and its
        writes' second drop are settled now, not by the collector)."""
        plan = self.plan_of(commands)
        try:
            return run_plan(plan, self.inner)
        finally:
            plan.close()


class AsyncCachingChannel(_Caching):
    """An asyncio channel (``async_channel.AsyncChannel``, or a cluster channel)
    behind local stores."""

    __slots__ = ()

    def open_connection(self):
        """None: ``arun_plan`` then sends through :meth:`call`, which asks the store."""
        return None

    async def call(self, command):
        """Run one command; a ``GET`` (or ``EXISTS``) the store can answer costs no I/O."""
        if len(command) == 2:
            reply = self.answer(command)
            if reply is not MISSING:
                return reply
        reply = await self.pipeline(command)
        if isinstance(reply, Exception):  # (a cluster plan's error reply)
            raise reply
        return reply

    async def pipeline(self, commands):
        """Run a command or several in one round trip (see ``CachingChannel.pipeline``;
        a cancelled task closes its plan too)."""
        plan = self.plan_of(commands)
        try:
            return await arun_plan(plan, self.inner)
        finally:
            plan.close()
