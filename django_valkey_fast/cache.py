"""``ValkeyCache``: the Django cache backend.

``BACKEND: "django_valkey_fast.cache.ValkeyCache"``. Every method maps onto the
client (``OPTIONS["CLIENT_CLASS"]``, default ``client.DefaultClient``), which owns
the servers and runs the operations.
"""

from __future__ import annotations

from django.core.cache.backends.base import BaseCache

from django_valkey_fast.base import (
    EXTENDED_API, EXTENDED_ASYNC_API, NativeAsyncCommands, BackendCommands, BaseValkeyCache,
)

__all__ = ["DecoratedBackendCommands", "EXTENDED_API", "EXTENDED_ASYNC_API", "ValkeyCache"]


class DecoratedBackendCommands(BackendCommands):
    """django-valkey's name for its commands wrapped to honour ``IGNORE_EXCEPTIONS``;
    here the clients apply that policy, so this is :class:`BackendCommands`."""


# Django's BaseCache declares set/clear/delete_many (and their a* twins) to return
# None; these return what django-valkey's do (bool, bool, the count).
class ValkeyCache(  # type: ignore[misc]
        BaseValkeyCache, DecoratedBackendCommands, NativeAsyncCommands, BaseCache):
    """Django cache backend for Valkey and Redis.

    The sync methods block on a pooled connection; the ``a*`` methods run natively on
    asyncio (no thread), on a connection per event loop. One alias serves both.
    """

    DEFAULT_CLIENT_CLASS = "django_valkey_fast.client.DefaultClient"
