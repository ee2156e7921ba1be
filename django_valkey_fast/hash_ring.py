"""django-valkey's ``hash_ring`` module: the consistent-hash ring ``ShardClient`` uses."""

from django_valkey_fast.sharding import HashRing

__all__ = ["HashRing"]
