"""``HerdClient``: herd-protected values and single-flight ``get_or_set``."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from django_valkey_fast.client.default import BaseClient, DefaultClient
from django_valkey_fast.plan_methods import bind_operations
from django_valkey_fast.herd import HerdHost, HerdOperations

if TYPE_CHECKING:
    from django_valkey_fast.operations import Timeout

__all__ = ["HerdClient", "SingleFlight"]

_MISSING = object()


class SingleFlight:
    """Process-wide: one computation per key at a time, the other callers wait for it."""

    _locks: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
    _guard = threading.Lock()

    @classmethod
    def lock_for(cls, key: str) -> threading.Lock:
        with cls._guard:
            lock = cls._locks.get(key)
            if lock is None:
                lock = cls._locks[key] = threading.Lock()
            return lock


@bind_operations(sync_names=True, operations=HerdOperations)
class HerdClient(HerdHost, DefaultClient):
    """DefaultClient with herd packing; ``get_or_set`` recomputes once per process."""

    def get_or_set(self, key: Any, default: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                   version: int | None = None) -> Any:
        """Return ``key``'s value; if missing or stale, compute it once for all callers."""
        value = self.get(key, _MISSING, version)
        if value is not _MISSING:
            return value
        with SingleFlight.lock_for(self._key(key, version)):
            value = self.get(key, _MISSING, version)  # a caller before us may have refreshed it
            if value is _MISSING:
                value = default() if callable(default) else default
                self.set(key, value, timeout, version)
        return value

    # ``self: BaseClient``: AsyncHerdClient (not a HerdClient) uses this method too.
    async def aget_or_set(self: BaseClient, key: Any, default: Any,
                          timeout: Timeout = DEFAULT_TIMEOUT,
                          version: int | None = None) -> Any:
        """Async ``get_or_set``: one computation per key and event loop at a time."""
        from django_valkey_fast.singleflight import async_lock_for

        value = await self.aget(key, _MISSING, version)
        if value is not _MISSING:
            return value
        async with async_lock_for(self._key(key, version)):
            value = await self.aget(key, _MISSING, version)
            if value is _MISSING:
                value = default() if callable(default) else default
                await self.aset(key, value, timeout, version)
        return value
