"""``HerdClient``: herd-protected values and single-flight ``get_or_set``."""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from django_valkey_fast.client.default import DefaultClient
from django_valkey_fast.plan_methods import bind_operations
from django_valkey_fast.herd import HerdHost, HerdOperations, early_recompute_for

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
    """DefaultClient with herd packing; ``get_or_set`` recomputes once per process,
    and, with ``OPTIONS["EARLY_RECOMPUTE_BETA"]``, before the value is due (XFetch)."""

    def __init__(self, server: Any, params: dict, backend: Any) -> None:
        super().__init__(server, params, backend)
        self._early = early_recompute_for(self._options)

    if TYPE_CHECKING:  # (bound from HerdOperations._get_refresh_at by bind_operations)
        def _get_refresh_at(self, key: Any, default: Any = None,
                            version: int | None = None) -> tuple: ...

    def get_or_set(self, key: Any, default: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                   version: int | None = None) -> Any:
        """Return ``key``'s value; if missing or stale, compute it once for all callers
        (and, with early recomputation, one caller may refresh it before it is due while
        the others are served the current value)."""
        nkey = self._key(key, version)
        early = self._early
        if early is None:
            value = self.get(key, _MISSING, version)
        else:
            value, refresh_at = self._get_refresh_at(key, _MISSING, version)
            if value is not _MISSING and early.due(nkey, refresh_at, time.time()):
                lock = SingleFlight.lock_for(nkey)
                if lock.acquire(blocking=False):  # (else another caller refreshes it)
                    try:
                        return self._compute(key, nkey, default, timeout, version)
                    finally:
                        lock.release()
        if value is not _MISSING:
            return value
        with SingleFlight.lock_for(nkey):
            value = self.get(key, _MISSING, version)  # a caller before us may have refreshed it
            if value is _MISSING:
                value = self._compute(key, nkey, default, timeout, version)
        return value

    def _compute(self, key, nkey, default, timeout, version):
        value = _computed(self, nkey, default)
        self.set(key, value, timeout, version)
        return value

    # ``self: Any``: AsyncHerdClient (not a HerdClient) uses this method too.
    async def aget_or_set(self: Any, key: Any, default: Any,
                          timeout: Timeout = DEFAULT_TIMEOUT,
                          version: int | None = None) -> Any:
        """Async ``get_or_set``: one computation per key and event loop at a time."""
        from django_valkey_fast.singleflight import async_lock_for

        nkey = self._key(key, version)
        early = self._early
        if early is None:
            value = await self.aget(key, _MISSING, version)
        else:
            value, refresh_at = await self._aget_refresh_at(key, _MISSING, version)
            if value is not _MISSING and early.due(nkey, refresh_at, time.time()):
                lock = async_lock_for(nkey)
                if not lock.locked():  # (else another task refreshes it)
                    async with lock:
                        value = _computed(self, nkey, default)
                        await self.aset(key, value, timeout, version)
                        return value
        if value is not _MISSING:
            return value
        async with async_lock_for(nkey):
            value = await self.aget(key, _MISSING, version)
            if value is _MISSING:
                value = _computed(self, nkey, default)
                await self.aset(key, value, timeout, version)
        return value


def _computed(client, nkey: str, default: Any) -> Any:
    """``default()`` (or ``default``), its duration noted for early recomputation."""
    if not callable(default):
        return default
    started = time.perf_counter()
    value = default()
    if client._early is not None:
        client._early.computed(nkey, time.perf_counter() - started)
    return value
