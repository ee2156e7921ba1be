"""Async clients (django-valkey's names)."""

from django_valkey_fast.async_cache.client.default import AsyncDefaultClient

__all__ = ["AsyncDefaultClient"]
