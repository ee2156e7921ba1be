"""Cluster clients (django-valkey's names)."""

from django_valkey_fast.cluster_cache.client.default import DefaultClusterClient

__all__ = ["DefaultClusterClient"]
