"""Channels with a client-side cache in front: a local hit of ``GET`` costs no I/O;
everything else runs the ``caching.through_stores`` plan on the server's channel.

Built by a client whose ``OPTIONS["CLIENT_SIDE_CACHE"]`` is set, one per server
(sync) or per server and event loop (asyncio), around the channel it would use
anyway.
"""

from __future__ import annotations

from django_valkey_fast._drive import run_plan
from django_valkey_fast.caching import answer_locally, through_stores
from django_valkey_fast.local_store import MISSING
from django_valkey_fast.plan_methods import arun_plan

__all__ = ["AsyncCachingChannel", "CachingChannel"]


class _Caching:
    """What both caching channels hold: the channel behind (``inner``), the store of
    its server and every store of the configuration (``server``: the ``LocalCache``
    entry of the server ``inner`` reaches)."""

    __slots__ = ("inner", "store", "stores", "redirect")

    def __init__(self, inner, server, stores):
        self.inner = inner
        self.store = server.store
        self.stores = stores
        self.redirect = server.redirect_id

    def __getattr__(self, name):
        return getattr(self.inner, name)  # (disconnect, idle_count, pack_command...)


class CachingChannel(_Caching):
    """A sync channel (``channel.Channel``) behind a local store."""

    __slots__ = ()

    def call(self, command):
        """Run one command; a ``GET`` (or ``EXISTS``) the store can answer costs no I/O."""
        if len(command) == 2:
            reply = answer_locally(self.store, command)
            if reply is not MISSING:
                return reply
        return self.pipeline(command)

    def pipeline(self, commands):
        """Run a command or several in one round trip (writes forget their keys
        locally): the ``through_stores`` plan, closed whatever happens (its reads
        in flight and its writes' second drop are settled now, not by the collector)."""
        plan = through_stores(self.store, self.stores, self.redirect, commands)
        try:
            return run_plan(plan, self.inner)
        finally:
            plan.close()


class AsyncCachingChannel(_Caching):
    """An asyncio channel (``async_channel.AsyncChannel``) behind a local store."""

    __slots__ = ()

    def open_connection(self):
        """None: ``arun_plan`` then sends through :meth:`call`, which asks the store."""
        return None

    async def call(self, command):
        """Run one command; a ``GET`` (or ``EXISTS``) the store can answer costs no I/O."""
        if len(command) == 2:
            reply = answer_locally(self.store, command)
            if reply is not MISSING:
                return reply
        return await self.pipeline(command)

    async def pipeline(self, commands):
        """Run a command or several in one round trip (see ``CachingChannel.pipeline``;
        a cancelled task closes its plan too)."""
        plan = through_stores(self.store, self.stores, self.redirect, commands)
        try:
            return await arun_plan(plan, self.inner)
        finally:
            plan.close()
