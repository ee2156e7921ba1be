"""Valkey Cluster: ``ClusterValkeyCache`` (sync and async on one alias)."""
