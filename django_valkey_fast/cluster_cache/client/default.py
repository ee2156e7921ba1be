"""``DefaultClusterClient``: the cache operations on a Valkey Cluster, sync and async.

Each command goes to the node serving its key's slot; ``get_many``/``set_many``/
``delete_many`` are split by slot, one pipeline per node; ``keys``, ``iter_keys``,
``delete_pattern`` and ``clear`` visit every primary; MOVED/ASK redirections and a
failed-over node are followed (see ``django_valkey_fast.cluster``).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from valkey.cluster import ValkeyCluster
from valkey.exceptions import ConnectionError, TimeoutError

from django_valkey_fast import async_channel as aio
from django_valkey_fast.channel import channel_of_pool
from django_valkey_fast.client.default import DefaultClient
from django_valkey_fast.client.local_cache import ClusterNodes
from django_valkey_fast.plan_methods import bind_operations
from django_valkey_fast.client.sharded import ShardOperations
from django_valkey_fast.cluster import ABSENT, ClusterRouter, DecodedValues
from django_valkey_fast.config import SERVER_ERRORS
from django_valkey_fast.routed_channel import AsyncClusterChannel, ClusterChannel

if TYPE_CHECKING:
    from valkey.asyncio.lock import Lock as AsyncLock
    from valkey.lock import Lock

__all__ = ["DefaultClusterClient"]


@bind_operations(sync_names=True, operations=ShardOperations)
class DefaultClusterClient(DefaultClient):
    """The cache on a Valkey Cluster; LOCATION is one node's URL (or a list of seeds)."""

    CONNECTION_FACTORY_PATH = "django_valkey_fast.cluster_cache.pool.ClusterConnectionFactory"
    # LOCATION lists seeds; the cluster's redirections find the primaries.
    LOCATION_IS_PRIMARY_AND_REPLICAS = False

    def __init__(self, server: str | Sequence[str], params: dict, backend: Any) -> None:
        super().__init__(server, params, backend)
        seeds = []
        for url in self._server:
            parsed = urlparse(url)
            seeds.append((parsed.hostname or "127.0.0.1", parsed.port or 6379))
        # Shared by every client of this configuration (see client/servers.py): the
        # slot map is learned once per process.
        (self._router, self._seed_pool, self._node_channels, self._aio,
         self._cluster_cache) = self._servers.topology(self._cluster_topology(seeds))
        self._cluster_channel = self._sync_cluster_channel(self._router)
        # (DefaultClient binds the codec's decode_many; this class's reads DecodedValues)
        self.__dict__.pop("decode_many", None)

    def _cluster_topology(self, seeds):
        """What every client of this configuration shares: the slot map, the seed pool,
        the sync node channels, the asyncio cluster channel per event loop, and the
        client-side cache's nodes (None when it is off)."""
        base_kwargs = self._options.get("BASE_CLIENT_KWARGS") or {}
        read_from_replicas = bool(base_kwargs.get("read_from_replicas"))

        def build():
            router = ClusterRouter(seeds, read_from_replicas)
            seed_pool = self.connection_factory.seed_pool(self._server[0])
            nodes = None
            if self._local_cache is not None:
                factory = self.connection_factory
                nodes = ClusterNodes(self._local_cache, router,
                                     lambda node: factory.node_pool(seed_pool, *node))
            return router, seed_pool, {}, aio.PerLoop(self._aio_state), nodes
        return build

    def _sync_cluster_channel(self, router):
        """The sync cluster channel routed by ``router`` (behind the client-side cache
        when it is on)."""
        if self._cluster_cache is not None:
            return self._cluster_cache.sync_channel(ClusterChannel(router, self._sync_node))
        return ClusterChannel(router, self._sync_node, self._codec.decode)

    def _async_cluster_channel(self, router, channel_at):
        """An asyncio cluster channel routed by ``router`` over the node channels
        ``channel_at`` opens (behind the client-side cache when it is on)."""
        if self._cluster_cache is not None:
            return self._cluster_cache.async_channel(AsyncClusterChannel(router, channel_at))
        return AsyncClusterChannel(router, channel_at, self._codec.decode)

    def decode_many(self, keys: list, nkeys: list, replies: list) -> dict:
        """``{key: value}`` for the replies of an MGET that are not None, or for the
        values the cluster channel decoded as each node answered (``DecodedValues``;
        not behind the client-side cache, whose store keeps the raw values)."""
        if type(replies) is DecodedValues:
            return {key: value for key, value in zip(keys, replies) if value is not ABSENT}
        return self._codec.decode_many(keys, nkeys, replies)

    # -- the raw cluster client (django-valkey's get_client) -------------------------

    # The raw client of a cluster is a ValkeyCluster, not the valkey.Valkey of the
    # DefaultClient this client builds on (django-valkey's cluster client does the same).
    def get_client(  # type: ignore[override]
            self, write: bool = True, tried: list[int] | None = None, key: Any = None,
            **kwargs: Any) -> ValkeyCluster:
        """The ``valkey.cluster.ValkeyCluster`` for this cache."""
        return self._client_at(0)

    if TYPE_CHECKING:  # DefaultClient's, which make a ValkeyCluster here (see above)
        def connect(self, index: int = 0) -> ValkeyCluster: ...  # type: ignore[override]
        def get_client_with_index(  # type: ignore[override]
                self, write: bool = True,
                tried: list[int] | None = None) -> tuple[ValkeyCluster, int]: ...

    def keyslot(self, key: Any, version: int | None = None) -> int:
        """The cluster slot of ``key``."""
        return self._router.shard_for(self._key(key, version))

    def mget_nonatomic(self, keys: Iterable[Any], version: int | None = None,
                       client: Any = None) -> dict[Any, Any]:
        """``get_many``: split by slot, not atomic across slots."""
        return self.get_many(keys, version, client=client)

    def mset_nonatomic(self, data: Mapping[Any, Any], version: int | None = None,
                       client: Any = None) -> list:
        """``set_many`` without expiry, split by slot, not atomic across slots; answers
        one True per slot written, as valkey-py's ``mset_nonatomic`` (and so
        django-valkey) does, or ``[]`` when an ignored error stopped it."""
        if self.set_many(data, None, version, client=client):
            return []  # (IGNORE_EXCEPTIONS: the keys that may not have been stored)
        key = self._key
        return [True] * len({self._router.shard_for(key(item, version)) for item in data})

    def msetnx(self, data: Mapping[Any, Any], version: int | None = None,
               client: Any = None) -> bool:
        """MSETNX on the raw cluster client: every key must share a slot (a {hash tag})."""
        # (valkey-py types every reply as ResponseT; MSETNX's is a bool)
        raw: Any = client or self.get_client()
        return raw.msetnx({self._key(k, version): self.encode(v) for k, v in data.items()})

    def flushall(self, asynchronous: bool = False, client: Any = None) -> bool:
        """FLUSHALL (ASYNC with ``asynchronous``) on every primary, whatever
        ``CLEAR_SCOPE`` says, as django-valkey's; ``clear()`` is the scoped one."""
        if client is not None:
            return client.flushall(asynchronous=asynchronous)
        command = ("FLUSHALL", "ASYNC") if asynchronous else ("FLUSHALL",)
        try:
            return bool(self._cluster_channel.call(command))
        except SERVER_ERRORS as error:
            return self._errors.handle(error, lambda: False)

    def invalidate_key_from_cache(self, client: Any = None) -> Any:
        """valkey-py's client-side cache invalidation, on the raw cluster client."""
        # valkey-py's ValkeyCluster.invalidate_key_from_cache takes a key, which this
        # (as django-valkey's) does not pass: kept as django-valkey has it.
        return (client or self.get_client()).invalidate_key_from_cache()  # type: ignore[call-arg]

    def readonly(self, target_nodes: Any = None, client: Any = None) -> Any:
        """READONLY on the raw cluster client."""
        return (client or self.get_client()).readonly(target_nodes)

    def readwrite(self, target_nodes: Any = None, client: Any = None) -> Any:
        """READWRITE on the raw cluster client."""
        return (client or self.get_client()).readwrite(target_nodes)

    def server_connections(self) -> list:
        """``[(address, a sync valkey.Valkey)]`` for every node the cluster lists
        (``CLUSTER NODES`` from a seed), primaries first, failed ones included, for
        administration (``manage.py valkey``)."""
        import valkey

        nodes = None
        for seed in self._router.candidates():  # (the first that answers)
            pool = self.connection_factory.node_pool(self._seed_pool, *seed)
            try:
                nodes = valkey.Valkey(connection_pool=pool).execute_command("CLUSTER NODES")
                break
            except (ConnectionError, TimeoutError):
                continue
        if nodes is None:
            nodes = valkey.Valkey(connection_pool=self._seed_pool).execute_command(
                "CLUSTER NODES")  # (its error is the one to report)
        found = []
        for address, node in nodes.items():
            host, _, port = address.rpartition(":")
            role = "primary" if "master" in node["flags"] else "replica"
            pool = self.connection_factory.node_pool(self._seed_pool, host, int(port))
            found.append((role != "primary", f"{address} ({role})",
                          valkey.Valkey(connection_pool=pool)))
        return [(address, raw) for _, address, raw in sorted(found, key=lambda f: f[:2])]

    # -- django-valkey's target_nodes -------------------------------------------------

    def _on_nodes(self, target_nodes):
        """This client, or a view of it whose KEYS/SCAN visit only ``target_nodes``.

        A node group (``ValkeyCluster.ALL_NODES``, ``PRIMARIES``, ``REPLICAS``,
        ``RANDOM``, ``DEFAULT_NODE``) or None means the whole keyspace: every primary
        (replicas hold copies of their primaries' keys). A ``ClusterNode``, a
        ``(host, port)`` pair or a list of them means those primaries only."""
        if target_nodes is None or (isinstance(target_nodes, str)
                                    and target_nodes in ValkeyCluster.NODE_FLAGS):
            return self
        if hasattr(target_nodes, "host") or (
                isinstance(target_nodes, tuple) and len(target_nodes) == 2
                and isinstance(target_nodes[1], int)):
            target_nodes = [target_nodes]
        router = self._router
        if not router.ready:
            self._cluster_channel.call(("PING",))  # learns the slot map
        firsts = router.first_slots()
        places = []
        for target in target_nodes:
            host, port = (target.host, target.port) if hasattr(target, "host") else target
            address = (host, int(port))
            if address not in firsts:
                raise ValueError(f"target node {host}:{port} serves no slots: name a "
                                 "primary (replicas hold copies of their primary's keys)")
            places.append(firsts[address])
        view_router = copy.copy(router)
        view_router.every_place = lambda: places
        view = copy.copy(self)
        view._cluster_channel = self._sync_cluster_channel(view_router)
        view._aio = aio.PerLoop(lambda loop: self._async_cluster_channel(
            view_router, self._aio.get().channel_at))  # the node channels are shared
        return view

    # django-valkey's order (``target_nodes`` second) and answer (a set): a positional
    # node group must never be read as a version.
    def keys(self, search: str = "*", target_nodes: Any = None,  # type: ignore[override]
             version: int | None = None, client: Any = None) -> set[str]:
        """The keys matching ``search`` on ``target_nodes`` (default: every primary)."""
        return set(DefaultClient.keys(self._on_nodes(target_nodes), search, version,
                                      client=client))

    async def akeys(self, search: str = "*",  # type: ignore[override]
                    target_nodes: Any = None, version: int | None = None,
                    client: Any = None) -> set[str]:
        """The keys matching ``search`` on ``target_nodes`` (default: every primary)."""
        return set(await DefaultClient.akeys(self._on_nodes(target_nodes), search, version,
                                             client=client))

    def iter_keys(self, search: str, itersize: int | None = None, client: Any = None,
                  version: int | None = None, target_nodes: Any = None) -> Iterator[str]:
        """Yield the keys matching ``search`` on ``target_nodes`` (default: every primary)."""
        return DefaultClient.iter_keys(self._on_nodes(target_nodes), search, itersize,
                                       client, version)

    async def aiter_keys(self, search: str, itersize: int | None = None, client: Any = None,
                         version: int | None = None,
                         target_nodes: Any = None) -> AsyncIterator[str]:
        """Async-iterate the keys matching ``search`` on ``target_nodes``."""
        async for key in DefaultClient.aiter_keys(self._on_nodes(target_nodes), search,
                                                  itersize, client, version):
            yield key

    def delete_pattern(self, pattern: str, version: int | None = None,
                       prefix: str | None = None, client: Any = None,
                       itersize: int | None = None, target_nodes: Any = None) -> int:
        """Delete the keys matching ``pattern`` on ``target_nodes`` (default: all)."""
        return DefaultClient.delete_pattern(self._on_nodes(target_nodes), pattern, version,
                                            prefix, client, itersize)

    async def adelete_pattern(self, pattern: str, version: int | None = None,
                              prefix: str | None = None, client: Any = None,
                              itersize: int | None = None, target_nodes: Any = None) -> int:
        """Delete the keys matching ``pattern`` on ``target_nodes`` (default: all)."""
        return await DefaultClient.adelete_pattern(self._on_nodes(target_nodes), pattern,
                                                   version, prefix, client, itersize)

    # -- channels -----------------------------------------------------------------------

    def _sync_node(self, node):
        channel = self._node_channels.get(node)
        if channel is None:
            channel = self._node_channels[node] = channel_of_pool(
                self.connection_factory.node_pool(self._seed_pool, *node,
                                                  readonly=self._router.read_from_replicas))
        return channel

    def _channel(self, write):
        return self._cluster_channel

    def _aio_state(self, loop):
        """Per event loop: the cluster channel, with its channel to each node."""
        seed = aio.connection_params(self._seed_pool)
        readonly = self._router.read_from_replicas
        return self._async_cluster_channel(self._router, lambda node: aio.channel_for(
            dict(seed, host=node[0], port=node[1], cluster=True, readonly=readonly), loop))

    def _achannel(self, write):
        return self._aio.get()

    def _aio_channels(self) -> list:
        state = self._aio.current()
        return state.channels() if state is not None else []

    async def aget_lock(self, key: Any, version: int | None = None,
                        timeout: float | None = None, sleep: float = 0.1,
                        blocking: bool = True, blocking_timeout: float | None = None,
                        client: Any = None, lock_class: Any = None,
                        thread_local: bool = True) -> AsyncLock:
        """A valkey-py asyncio ``Lock`` on the node serving ``key``."""
        if client is None:
            channel = self._achannel(True)
            if not self._router.ready:
                await channel.call(("PING",))
            slot = self._router.shard_for(self._key(key, version))
            client = self._async_client_of(channel.channel_at(self._router.node_of(slot)))
        return self._lock(client, key, version, timeout, sleep, blocking, blocking_timeout,
                          lock_class, thread_local)

    alock = aget_lock

    def get_lock(self, key: Any, version: int | None = None, timeout: float | None = None,
                 sleep: float = 0.1, blocking: bool = True,
                 blocking_timeout: float | None = None, client: Any = None,
                 lock_class: Any = None, thread_local: bool = True) -> Lock:
        """A valkey-py ``Lock`` (on the cluster client, which routes by key)."""
        return self._lock(client or self.get_client(), key, version, timeout, sleep, blocking,
                          blocking_timeout, lock_class, thread_local)

    lock = get_lock

    def close(self) -> None:
        """Close connections if ``CLOSE_CONNECTION`` asks for it: the node channels, and
        the raw cluster client through the connection factory's ``disconnect``."""
        if self._close_requested():
            for channel in self._node_channels.values():
                channel.disconnect()
            client = self._clients[0]
            if client is not None:
                self.connection_factory.disconnect(client)
