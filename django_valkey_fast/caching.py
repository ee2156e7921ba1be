"""The client-side cache's plans: how a command runs when replies may be kept in
process memory (``local_store.LocalStore``). Sans-IO, like every plan: the caching
channels (``caching_channel.py``) run them on a sync or an asyncio channel.

- ``GET key`` and ``MGET key ...`` are answered from the store when it can; what it
  cannot answer is read after ``CLIENT TRACKING ON REDIRECT <listener id> OPTIN`` and
  ``CLIENT CACHING YES`` (the server then reports changes of these keys to the
  listener) and together with each key's ``PTTL`` (a kept reply expires with its key),
  and kept unless an invalidation or an overlapping read said otherwise meanwhile.
- ``EXISTS key`` is answered from a kept ``GET`` reply when there is one.
- A command that is not a known read drops every key it names (its ``str``
  arguments: this package's keys are ``str``, its values bytes or numbers; and every
  argument of DEL and UNLINK, which may be keys a SCAN returned as bytes) from every
  store of the configuration, before it is sent and after its reply; FLUSHDB and
  FLUSHALL empty them. A pipeline is judged command by command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django_valkey_fast.local_store import MISSING, LocalStore

__all__ = ["READS", "answer_locally", "through_stores"]

# Commands that change no key: they run as they are.
READS = frozenset({
    "GET", "MGET", "EXISTS", "TTL", "PTTL", "TYPE", "STRLEN", "GETRANGE", "SCAN", "KEYS",
    "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS", "HLEN", "HEXISTS", "HSCAN", "SMEMBERS",
    "SISMEMBER", "SMISMEMBER", "SCARD", "SRANDMEMBER", "SSCAN", "SINTER", "SUNION",
    "SDIFF", "PING", "INFO", "ROLE", "DBSIZE", "ECHO", "SCRIPT", "READONLY",
})
FLUSHES = frozenset({"FLUSHDB", "FLUSHALL"})
# Commands whose every argument is a key, bytes included (keys a SCAN returned).
KEYS_ONLY = frozenset({"DEL", "UNLINK"})


def answer_locally(store: LocalStore, command: tuple):
    """The reply of a two-word command (``GET key``, ``EXISTS key``) from a kept
    ``GET`` reply, or MISSING when the store cannot give it."""
    if command[0] == "GET":
        return store.lookup(command[1])
    if command[0] == "EXISTS":
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
    keys = None if flush else [key for each in written for key in _named_keys(each)]
    _forget(stores, keys)
    try:
        return (yield command)
    finally:
        _forget(stores, keys)


def _named_keys(command) -> list:
    """The keys a write may change: every ``str`` argument (this package's keys are
    ``str``, its values bytes or numbers), and every argument of DEL and UNLINK."""
    if command[0] in KEYS_ONLY:
        return [arg.decode("utf-8", "surrogateescape") if type(arg) is bytes else arg
                for arg in command[1:]]
    return [arg for arg in command[1:] if type(arg) is str]


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
    read = ("GET", wanted[0]) if single else ("MGET", *wanted)
    # Tokens first, then the listener's id: a listener that reconnects in between
    # flushes, which voids these tokens, whatever id the read then names.
    tokens = [store.begin_read(key) for key in wanted]
    try:
        client_id = redirect()
        if client_id is None:  # the listener is not connected: read without keeping
            answer = yield read
            found = [answer] if single else answer
        else:
            # OPTIN + CACHING YES: only this read is tracked on the connection, not
            # every other command it runs (the server's table and the listener's
            # traffic hold the keys kept here, not all keys read).
            answers = yield [("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "OPTIN"),
                             ("CLIENT", "CACHING", "YES"), read,
                             *[("PTTL", key) for key in wanted]]
            tracking, caching, answer, ttls = answers[0], answers[1], answers[2], answers[3:]
            if isinstance(answer, Exception):
                raise answer
            found = [answer] if single else answer
            # Kept only if tracking is on for this read. It is refused when the listener
            # it names has just gone (its successor, once subscribed, flushes anyway):
            # the reply is still the caller's answer.
            if not isinstance(tracking, Exception) and not isinstance(caching, Exception):
                for key, token, reply, ttl in zip(wanted, tokens, found, ttls):
                    if not isinstance(ttl, Exception):
                        store.finish_read(key, token, reply, ttl)
    finally:
        for key, token in zip(wanted, tokens):
            store.abandon_read(key, token)  # (a no-op for the ones kept)
    for position, reply in zip(missing, found):
        replies[position] = reply
    return replies[0] if single else replies
