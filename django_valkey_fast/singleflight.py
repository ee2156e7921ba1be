"""Per event loop, per key asyncio locks for single-flight recomputation."""

from __future__ import annotations

import asyncio
import weakref

__all__ = ["async_lock_for"]

_locks: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


def async_lock_for(key) -> asyncio.Lock:
    """The asyncio lock for ``key`` on the running loop (dropped when unused)."""
    loop_key = (id(asyncio.get_running_loop()), key)
    lock = _locks.get(loop_key)
    if lock is None:
        lock = _locks[loop_key] = asyncio.Lock()
    return lock
