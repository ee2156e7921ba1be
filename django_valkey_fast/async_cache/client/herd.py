"""``AsyncHerdClient``: django-valkey's async herd client."""

from __future__ import annotations

from django_valkey_fast.async_cache.client.default import AsyncDefaultClient
from django_valkey_fast.plan_methods import bind_operations
from django_valkey_fast.client.herd import HerdClient
from django_valkey_fast.herd import HerdHost, HerdOperations, early_recompute_for

__all__ = ["AsyncHerdClient"]


@bind_operations(sync_names=False, operations=HerdOperations)
class AsyncHerdClient(HerdHost, AsyncDefaultClient):
    """Async; herd-packed values and a single-flight ``get_or_set``."""

    get_or_set = aget_or_set = HerdClient.aget_or_set

    def __init__(self, server, params: dict, backend) -> None:
        super().__init__(server, params, backend)
        self._early = early_recompute_for(self._options)
