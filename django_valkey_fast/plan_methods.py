"""Client methods made from operation plans.

A client class decorated with :func:`bind_operations` gets, for each operation plan
of :mod:`django_valkey_fast.operations`, a blocking method and a coroutine that
drive the plan on the client's channel (sync or asyncio), retry a write that reached
a replica on the primary once, and apply the cache's error policy. Nothing here
knows which server topology the client serves: the client's ``_channel``/``_achannel``
decide that.
"""

from __future__ import annotations

import asyncio

from valkey.exceptions import ConnectionError, ReadOnlyError, ResponseError, TimeoutError

from django_valkey_fast._drive import run_plan
from django_valkey_fast import async_channel as aio
from django_valkey_fast.config import SERVER_ERRORS
from django_valkey_fast.channel import channel_of
from django_valkey_fast.exceptions import DecodeError
from django_valkey_fast.operations import Operations, Pause

__all__ = ["arun_plan", "bind_operations", "run_plan"]


async def arun_plan(plan, channel):
    """Drive an operation's plan to its answer on an asyncio channel (the twin of
    ``run_plan``: the same steps, awaited).

    A command on an open connection is sent from here and its reply awaited here
    (``channel.call`` would add two coroutines per command); anything but a plain
    reply goes to ``channel.call_again``, which holds the resend rules.

    Not compiled: as a Cython coroutine it measured slower than CPython 3.11's own
    frames (6.01 against 5.85 us of CPU per ``aget`` at 50 in flight)."""
    try:
        command = next(plan)
        while True:
            try:
                if type(command) is tuple:
                    connection = channel.open_connection()
                    if connection is None:
                        reply = await channel.call(command)
                    else:
                        try:
                            reply = await connection.send(channel.pack_command(command), 1)
                        except ConnectionError as error:
                            reply = await channel.call_again(command, connection, error, False)
                        else:
                            if isinstance(reply, Exception):
                                reply = await channel.call_again(
                                    command, connection, reply, True)
                elif type(command) is list:
                    reply = await channel.pipeline(command)
                elif type(command) is Pause:
                    await asyncio.sleep(command)
                    reply = None
                else:
                    reply = await channel.fanout(command)
            except ResponseError as error:
                command = plan.throw(error)
            else:
                command = plan.send(reply)
    except StopIteration as stop:
        return stop.value


def _async_method(name, plan):
    write = plan.op_write

    async def method(self, *args, client=None, **kwargs):
        try:
            try:
                if client is None:
                    channel = self._achannel(write)
                else:
                    channel = aio.channel_for(aio.connection_params(client.connection_pool))
                return await arun_plan(plan(self, *args, **kwargs), channel)
            except ReadOnlyError:
                # A write reached a replica: find the primary among LOCATION, retry once.
                if not (write and client is None and await self._afind_primary()):
                    raise
                return await arun_plan(plan(self, *args, **kwargs), self._achannel(write))
            except (ConnectionError, TimeoutError) as error:
                # A read whose server failed: read it from another replica or the primary.
                if write or client is not None or not self._reads_fail_over:
                    raise
                return await self._aread_elsewhere(
                    channel, error, lambda other: arun_plan(plan(self, *args, **kwargs), other))
        except (*SERVER_ERRORS, DecodeError) as error:
            return _failed(self, error, plan, args, kwargs)

    return _named(method, name, plan)


def _sync_method(name, plan):
    write = plan.op_write

    def method(self, *args, client=None, **kwargs):
        try:
            try:
                channel = self._channel(write) if client is None else channel_of(client)
                return run_plan(plan(self, *args, **kwargs), channel)
            except ReadOnlyError:
                # A write reached a replica: find the primary among LOCATION, retry once.
                if not (write and client is None and self._find_primary()):
                    raise
                return run_plan(plan(self, *args, **kwargs), self._channel(write))
            except (ConnectionError, TimeoutError) as error:
                # A read whose server failed: read it from another replica or the primary.
                if write or client is not None or not self._reads_fail_over:
                    raise
                return self._read_elsewhere(
                    channel, error, lambda other: run_plan(plan(self, *args, **kwargs), other))
        except (*SERVER_ERRORS, DecodeError) as error:
            return _failed(self, error, plan, args, kwargs)

    return _named(method, name, plan)


def _named(method, name, plan):
    method.__name__ = method.__qualname__ = name
    method.__doc__ = plan.__doc__
    method.plan = plan
    return method


def _failed(client, error, plan, args, kwargs):
    """Apply the error policy: raise, or return the operation's fallback answer."""

    def fallback():
        answer = plan.op_fallback
        if callable(answer):
            return answer(plan.op_signature.bind(client, *args, **kwargs).arguments)
        return answer

    return client._errors.handle(error, fallback)


def bind_operations(sync_names: bool, operations=Operations, names=None):
    """Class decorator: give a client a method for every operation it inherits.

    Each operation ``name`` gets a coroutine ``a<name>``; with ``sync_names`` the
    plain ``name`` is a blocking method (the sync client), otherwise it is the same
    coroutine (django-valkey's async client, whose ``get`` is awaited). With
    ``names``, only those operations are bound (a mixin of a few commands, which
    leaves ``cls.operations`` to the client it is mixed into).
    """

    def bind(cls):
        if names is None:
            cls.operations = operations
        for name in dir(operations) if names is None else names:
            plan = getattr(operations, name)
            if not hasattr(plan, "op_write"):
                continue
            async_name = "_a" + name[1:] if name.startswith("_") else "a" + name
            coroutine = _async_method(async_name, plan)
            if async_name not in cls.__dict__:
                setattr(cls, async_name, coroutine)
            if name not in cls.__dict__ and name != "operations":
                setattr(cls, name, _sync_method(name, plan) if sync_names else coroutine)
        return cls

    return bind
