"""Hash commands whose hash *name* is a cache key (django-valkey's ``HashClient``).

The default clients keep django-valkey's older hash methods: the hash name is used as
given and only the field is a cache key. The methods here make the name a cache key
too (prefix and version, like every other key), so a hash belongs to the cache that
wrote it. Fields are cache keys and values are stored through the cache's serializer
and compressor, whichever way they are given (``key``/``value``, ``mapping`` or
``items``), and ``hget`` decodes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from valkey.exceptions import DataError

from django_valkey_fast._api import AsyncHashMethods, HashMethods
from django_valkey_fast.operations import Operations, Plan, operation
from django_valkey_fast.plan_methods import bind_operations

__all__ = ["AsyncHashCommands", "HASH_COMMANDS", "HashCommands", "HashOperations"]

HASH_COMMANDS = ("hset", "hget", "hdel", "hlen", "hkeys", "hexists")


class HashOperations(Operations):
    """The plans of the hash commands, the hash name made a cache key."""

    @operation(write=True, fallback=0)
    def hset(self, name: Any, key: Any = None, value: Any = None,
             mapping: Mapping[Any, Any] | None = None,
             items: Iterable[tuple[Any, Any]] | None = None,
             version: int | None = None) -> Plan[int]:
        """Set fields of hash ``name``: ``key`` to ``value``, every item of ``mapping``
        and every ``(field, value)`` pair of ``items``; return how many fields were new."""
        pairs: list = [] if key is None else [(key, value)]
        if mapping:
            pairs += mapping.items()
        if items:
            pairs += items
        if not pairs:
            raise DataError("'hset' with no key value pairs")
        arguments: list = []
        for field, field_value in pairs:
            nfield = self._key(field, version)
            arguments += (nfield, self._encode_for(nfield, field_value))
        return (yield ("HSET", self._key(name, version), *arguments))

    @operation(write=False, fallback=None)
    def hget(self, name: Any, key: Any, version: int | None = None) -> Plan[Any]:
        """The value of field ``key`` of hash ``name``; None if it is missing."""
        nfield = self._key(key, version)
        reply = yield ("HGET", self._key(name, version), nfield)
        return None if reply is None else self.decode(reply, nfield)

    @operation(write=True, fallback=0)
    def hdel(self, name: Any, key: Any, version: int | None = None) -> Plan[int]:
        """Delete field ``key`` of hash ``name``; return how many were deleted."""
        return (yield ("HDEL", self._key(name, version), self._key(key, version)))

    @operation(write=False, fallback=0)
    def hlen(self, name: Any, version: int | None = None) -> Plan[int]:
        """The number of fields of hash ``name``."""
        return (yield ("HLEN", self._key(name, version)))

    @operation(write=False, fallback=lambda _: [])
    def hkeys(self, name: Any, version: int | None = None) -> Plan[list[str]]:
        """The fields of hash ``name``, as the caller's keys."""
        reverse = self.reverse_key
        return [reverse(field.decode()) for field in (yield ("HKEYS", self._key(name, version)))]

    @operation(write=False, fallback=False)
    def hexists(self, name: Any, key: Any, version: int | None = None) -> Plan[bool]:
        """Whether field ``key`` exists in hash ``name``."""
        return bool((yield ("HEXISTS", self._key(name, version), self._key(key, version))))


@bind_operations(sync_names=True, operations=HashOperations, names=HASH_COMMANDS)
class HashCommands(HashMethods):
    """Mixin for a sync client: the hash commands above as blocking methods (and
    their native ``a*`` coroutines). Put it before the client class:
    ``class MyClient(HashCommands, HerdClient)``."""


@bind_operations(sync_names=False, operations=HashOperations, names=HASH_COMMANDS)
class AsyncHashCommands(AsyncHashMethods):
    """Mixin for an async client: the hash commands above as coroutines."""
