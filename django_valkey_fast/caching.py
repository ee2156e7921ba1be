"""The client-side cache's plans: how a command runs when replies may be kept in
process memory (``local_store.LocalStore``). Sans-IO, like every plan: the caching
channels (``caching_channel.py``) run them on a sync or an asyncio channel.

- ``GET key`` and ``MGET key ...`` are answered from the store when it can; what it
  cannot answer is read together with ``CLIENT TRACKING ON REDIRECT <listener id>``
  (the server then reports changes to the listener) and each key's ``PTTL`` (a kept
  reply expires with its key), and kept unless an invalidation came meanwhile.
- ``EXISTS key`` is answered from a kept ``GET`` reply when there is one.
- A command that is not a known read drops every key it names (its ``str``
  arguments: this package's keys are ``str``, its values bytes or numbers) from every
  store of the configuration, before it is sent and after its reply; FLUSHDB and
  FLUSHALL empty them. A pipeline is judged command by command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django_valkey_fast.local_store import MISSING, LocalStore

__all__ = ["READS", "answer_locally", "through_stores"]

# Commands that change nothing: they run as they are.
READS = frozenset({
    "GET", "MGET", "EXISTS", "TTL", "PTTL", "TYPE", "STRLEN", "GETRANGE", "SCAN", "KEYS",
    "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS", "HLEN", "HEXISTS", "HSCAN", "SMEMBERS",
    "SISMEMBER", "SMISMEMBER", "SCARD", "SRANDMEMBER", "SSCAN", "SINTER", "SUNION",
    "SDIFF", "PING", "INFO", "ROLE", "DBSIZE", "ECHO", "CLIENT", "SCRIPT", "READONLY",
})
FLUSHES = frozenset({"FLUSHDB", "FLUSHALL"})


def answer_locally(store: LocalStore, command: tuple):
    """The reply of a two-word command (``GET key``, ``EXISTS key``) from a kept
    ``GET`` reply, or MISSING when the store cannot give it."""
    verb = command[0]
    if verb == "GET":
        return store.lookup(command[1])
    if verb == "EXISTS":
        reply = store.lookup(command[1])
        if reply is not MISSING:
            return 0 if reply is None else 1
    return MISSING


def through_stores(store: LocalStore, stores: Sequence[LocalStore],
                   redirect: Callable[[], int | None], command):
    """Plan: run ``command`` (a tuple, or a list of them: a pipeline) with ``store``
    (the one of the server it runs on) keeping and answering reads, and ``stores``
    (every store of the configuration) forgetting what it writes. ``redirect()`` is
    the listener's client id, None while it is not connected."""
    if type(command) is tuple:
        verb = command[0]
        if verb == "GET" and len(command) == 2:
            return (yield from _read_many(store, redirect, command[1:], single=True))
        if verb == "MGET":
            return (yield from _read_many(store, redirect, command[1:], single=False))
        if verb in READS:
            return (yield command)
        written = [command]
    else:
        written = [each for each in command if each[0] not in READS]
        if not written:
            return (yield command)
    flush = any(each[0] in FLUSHES for each in written)
    keys = None if flush else [arg for each in written for arg in each[1:] if type(arg) is str]
    _forget(stores, keys)
    try:
        return (yield command)
    finally:
        _forget(stores, keys)


def _forget(stores, keys) -> None:
    for store in stores:
        if keys is None:
            store.flush()
        elif keys:
            store.invalidate(keys)


def _read_many(store: LocalStore, redirect, keys: Sequence, single: bool):
    """Plan: ``GET key`` (``single``) or ``MGET keys``, from the store where it can."""
    replies = [store.lookup(key) for key in keys]
    missing = [position for position, reply in enumerate(replies) if reply is MISSING]
    if not missing:
        return replies[0] if single else replies
    wanted = [keys[position] for position in missing]
    client_id = redirect()
    if client_id is None:  # the listener is not connected: read without keeping
        read = yield (("GET", wanted[0]) if single else ("MGET", *wanted))
        found = [read] if single else read
    else:
        tokens = [store.begin_read(key) for key in wanted]
        try:
            answers = yield [("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "NOLOOP"),
                             ("GET", wanted[0]) if single else ("MGET", *wanted),
                             *[("PTTL", key) for key in wanted]]
            tracking, read, ttls = answers[0], answers[1], answers[2:]
            for answer in (tracking, read):
                if isinstance(answer, Exception):
                    raise answer
            found = [read] if single else read
            for key, token, reply, ttl in zip(wanted, tokens, found, ttls):
                if not isinstance(ttl, Exception):
                    store.finish_read(key, token, reply, ttl)
        finally:
            for key, token in zip(wanted, tokens):
                store.abandon_read(key, token)  # (a no-op for the ones kept)
    for position, reply in zip(missing, found):
        replies[position] = reply
    return replies[0] if single else replies
