"""``ShardClient``: keys spread over several servers by django-valkey's hash ring.

LOCATION is the list of servers. Every key lives on one of them (a ``{hash tag}``
chooses which); multi-key operations are split per server (one round trip to each)
and merged; ``keys``, ``iter_keys``, ``delete_pattern`` and ``clear`` visit every
server. Operations whose keys must share a server (``incr_version`` across shards
excepted, which moves the value) raise ``CrossShardError`` otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_valkey_fast import async_channel as aio
from django_valkey_fast.client.default import DefaultClient
from django_valkey_fast.plan_methods import bind_operations
from django_valkey_fast.routed_channel import AsyncShardChannel, ShardChannel
from django_valkey_fast.operations import Operations, Plan, operation
from django_valkey_fast.sharding import ShardRouter

if TYPE_CHECKING:
    from collections.abc import Sequence

    import valkey
    from valkey.asyncio.lock import Lock as AsyncLock
    from valkey.lock import Lock

__all__ = ["ShardClient", "ShardOperations"]


class ShardOperations(Operations):
    """The operations, with ``incr_version`` moving a value between shards when needed."""

    _router: Any  # the client's: a ShardRouter or a ClusterRouter

    @operation(write=True)
    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> Plan[int]:
        """Move ``key`` to version ``version + delta`` (value and TTL kept)."""
        if version is None:
            version = self.version
        old, new = self._key(key, version), self._key(key, version + delta)
        if self._router.shard_for(old) == self._router.shard_for(new):
            return (yield from Operations.incr_version(self, key, delta, version))
        value, pttl = yield [("GET", old), ("PTTL", old)]
        if value is None:
            raise ValueError(f"Key '{key}' not found")
        yield ("SET", new, value, "PX", pttl) if pttl > 0 else ("SET", new, value)
        yield ("DEL", old)
        return version + delta


ShardOperations.operations = ShardOperations


@bind_operations(sync_names=True, operations=ShardOperations)
class ShardClient(DefaultClient):
    """Spreads keys over the LOCATION servers (client-side sharding)."""

    # Every LOCATION is the primary of its own keys: none may take another's place.
    LOCATION_IS_PRIMARY_AND_REPLICAS = False

    def __init__(self, server: str | Sequence[str], params: dict, backend: Any) -> None:
        super().__init__(server, params, backend)
        # Shared by every client of this configuration (see client/servers.py).
        self._router, self._aio = self._servers.topology(
            lambda: (ShardRouter(self._server), aio.PerLoop(self._aio_state)))
        # Each shard's channel as the default client makes it for each of its servers
        # (behind its own store and listener when CLIENT_SIDE_CACHE is on).
        self._shard_channel = ShardChannel(self._router, self._server_channel)

    def get_server_name(self, key: Any) -> str:
        """The LOCATION entry of the server holding ``key`` (a made key)."""
        return self._router.node_for(key)

    def get_client(self, write: bool = True, tried: list[int] | None = None, key: Any = None,
                   **kwargs: Any) -> valkey.Valkey:
        """The valkey-py client of the server holding ``key`` (the first without one)."""
        return self._client_at(0 if key is None else self._router.shard_for(key))

    def get_lock(self, key: Any, version: int | None = None, timeout: float | None = None,
                 sleep: float = 0.1, blocking: bool = True,
                 blocking_timeout: float | None = None, client: Any = None,
                 lock_class: Any = None, thread_local: bool = True) -> Lock:
        """A valkey-py ``Lock`` on the server holding ``key``."""
        client = client or self.get_client(key=self._key(key, version))
        return self._lock(client, key, version, timeout, sleep, blocking, blocking_timeout,
                          lock_class, thread_local)

    lock = get_lock

    async def aget_lock(self, key: Any, version: int | None = None,
                        timeout: float | None = None, sleep: float = 0.1,
                        blocking: bool = True, blocking_timeout: float | None = None,
                        client: Any = None, lock_class: Any = None,
                        thread_local: bool = True) -> AsyncLock:
        """A valkey-py asyncio ``Lock`` on the server holding ``key``."""
        if client is None:
            shard = self._router.shard_for(self._key(key, version))
            client = self._async_client_of(self._achannel(True).channel_at(shard))
        return self._lock(client, key, version, timeout, sleep, blocking, blocking_timeout,
                          lock_class, thread_local)

    alock = aget_lock

    def _channel(self, write):
        return self._shard_channel

    def _aio_state(self, loop):
        """Per event loop: the sharded channel, with its channel to each server."""
        def open_channel(index):
            channel = aio.channel_for(self._connection_params(index), loop)
            if self._local_cache is not None:
                return self._async_caching_channel(index, channel)
            return channel

        return AsyncShardChannel(self._router, open_channel)

    def _achannel(self, write):
        return self._aio.get()

    def _aio_channels(self) -> list:
        state = self._aio.current()
        return state.channels() if state is not None else []
