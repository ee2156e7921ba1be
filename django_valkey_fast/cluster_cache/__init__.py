"""Valkey Cluster: ``ClusterValkeyCache`` (sync and async on one alias)."""

__all__: list[str] = []
