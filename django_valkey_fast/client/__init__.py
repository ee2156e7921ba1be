"""Clients: which server a command goes to, and how operations run on it."""

from django_valkey_fast.client.default import DefaultClient, HashClient
from django_valkey_fast.client.herd import HerdClient
from django_valkey_fast.client.sentinel import SentinelClient
from django_valkey_fast.client.sharded import ShardClient

__all__ = ["DefaultClient", "HashClient", "HerdClient", "SentinelClient", "ShardClient"]
