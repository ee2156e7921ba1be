"""Async clients (django-valkey's names)."""

from django_valkey_fast.async_cache.client.default import AsyncDefaultClient, AsyncHashClient
from django_valkey_fast.async_cache.client.herd import AsyncHerdClient
from django_valkey_fast.async_cache.client.sentinel import AsyncSentinelClient

__all__ = ["AsyncDefaultClient", "AsyncHashClient", "AsyncHerdClient", "AsyncSentinelClient"]
