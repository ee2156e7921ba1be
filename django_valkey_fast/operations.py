"""What each cache operation means, written once, with no I/O in it.

Every operation is a generator function (the sans-IO pattern of h11/wsproto): it
yields the command to run (a tuple of arguments) or a pipeline (a list of such
tuples), receives the reply, and returns the operation's answer. An error reply from
the server is thrown into the generator at its ``yield``. Plans over several servers
(the cluster plan) also yield a :class:`Fanout` (a pipeline per server, replies per
server) and a :class:`Pause`; one driver per I/O model runs every kind of step. The
sync client drives these generators with a blocking channel; the async client drives
the very same generators with an asyncio one. Nothing here knows which.

``@operation`` records whether the operation writes (it then runs on the primary)
and what it returns when ``IGNORE_EXCEPTIONS`` swallows a server error.
"""

from __future__ import annotations

import builtins
import datetime
import decimal
import hashlib
import inspect
import numbers
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Union

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from valkey.exceptions import NoScriptError, ResponseError

from django_valkey_fast._common import glob_escape

if TYPE_CHECKING:
    from django_valkey_fast._codec import KeyMaker

__all__ = [
    "Command", "Duration", "Fanout", "Operations", "Pause", "Plan", "PlanHost", "SCRIPT_INCR",
    "Script", "SCRIPT_INCR_OR_CREATE", "Timeout", "When", "operation", "primary_search",
    "seconds_number",
]


class Fanout(dict):
    """A plan step: ``{server: [commands]}``, one pipeline per server, all written before
    any reply is read (the servers work in parallel). The plan is sent
    ``{server: [replies]}``, error replies among them as values; a server whose
    connection failed maps to that ``ConnectionError``/``TimeoutError`` instead, for
    the plan to decide what may be sent again.

    ``received(server, replies)``, when given, may be called by the driver with a
    server's replies as soon as they are read, before the step ends (the sync driver
    does: the plan's work on one server's replies then overlaps the wait for the next
    server's); the plan does the same work after the step for the servers it was not
    called for."""

    __slots__ = ("received",)

    def __init__(self, per_server=(), received=None):
        super().__init__(per_server)
        self.received = received


class Pause(float):
    """A plan step: wait this many seconds (``time.sleep`` or ``asyncio.sleep``), then
    the plan is sent None."""

    __slots__ = ()


T = TypeVar("T")
# One command: its arguments (name first). A plan yields one, or a list (a pipeline).
Command = tuple
# An operation's plan: yields commands, is sent their replies, returns the answer ``T``.
Plan = Generator[Union[Command, list, Fanout, Pause], Any, T]
# A Django timeout: seconds (int, float, Decimal, a numeric string), None for never,
# or DEFAULT_TIMEOUT.
Timeout = Any
# A moment for ``expire_at``: a datetime or a unix time (seconds or milliseconds).
When = Union[datetime.datetime, int, float]
# A duration for ``expire``/``pexpire``: a timedelta or a number.
Duration = Union[datetime.timedelta, int, float]


def primary_search(servers: int) -> Plan[int | None]:
    """Plan: ask servers ``1..servers-1`` of LOCATION their ROLE at once (after a write
    met READONLY: a failover made one of them the primary); return the index of the
    first that is a primary, or None. Servers that fail to answer are passed over."""
    replies = yield Fanout({index: [("ROLE",)] for index in range(1, servers)})
    for index in range(1, servers):
        reply = replies[index]
        if isinstance(reply, BaseException) or isinstance(reply[0], BaseException):
            continue
        role = reply[0]
        if role and role[0] in (b"master", "master"):
            return index
    return None


def operation(write: bool, fallback: Any = None) -> Any:
    """Mark a plan generator as an operation.

    ``fallback`` is what the operation returns when a server error is ignored: a
    value, or a callable given the call's bound arguments (a dict).
    """

    def mark(plan):
        plan.op_write = write
        plan.op_fallback = fallback
        plan.op_signature = inspect.signature(plan)
        return plan

    return mark


class Script:
    """A Lua script run with EVALSHA, falling back to EVAL (which loads it) on NOSCRIPT."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def run(self, keys: Sequence[Any], args: Sequence[Any]) -> Plan[Any]:
        """Plan: run the script; return its reply."""
        try:
            return (yield ("EVALSHA", self.sha, len(keys), *keys, *args))
        except NoScriptError:
            pass
        return (yield ("EVAL", self.source, len(keys), *keys, *args))


# INCRBY keeps the key's TTL; the EXISTS check makes a missing key an error (nil),
# atomically. redis.call works on Redis and Valkey alike.
SCRIPT_INCR = Script(
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "return redis.call('INCRBY', KEYS[1], ARGV[1]) end return false"
)
SCRIPT_INCR_OR_CREATE = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
# Compare-and-set, TTL kept: the write half of an optimistic read-modify-write.
SCRIPT_COMPARE_AND_SET = Script(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end return 0"
)


def seconds_number(timeout: Any) -> Any:
    """A timeout as a number of seconds, as Django's ``RedisCache`` reads it: numbers
    as they are (fractions kept, as django-valkey keeps them: PX has milliseconds),
    anything else through ``int()`` (``"10"`` is 10 s). What ``int()`` refuses is a
    programming error: ``TypeError`` or ``ValueError``, raised before anything is
    sent, never swallowed by ``IGNORE_EXCEPTIONS``."""
    if isinstance(timeout, (numbers.Real, decimal.Decimal)):
        return timeout
    try:
        return int(timeout)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"A cache timeout is a number of seconds or None, not {timeout!r}") from None


CLEAR_PAGE = 1000  # keys per SCAN page when clear() is scoped to the prefix


def _seconds(timeout: Any) -> Any:
    return int(timeout.total_seconds()) if isinstance(timeout, datetime.timedelta) else timeout


def _milliseconds(timeout: Any) -> Any:
    if isinstance(timeout, datetime.timedelta):
        return int(timeout.total_seconds() * 1000)
    return timeout


def _unix_time(when: Any, scale: int) -> Any:
    if isinstance(when, datetime.datetime):
        return int(when.timestamp() * scale)
    return when


def _fallback_default(bound: dict) -> Any:
    return bound.get("default")


def _ttl_answer(ttl: int) -> int | None:
    # TTL/PTTL: -2 missing -> 0, -1 persistent -> None (django-valkey's answers).
    if ttl == -2:
        return 0
    if ttl == -1:
        return None
    return ttl


class PlanHost:
    """What the plans run on: a client. The client class provides ``_key`` (key and
    version -> server key, validated), ``make_key``, ``make_pattern``, ``encode``,
    ``decode``, ``reverse_key``, ``version``, ``default_timeout``,
    ``_has_compression_enabled``, ``_keys`` (the key maker), ``_clear_scope``
    ("database" or "prefix") and ``operations`` (the class of its plans); this class
    adds the helpers the plans share. A client inherits it, not the plans: the
    client's ``get`` is a method that runs the plan ``operations.get``."""

    operations: type[Operations]
    # Bound once per client instance (one attribute lookup on the hot path):
    # key and version -> the server key, validated; a server key -> the caller's key.
    _key: Callable[..., str]
    reverse_key: Callable[[str], str]
    version: int
    default_timeout: float | None
    _clear_scope: str
    _keys: KeyMaker
    _scan_itersize: int  # DJANGO_VALKEY_SCAN_ITERSIZE

    if TYPE_CHECKING:
        def make_key(self, key: Any, version: int | None = None,
                     prefix: str | None = None) -> str: ...
        def make_pattern(self, pattern: str, version: int | None = None,
                         prefix: str | None = None) -> str: ...
        def encode(self, value: Any) -> bytes | int | float: ...
        def decode(self, value: bytes, key: str | None = None) -> Any: ...
        def decode_many(self, keys: list, nkeys: list, replies: list) -> dict: ...
        def _has_compression_enabled(self) -> bool: ...

    def _timeout_ms(self, timeout: Timeout) -> int | None:
        """Django timeout (seconds, DEFAULT_TIMEOUT, None) -> milliseconds or None."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        return int(seconds_number(timeout) * 1000)

    def _encode_for(self, key: str, value: Any) -> bytes | int | float:
        try:
            return self.encode(value)
        except Exception as error:
            if hasattr(error, "add_note"):
                error.add_note(f"(while encoding the value for cache key {key!r})")
            raise

    def _incr_slow(self, key: Any, nkey: str, delta: Any) -> Plan[Any]:
        """Plan: add ``delta`` to a value INCRBY cannot take, atomically: read, add,
        and write back only if nobody changed the value meanwhile (else again)."""
        while True:
            reply = yield ("GET", nkey)
            if reply is None:
                raise ValueError(f"Key '{key}' not found")
            stored, value = self._added(self.decode(reply, nkey), delta)
            nvalue = self._encode_for(nkey, stored)
            if (yield from SCRIPT_COMPARE_AND_SET.run([nkey], [reply, nvalue])):
                return value

    def _added(self, stored: Any, delta: Any) -> tuple[Any, Any]:
        """``(what to store, the answer)`` after adding ``delta`` to a stored value."""
        value = stored + delta
        return value, value

    def _decode_set(self, replies: Iterable[bytes], nkey: str | None = None) -> builtins.set:
        decode = self.decode
        return {decode(reply, nkey) for reply in replies}

    def _combine(self, command: str, keys: Iterable[Any], version: int | None) -> Plan[builtins.set]:
        # SDIFF / SINTER / SUNION: a set computed from several sets.
        return self._decode_set((yield (command, *[self._key(k, version) for k in keys])))

    def _combine_store(self, command: str, dest: Any, keys: Iterable[Any],
                       dest_version: int | None, keys_version: int | None) -> Plan[int]:
        # SDIFFSTORE / SINTERSTORE / SUNIONSTORE: the same, stored in ``dest``.
        nkeys = [self._key(k, keys_version) for k in keys]
        return (yield (command, self._key(dest, dest_version), *nkeys))

    def _sscan_command(self, key: Any, cursor: int, match: Any, count: int | None,
                       version: int | None) -> tuple[str, Command]:
        nkey = self._key(key, version)
        command: Command = ("SSCAN", nkey, cursor)
        if match is not None:
            if self._has_compression_enabled():
                raise ValueError("Using match with compression is not supported.")
            command += ("MATCH", self.encode(match))
        if count:
            command += ("COUNT", count)
        return nkey, command


class Operations(PlanHost):
    """The cache operations, as plans, for the sync and the async clients alike.

    A client class gets a method for each of them (``bind_operations``); the plan
    runs with the client as ``self``. ``operations`` names the class whose plans
    compose (``add`` runs ``operations.set``), so a subclass's override of one plan
    reaches the others.
    """

    # -- Django's cache API -------------------------------------------------------

    @operation(write=False, fallback=_fallback_default)
    def get(self, key: Any, default: Any = None, version: int | None = None) -> Plan[Any]:
        """Return the value of ``key``, or ``default`` when it is missing."""
        nkey = self._key(key, version)
        reply = yield ("GET", nkey)
        if reply is None:
            return default
        return self.decode(reply, nkey)

    @operation(write=True, fallback=False)
    def set(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
            version: int | None = None, nx: bool = False, xx: bool = False) -> Plan[bool]:
        """Store ``value``; with ``nx`` only if missing, with ``xx`` only if present."""
        nkey = self._key(key, version)
        nvalue = self._encode_for(nkey, value)
        ms = self._timeout_ms(timeout)
        if ms is not None and ms <= 0:
            # Expired on arrival: nothing is written; an existing value goes.
            if nx:
                return not (yield ("EXISTS", nkey))
            return bool((yield ("DEL", nkey)))
        command: Command = (
            ("SET", nkey, nvalue) if ms is None else ("SET", nkey, nvalue, "PX", ms))
        if nx:
            command += ("NX",)
        elif xx:
            command += ("XX",)
        return (yield command) is not None

    @operation(write=True, fallback=False)
    def add(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
            version: int | None = None) -> Plan[bool]:
        """Store ``value`` only if ``key`` is missing; True if it was stored."""
        return (yield from self.operations.set(self, key, value, timeout, version, nx=True))

    @operation(write=True, fallback=0)
    def delete(self, key: Any, version: int | None = None,
               prefix: str | None = None) -> Plan[int]:
        """Delete ``key``; return how many keys were deleted (0 or 1)."""
        if prefix is not None:
            nkey = self.make_key(key, version, prefix=prefix)
        else:
            nkey = self._key(key, version)
        return (yield ("DEL", nkey))

    @operation(write=False, fallback=lambda _: {})
    def get_many(self, keys: Iterable[Any], version: int | None = None) -> Plan[dict[Any, Any]]:
        """Return a dict of the values of ``keys`` that exist (one MGET)."""
        keys = list(keys)
        if not keys:
            return {}
        nkeys = self._keys.make_many(keys, version)
        replies = yield ("MGET", *nkeys)
        return self.decode_many(keys, nkeys, replies)

    mget = get_many

    @operation(write=True, fallback=lambda bound: list(bound["data"]))
    def set_many(self, data: Mapping[Any, Any], timeout: Timeout = DEFAULT_TIMEOUT,
                 version: int | None = None) -> Plan[list]:
        """Store every item of ``data`` in one round trip; return the keys that failed."""
        if not data:
            return []
        items = [(self._key(key, version), value) for key, value in data.items()]
        encoded = [(nkey, self._encode_for(nkey, value)) for nkey, value in items]
        ms = self._timeout_ms(timeout)
        if ms is not None and ms <= 0:
            yield ("DEL", *[nkey for nkey, _ in encoded])
            return []
        commands: list[Command]
        if ms is None:
            commands = [("SET", nkey, nvalue) for nkey, nvalue in encoded]
        else:
            commands = [("SET", nkey, nvalue, "PX", ms) for nkey, nvalue in encoded]
        replies = yield commands
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return []

    @operation(write=True, fallback=None)
    def mset(self, data: Mapping[Any, Any], version: int | None = None) -> Plan[None]:
        """Store every item of ``data`` atomically (MSET), without expiry."""
        if not data:
            return None
        args: list = []
        for key, value in data.items():
            nkey = self._key(key, version)
            args += (nkey, self._encode_for(nkey, value))
        yield ("MSET", *args)
        return None

    @operation(write=True, fallback=0)
    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> Plan[int]:
        """Delete ``keys`` (one DEL); return how many existed (0 for no keys, as
        django-valkey; Django's own backends return None, also false)."""
        nkeys = [self._key(key, version) for key in keys]
        if not nkeys:
            return 0
        return (yield ("DEL", *nkeys))

    @operation(write=False, fallback=False)
    def has_key(self, key: Any, version: int | None = None) -> Plan[bool]:
        """Whether ``key`` exists."""
        return (yield ("EXISTS", self._key(key, version))) == 1

    @operation(write=True, fallback=False)
    def clear(self) -> Plan[bool]:
        """Delete every key of the database (FLUSHDB); with ``CLEAR_SCOPE`` "prefix",
        only this cache's keys (its prefix, every version), a SCAN page at a time, each
        page UNLINKed (the server frees the memory in the background)."""
        if self._clear_scope != "prefix":
            return bool((yield ("FLUSHDB",)))
        pattern = self._keys.key_func("*", glob_escape(self._keys.prefix), "*")
        cursor = 0
        while True:
            cursor, keys = yield ("SCAN", cursor, "MATCH", pattern, "COUNT", CLEAR_PAGE)
            if keys:
                yield ("UNLINK", *keys)
            cursor = int(cursor)
            if not cursor:
                return True

    @operation(write=True, fallback=False)
    def touch(self, key: Any, timeout: Timeout = DEFAULT_TIMEOUT,
              version: int | None = None) -> Plan[bool]:
        """Give ``key`` a new timeout; True if the key exists."""
        nkey = self._key(key, version)
        ms = self._timeout_ms(timeout)
        if ms is None:
            _, exists = yield [("PERSIST", nkey), ("EXISTS", nkey)]
            return exists == 1
        return bool((yield ("PEXPIRE", nkey, ms)))

    @operation(write=True)
    def incr(self, key: Any, delta: Any = 1, version: int | None = None,
             ignore_key_check: bool = False) -> Plan[Any]:
        """Add ``delta`` atomically, keeping the TTL; ValueError if ``key`` is missing.

        With ``ignore_key_check=True`` a missing key is created holding ``delta``.
        """
        nkey = self._key(key, version)
        script = SCRIPT_INCR_OR_CREATE if ignore_key_check else SCRIPT_INCR
        try:
            value = yield from script.run((nkey,), (delta,))
        except ResponseError as error:
            # Not a 64-bit integer in the server (a float, a pickled value, or the
            # result overflows): read, add and compare-and-set, keeping the TTL.
            if "not an integer" not in str(error) and "overflow" not in str(error):
                raise
            value = yield from self._incr_slow(key, nkey, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found")
        return value

    @operation(write=True)
    def decr(self, key: Any, delta: Any = 1, version: int | None = None) -> Plan[Any]:
        """Subtract ``delta`` atomically; ValueError if ``key`` is missing."""
        return (yield from self.operations.incr(self, key, -delta, version))

    @operation(write=True)
    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> Plan[int]:
        """Move ``key`` to version ``version + delta`` (value and TTL kept, atomically)."""
        if version is None:
            version = self.version
        old = self._key(key, version)
        new = self._key(key, version + delta)
        try:
            yield ("RENAME", old, new)
        except ResponseError as error:
            if "no such key" not in str(error).lower():
                raise
            raise ValueError(f"Key '{key}' not found") from None
        return version + delta

    @operation(write=True)
    def decr_version(self, key: Any, delta: int = 1, version: int | None = None) -> Plan[int]:
        """Move ``key`` to version ``version - delta``."""
        return (yield from self.operations.incr_version(self, key, -delta, version))

    # -- expiry -------------------------------------------------------------------

    @operation(write=False, fallback=0)
    def ttl(self, key: Any, version: int | None = None) -> Plan[int | None]:
        """Seconds ``key`` has left: 0 if missing, None if it never expires."""
        return _ttl_answer((yield ("TTL", self._key(key, version))))

    @operation(write=False, fallback=0)
    def pttl(self, key: Any, version: int | None = None) -> Plan[int | None]:
        """Milliseconds ``key`` has left: 0 if missing, None if it never expires."""
        return _ttl_answer((yield ("PTTL", self._key(key, version))))

    @operation(write=True, fallback=False)
    def persist(self, key: Any, version: int | None = None) -> Plan[bool]:
        """Remove the timeout of ``key``; True if one was removed."""
        return bool((yield ("PERSIST", self._key(key, version))))

    @operation(write=True, fallback=False)
    def expire(self, key: Any, timeout: Duration, version: int | None = None) -> Plan[bool]:
        """Expire ``key`` in ``timeout`` seconds (int or timedelta)."""
        seconds = self.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        return bool((yield ("EXPIRE", self._key(key, version), _seconds(seconds))))

    @operation(write=True, fallback=False)
    def pexpire(self, key: Any, timeout: Duration, version: int | None = None) -> Plan[bool]:
        """Expire ``key`` in ``timeout`` milliseconds (int or timedelta)."""
        ms = self.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        return bool((yield ("PEXPIRE", self._key(key, version), _milliseconds(ms))))

    @operation(write=True, fallback=False)
    def expire_at(self, key: Any, when: When, version: int | None = None) -> Plan[bool]:
        """Expire ``key`` at ``when`` (unix seconds or datetime)."""
        return bool((yield ("EXPIREAT", self._key(key, version), _unix_time(when, 1))))

    @operation(write=True, fallback=False)
    def pexpire_at(self, key: Any, when: When, version: int | None = None) -> Plan[bool]:
        """Expire ``key`` at ``when`` (unix milliseconds or datetime)."""
        return bool((yield ("PEXPIREAT", self._key(key, version), _unix_time(when, 1000))))

    # -- key space ----------------------------------------------------------------

    @operation(write=False, fallback=lambda _: [])
    def keys(self, search: str, version: int | None = None) -> Plan[list[str]]:
        """Return the keys matching the glob ``search`` (KEYS: prefer ``iter_keys``)."""
        reply = yield ("KEYS", self.make_pattern(search, version=version))
        reverse = self.reverse_key
        return [reverse(key.decode()) for key in reply]

    @operation(write=False, fallback=lambda bound: (0, []))
    def _scan_page(self, pattern: str, cursor: int,
                   itersize: int | None) -> Plan[tuple[int, list[bytes]]]:
        command: Command = ("SCAN", cursor, "MATCH", pattern)
        if itersize:
            command += ("COUNT", itersize)
        cursor, keys = yield command
        return int(cursor), keys

    @operation(write=True, fallback=0)
    def _delete_pattern(self, pattern: str, version: int | None, prefix: str | None,
                        itersize: int | None) -> Plan[int]:
        """Delete the keys matching ``pattern`` (SCAN on the primary, an UNLINK per
        page); return the count. The clients' ``delete_pattern``/``adelete_pattern``."""
        pattern = self.make_pattern(pattern, version=version, prefix=prefix)
        scan: Command = ("MATCH", pattern, "COUNT", itersize or self._scan_itersize)
        cursor, deleted = 0, 0
        while True:
            cursor, keys = yield ("SCAN", cursor, *scan)
            if keys:
                deleted += yield ("UNLINK", *keys)
            if not int(cursor):
                return deleted

    # -- hashes (the field is a cache key; the hash name is used as given) --------

    @operation(write=True, fallback=0)
    def hset(self, name: str, key: Any, value: Any, version: int | None = None) -> Plan[int]:
        """Set field ``key`` of hash ``name``; return the number of fields added."""
        nkey = self._key(key, version)
        return (yield ("HSET", name, nkey, self._encode_for(nkey, value)))

    @operation(write=False, fallback=None)
    def hget(self, name: str, key: Any, version: int | None = None) -> Plan[Any]:
        """The value of field ``key`` of hash ``name``; None if it is missing."""
        nkey = self._key(key, version)
        reply = yield ("HGET", name, nkey)
        return None if reply is None else self.decode(reply, nkey)

    @operation(write=True, fallback=0)
    def hdel(self, name: str, key: Any, version: int | None = None) -> Plan[int]:
        """Delete field ``key`` of hash ``name``; return the number deleted."""
        return (yield ("HDEL", name, self._key(key, version)))

    @operation(write=False, fallback=0)
    def hlen(self, name: str) -> Plan[int]:
        """Number of fields in hash ``name``."""
        return (yield ("HLEN", name))

    @operation(write=False, fallback=lambda _: [])
    def hkeys(self, name: str) -> Plan[list[str]]:
        """The fields of hash ``name``, as the caller's keys."""
        reverse = self.reverse_key
        return [reverse(key.decode()) for key in (yield ("HKEYS", name))]

    @operation(write=False, fallback=False)
    def hexists(self, name: str, key: Any, version: int | None = None) -> Plan[bool]:
        """Whether field ``key`` exists in hash ``name``."""
        return bool((yield ("HEXISTS", name, self._key(key, version))))

    # -- sets -----------------------------------------------------------------------

    @operation(write=True, fallback=0)
    def sadd(self, key: Any, *values: Any, version: int | None = None) -> Plan[int]:
        """Add ``values`` to set ``key``; return how many were new."""
        nkey = self._key(key, version)
        return (yield ("SADD", nkey, *[self._encode_for(nkey, v) for v in values]))

    @operation(write=False, fallback=0)
    def scard(self, key: Any, version: int | None = None) -> Plan[int]:
        """Number of members of set ``key``."""
        return (yield ("SCARD", self._key(key, version)))

    @operation(write=False, fallback=lambda _: builtins.set())
    def sdiff(self, *keys: Any, version: int | None = None) -> Plan[builtins.set]:
        """Members of the first set not in the others."""
        return (yield from self._combine("SDIFF", keys, version))

    @operation(write=True, fallback=0)
    def sdiffstore(self, dest: Any, *keys: Any, version_dest: int | None = None,
                   version_keys: int | None = None) -> Plan[int]:
        """Store ``sdiff(*keys)`` in ``dest``; return its size."""
        return (yield from self._combine_store("SDIFFSTORE", dest, keys, version_dest,
                                               version_keys))

    @operation(write=False, fallback=lambda _: builtins.set())
    def sinter(self, *keys: Any, version: int | None = None) -> Plan[builtins.set]:
        """Members in every one of the sets."""
        return (yield from self._combine("SINTER", keys, version))

    @operation(write=True, fallback=0)
    def sinterstore(self, dest: Any, *keys: Any, version: int | None = None) -> Plan[int]:
        """Store ``sinter(*keys)`` in ``dest``; return its size."""
        return (yield from self._combine_store("SINTERSTORE", dest, keys, version, version))

    @operation(write=False, fallback=lambda _: [])
    def smismember(self, key: Any, *members: Any, version: int | None = None) -> Plan[list[bool]]:
        """For each of ``members``, whether it is in set ``key``."""
        nkey = self._key(key, version)
        reply = yield ("SMISMEMBER", nkey, *[self._encode_for(nkey, m) for m in members])
        return [bool(flag) for flag in reply]

    @operation(write=False, fallback=False)
    def sismember(self, key: Any, member: Any, version: int | None = None) -> Plan[bool]:
        """Whether ``member`` is in set ``key``."""
        nkey = self._key(key, version)
        return bool((yield ("SISMEMBER", nkey, self._encode_for(nkey, member))))

    @operation(write=False, fallback=lambda _: builtins.set())
    def smembers(self, key: Any, version: int | None = None) -> Plan[builtins.set]:
        """All members of set ``key``."""
        nkey = self._key(key, version)
        return self._decode_set((yield ("SMEMBERS", nkey)), nkey)

    @operation(write=True, fallback=False)
    def smove(self, source: Any, destination: Any, member: Any,
              version: int | None = None) -> Plan[bool]:
        """Move ``member`` from set ``source`` to set ``destination``."""
        nsource = self._key(source, version)
        ndest = self._key(destination, version)
        return bool((yield ("SMOVE", nsource, ndest, self._encode_for(nsource, member))))

    @operation(write=True, fallback=None)
    def spop(self, key: Any, count: int | None = None, version: int | None = None) -> Plan[Any]:
        """Remove and return a random member (or a set of ``count`` members)."""
        nkey = self._key(key, version)
        reply = yield (("SPOP", nkey) if count is None else ("SPOP", nkey, count))
        if reply is None:
            return None
        if isinstance(reply, list):
            return self._decode_set(reply, nkey)
        return self.decode(reply, nkey)

    @operation(write=False, fallback=None)
    def srandmember(self, key: Any, count: int | None = None,
                    version: int | None = None) -> Plan[Any]:
        """Return a random member (or a list of ``count`` members)."""
        nkey = self._key(key, version)
        reply = yield (("SRANDMEMBER", nkey) if count is None else ("SRANDMEMBER", nkey, count))
        if reply is None:
            return None
        if isinstance(reply, list):
            return [self.decode(value, nkey) for value in reply]
        return self.decode(reply, nkey)

    @operation(write=True, fallback=0)
    def srem(self, key: Any, *members: Any, version: int | None = None) -> Plan[int]:
        """Remove ``members`` from set ``key``; return how many were removed."""
        nkey = self._key(key, version)
        return (yield ("SREM", nkey, *[self._encode_for(nkey, m) for m in members]))

    @operation(write=False, fallback=lambda _: builtins.set())
    def sscan(self, key: Any, match: Any = None, count: int | None = 10,
              version: int | None = None) -> Plan[builtins.set]:
        """One SSCAN page from the start of set ``key``, as a set."""
        nkey, command = self._sscan_command(key, 0, match, count, version)
        _, replies = yield command
        return self._decode_set(replies, nkey)

    @operation(write=False, fallback=lambda bound: (0, []))
    def _sscan_page(self, key: Any, cursor: int, match: Any = None, count: int | None = 10,
                    version: int | None = None) -> Plan[tuple[int, list]]:
        nkey, command = self._sscan_command(key, cursor, match, count, version)
        cursor, replies = yield command
        return int(cursor), [self.decode(reply, nkey) for reply in replies]

    @operation(write=False, fallback=lambda _: builtins.set())
    def sunion(self, *keys: Any, version: int | None = None) -> Plan[builtins.set]:
        """Members of any of the sets."""
        return (yield from self._combine("SUNION", keys, version))

    @operation(write=True, fallback=0)
    def sunionstore(self, destination: Any, *keys: Any, version: int | None = None) -> Plan[int]:
        """Store ``sunion(*keys)`` in ``destination``; return its size."""
        return (yield from self._combine_store("SUNIONSTORE", destination, keys, version,
                                               version))


Operations.operations = Operations
