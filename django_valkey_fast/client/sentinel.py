"""``SentinelClient``: the primary and the replicas found through Sentinel.

LOCATION is ``valkey://SERVICE_NAME/DB`` (add ``?...`` options as needed). The client
makes two pools of it: one whose connections Sentinel points at the current primary
(writes) and one whose connections go to the replicas (reads), via
``pool.SentinelConnectionFactory`` and OPTIONS ``SENTINELS`` / ``SENTINEL_KWARGS``.
After a failover the next command reconnects to the new primary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from django.core.exceptions import ImproperlyConfigured

from django_valkey_fast.client.default import DefaultClient

if TYPE_CHECKING:
    from collections.abc import Sequence

    import valkey

__all__ = ["SentinelClient", "check_sentinel_pool", "primary_and_replica_urls", "replace_query"]


def replace_query(url, query) -> str:
    """``url`` (a ``urlparse`` result) with its query replaced by the dict ``query``."""
    return urlunparse((*url[:4], urlencode(query, doseq=True), url[5]))


def primary_and_replica_urls(server):
    """``valkey://service/db`` -> the same URL with ``is_master=1`` and with ``is_master=0``."""
    if not isinstance(server, str):
        return server
    url = urlparse(server)
    urls = []
    for is_master in ("1", "0"):
        query = parse_qs(url.query, keep_blank_values=True)  # a fresh dict for each URL
        query["is_master"] = [is_master]
        urls.append(replace_query(url, query))
    return urls


def check_sentinel_pool(pool, pool_class_path):
    """Refuse a configuration whose pools are not Sentinel-managed."""
    if "Sentinel" not in type(pool).__name__:
        raise ImproperlyConfigured(
            "SentinelClient needs Sentinel-managed pools: set CONNECTION_FACTORY to "
            f"{pool_class_path} (or leave it unset)."
        )


class SentinelClient(DefaultClient):
    """Writes to the primary Sentinel names, reads from its replicas."""

    CONNECTION_FACTORY_PATH = "django_valkey_fast.pool.SentinelConnectionFactory"

    def __init__(self, server: str | Sequence[str], params: dict, backend: Any) -> None:
        options = params.get("OPTIONS", {})
        options.setdefault("CONNECTION_FACTORY", self.CONNECTION_FACTORY_PATH)
        super().__init__(primary_and_replica_urls(server), params, backend)

    def connect(self, index: int = 0) -> valkey.Valkey:
        """Return a valkey-py client whose pool asks Sentinel where to connect."""
        client = super().connect(index)
        check_sentinel_pool(client.connection_pool, self.CONNECTION_FACTORY_PATH)
        return client
