"""django-valkey's ``AsyncValkeyCache``: the cache API as coroutines.

``BACKEND: "django_valkey_fast.async_cache.cache.AsyncValkeyCache"``. ``get``,
``set``, ... are coroutines (as in django-valkey) and ``aget``, ``aset``, ... are
the same ones. Code written for one alias serving sync and async should use
``django_valkey_fast.cache.ValkeyCache`` instead, whose ``get`` blocks and whose
``aget`` is native async; this class exists for code written against django-valkey's
async backend.
"""

from __future__ import annotations

from django.core.cache.backends.base import BaseCache

from django_valkey_fast.base import AsyncBackendCommands, BaseValkeyCache

__all__ = ["AsyncValkeyCache", "DecoratedAsyncBackendCommands"]


class DecoratedAsyncBackendCommands(AsyncBackendCommands):
    """django-valkey's name for its async commands wrapped to honour
    ``IGNORE_EXCEPTIONS``; here the clients apply that policy, so this is
    :class:`~django_valkey_fast.base.AsyncBackendCommands`."""


# Django's BaseCache methods, as coroutines under their plain names: django-valkey's
# async backend contract, which no sync signature of BaseCache's can match.
class AsyncValkeyCache(  # type: ignore[misc]
        BaseValkeyCache, DecoratedAsyncBackendCommands, BaseCache):
    """A cache whose every operation is a coroutine (django-valkey's async backend)."""

    DEFAULT_CLIENT_CLASS = "django_valkey_fast.async_cache.client.AsyncDefaultClient"
    is_async = True
