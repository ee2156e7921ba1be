"""Helpers: prove every ``a*`` method of a backend runs on the event loop, no thread.

Django 6.1's ``BaseCache`` runs a backend's overridden sync method in a thread
(``sync_to_async``) for ``aget_many``, ``aget_or_set``, ``ahas_key``, ``aincr``,
``aset_many``, ``adelete_many``, ``aincr_version`` and ``aclose`` unless the backend
defines the ``a*`` method itself. These helpers check both: no ``a*`` method of
Django's API is inherited from ``BaseCache``, and none hops to a thread when called.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect

from asgiref.sync import SyncToAsync
from django.core.cache.backends.base import BaseCache

DJANGO_ASYNC_API = sorted(
    name for name in dir(BaseCache)
    if name.startswith("a") and inspect.iscoroutinefunction(getattr(BaseCache, name))
)


def inherited_from_base_cache(backend_class) -> list:
    """The ``a*`` methods of Django's API that ``backend_class`` takes from BaseCache."""
    return [name for name in DJANGO_ASYNC_API
            if getattr(backend_class, name) is getattr(BaseCache, name)]


class ThreadHop(AssertionError):
    """An ``a*`` method ran something in a thread."""


@contextlib.contextmanager
def no_thread_hops():
    """Make ``sync_to_async``, ``run_in_executor`` and ``asyncio.to_thread`` fail loudly."""
    originals = (SyncToAsync.__call__, asyncio.BaseEventLoop.run_in_executor,
                 asyncio.to_thread)

    def refuse(*args, **kwargs):
        raise ThreadHop(f"thread hop: {args[:2]!r}")

    async def refuse_async(*args, **kwargs):
        raise ThreadHop(f"thread hop: {args[:2]!r}")

    SyncToAsync.__call__ = refuse_async
    asyncio.BaseEventLoop.run_in_executor = refuse
    asyncio.to_thread = refuse_async
    try:
        yield
    finally:
        SyncToAsync.__call__, asyncio.BaseEventLoop.run_in_executor, asyncio.to_thread = \
            originals


async def exercise_async_api(cache, prefix: str = "na") -> set:
    """Call every ``a*`` method of Django's cache API and of the extended API on
    ``cache``; return the names called (the caller checks none is missing)."""
    called = set()

    async def call(name, *args, **kwargs):
        called.add(name)
        return await getattr(cache, name)(*args, **kwargs)

    k, s1, s2, h = (f"{{{prefix}}}k", f"{{{prefix}}}s1", f"{{{prefix}}}s2", f"{{{prefix}}}h")
    assert await call("aset", k, 1, 100) is True
    assert await call("aget", k) == 1
    assert await call("aadd", k, 2) is False
    assert await call("atouch", k, 200) is True
    assert await call("aincr", k, 2) == 3
    assert await call("adecr", k) == 2
    assert await call("aset_many", {k: 5, f"{{{prefix}}}m": 6}) == []
    assert await call("aget_many", [k, f"{{{prefix}}}m"]) == {k: 5, f"{{{prefix}}}m": 6}
    assert await call("ahas_key", k) is True
    assert await call("aget_or_set", f"{{{prefix}}}gos", 7) == 7
    assert await call("aincr_version", k) == 2
    assert await call("adecr_version", k, version=2) == 1
    assert await call("attl", k) > 0
    assert await call("apttl", k) > 0
    assert await call("aexpire", k, 100) is True
    assert await call("apexpire", k, 100_000) is True
    import datetime

    later = datetime.datetime.now() + datetime.timedelta(seconds=100)
    assert await call("aexpire_at", k, later) is True
    assert await call("apexpire_at", k, later) is True
    assert await call("apersist", k) is True
    assert k.split("}")[0] in "".join(await call("akeys", f"{{{prefix}}}*"))
    assert [key async for key in (await _maybe_await(cache.aiter_keys(f"{{{prefix}}}k")))] \
        == [k]
    called.add("aiter_keys")
    await call("amset", {f"{{{prefix}}}x": 1, f"{{{prefix}}}y": 2})
    assert await call("amget", [f"{{{prefix}}}x", f"{{{prefix}}}y"]) == {
        f"{{{prefix}}}x": 1, f"{{{prefix}}}y": 2}
    assert await call("ahset", h, "f", 1) == 1
    assert await call("ahexists", h, "f") is True
    assert await call("ahget", h, "f") == 1
    assert await call("ahlen", h) == 1
    assert await call("ahkeys", h) == ["f"]
    assert await call("ahdel", h, "f") == 1
    assert await call("asadd", s1, 1, 2, 3) == 3
    assert await call("asadd", s2, 3, 4) == 2
    assert await call("ascard", s1) == 3
    assert await call("asdiff", s1, s2) == {1, 2}
    assert await call("asinter", s1, s2) == {3}
    assert await call("asunion", s1, s2) == {1, 2, 3, 4}
    assert await call("asdiffstore", f"{{{prefix}}}d", s1, s2) == 2
    assert await call("asinterstore", f"{{{prefix}}}i", s1, s2) == 1
    assert await call("asunionstore", f"{{{prefix}}}u", s1, s2) == 4
    assert await call("asismember", s1, 1) is True
    assert await call("asmismember", s1, 1, 9) == [True, False]
    assert await call("asmembers", s2) == {3, 4}
    assert await call("asmove", s1, s2, 1) is True
    assert await call("asrandmember", s2) in {1, 3, 4}
    assert await call("asrem", s2, 1) == 1
    assert await call("aspop", s2) in {3, 4}
    assert await call("asscan", s1) == {2, 3}
    assert {m async for m in (await _maybe_await(cache.asscan_iter(s1)))} == {2, 3}
    called.add("asscan_iter")
    lock = await call("alock", f"{{{prefix}}}lock", timeout=5)
    async with lock:
        assert await lock.locked()
    lock = await call("aget_lock", f"{{{prefix}}}lock2", timeout=5)
    async with lock:
        pass
    assert await call("adelete", k) is True
    assert await call("adelete_many", [f"{{{prefix}}}x", f"{{{prefix}}}y"]) == 2
    assert await call("adelete_pattern", f"{{{prefix}}}*") >= 1
    await call("aclear")
    await call("aclose")
    return called


async def _maybe_await(value):
    """``value``, awaited if it is awaitable (AsyncValkeyCache's iterators are not)."""
    if inspect.isawaitable(value):
        return await value
    return value
