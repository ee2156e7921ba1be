"""``ClusterConnectionFactory``: django-valkey's cluster factory, and the node pools.

``connect(url)`` returns a ``valkey.cluster.ValkeyCluster`` (what ``get_client()``
returns, for raw cluster commands). The cache's own commands go through one
process-wide pool per cluster node, made from the seed URL's settings.
"""

from __future__ import annotations

import os
import threading


from django_valkey_fast.pool import ConnectionFactory

__all__ = ["ClusterConnectionFactory"]

_node_pools: dict = {}
_node_pools_lock = threading.Lock()


def _new_lock_in_child() -> None:
    # A lock a parent thread held at fork time would never be released in the child.
    global _node_pools_lock
    _node_pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def _connect_readonly(connection) -> None:
    """valkey-py's handshake, then READONLY (a replica then serves its primary's slots)."""
    connection.on_connect()
    connection.send_command("READONLY")
    connection.read_response()  # (an error reply is raised: the connection is closed)


class ClusterConnectionFactory(ConnectionFactory):
    """Builds ``ValkeyCluster`` clients, and the per-node pools the cache runs on."""

    path_pool_cls = "valkey.connection.ConnectionPool"
    path_base_cls = "valkey.cluster.ValkeyCluster"
    _clusters: dict = {}

    # django-valkey's async and cluster factories read PARSER_CLS.
    parser_options = ("PARSER_CLS", "PARSER_CLASS")
    default_parser = "valkey.connection.DefaultParser"

    def get_connection(self, params: dict):
        """A process-wide ``ValkeyCluster`` for the seed URL."""
        key = self._pool_key(params)
        cluster = self._clusters.get(key)
        if cluster is None:
            kwargs = {k: v for k, v in params.items() if k not in ("url", "parser_class")}
            cluster = self._clusters.setdefault(key, self.base_client_cls(
                url=params["url"], parser_class=params["parser_class"],
                **kwargs, **self.base_client_cls_kwargs))
        return cluster

    def disconnect(self, connection) -> None:
        """Close the cluster client's connections."""
        connection.disconnect_connection_pools()

    def seed_pool(self, url: str):
        """A pool for the seed URL: its settings are every node's settings."""
        return self.get_or_create_connection_pool(self.make_connection_params(url))

    def node_pool(self, seed_pool, host: str, port: int, readonly: bool = False):
        """The process-wide pool of node ``host:port`` (whose connections send
        ``READONLY`` once connected, with ``readonly``: reads from replicas)."""
        from valkey.cluster import ClusterParser

        key = (id(seed_pool), host, port, readonly)
        pool = _node_pools.get(key)
        if pool is None:
            with _node_pools_lock:
                pool = _node_pools.get(key)
                if pool is None:
                    kwargs = dict(seed_pool.connection_kwargs, host=host, port=port,
                                  parser_class=ClusterParser)
                    if readonly:
                        kwargs["valkey_connect_func"] = _connect_readonly
                    pool = _node_pools[key] = type(seed_pool)(
                        connection_class=seed_pool.connection_class, **kwargs)
        return pool
