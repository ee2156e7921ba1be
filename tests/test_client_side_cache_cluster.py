"""The client-side cache on a Valkey Cluster: a real 6-node cluster started here, and
the cluster caching plan fed replies directly (sans-IO).

Invariant protected throughout: **never serve a value after the cluster told us it
changed**. Each node has its own store and invalidation listener; a change made by
another process on any node, a slot that moves to another node (resharding: MOVED,
and back again), a primary's failover, and this process's own writes each make the
next read return what the cluster holds now.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from valkey.exceptions import ConnectionError, MovedError, TimeoutError, TryAgainError

from django_valkey_fast._slots import key_slot
from django_valkey_fast.caching import through_cluster_stores
from django_valkey_fast.cluster import ClusterRouter
from django_valkey_fast.exceptions import ConnectionInterrupted
from django_valkey_fast.local_store import MISSING, LocalStore
from django_valkey_fast.operations import Fanout
from tests.servers import Cluster
from tests.test_client_side_cache import elsewhere, seen_within, server_gets
from tests.test_cluster import cluster  # noqa: F401 - a fixture (a cluster per module)

# A heartbeat every 30 s (see the csc fixture of test_client_side_cache: a pending PING
# reply sends a lookup to the server, which would move the GET counts read here).
OPTIONS = {"CLIENT_SIDE_CACHE": {"MAX_STALENESS": 60}}


@pytest.fixture
def csc(cluster):
    """``csc(on=...)``: a ClusterValkeyCache with the client-side cache on (a key
    prefix, so a configuration and stores, of its own); listeners stopped at the end."""
    from django_valkey_fast.cluster_cache.cache import ClusterValkeyCache

    built = []

    def make(on=cluster, options=None):
        params = {"OPTIONS": dict(OPTIONS, **(options or {})),
                  "KEY_PREFIX": f"ccsc{len(built)}-{time.monotonic_ns()}"}
        cache = ClusterValkeyCache(on.url, params)
        built.append(cache)
        return cache

    yield make
    for cache in built:
        client = cache.__dict__.get("client")
        if client is not None:
            client._local_cache.stop()


def gets(cluster) -> int:
    """GET and MGET commands the primaries have run so far."""
    return sum(server_gets(primary) + server_gets(primary, "mget")
               for primary in cluster.primaries)


def owner(cluster, cache, key):
    """The primary serving ``key``'s slot (as the cluster was formed)."""
    return cluster.primary_for_slot(key_slot(cache.make_key(key)))


def kept_everywhere(cache, cluster, keys, timeout: float = 10.0) -> None:
    """Read ``keys`` until every one is answered without the cluster (every node's
    listener is subscribed and proved, and each key was read with tracking on)."""
    deadline = time.monotonic() + timeout
    while True:
        cache.get_many(keys)
        before = gets(cluster)
        cache.get_many(keys)
        if gets(cluster) == before:
            return
        assert time.monotonic() < deadline, cache.client.local_cache_stats()
        time.sleep(0.01)


KEYS = [f"k{i}" for i in range(30)]


def test_hits_are_local_on_every_node_and_another_process_writes_are_seen(csc, cluster):
    cache = csc()
    cache.set_many({key: 1 for key in KEYS})
    kept_everywhere(cache, cluster, KEYS)
    stats = cache.client.local_cache_stats()
    assert len(stats) == 3 and all(each["entries"] > 0 for each in stats.values())
    before = gets(cluster)
    assert cache.get_many(KEYS) == {key: 1 for key in KEYS}
    assert all(cache.get(key) == 1 and cache.has_key(key) for key in KEYS)
    assert gets(cluster) == before  # all local, on every node
    # Another process changes one key on each primary, then deletes another.
    changed = {owner(cluster, cache, key).port: key for key in KEYS}
    assert len(changed) == 3
    for key in changed.values():
        elsewhere(owner(cluster, cache, key), f"SET {cache.make_key(key)} 2")
    for key in changed.values():
        assert seen_within(lambda key=key: cache.get(key), 2) < 2.0
    elsewhere(owner(cluster, cache, "k0"), f"DEL {cache.make_key('k0')}")
    seen_within(lambda: cache.get("k0"), None)
    assert not cache.has_key("k0")


def test_a_flush_of_one_node_forgets_that_nodes_keys_only(csc, cluster):
    cache = csc()
    cache.set_many({key: 1 for key in KEYS})
    kept_everywhere(cache, cluster, KEYS)
    flushed = owner(cluster, cache, "k0")
    elsewhere(flushed, "FLUSHALL")
    gone = [key for key in KEYS if owner(cluster, cache, key) is flushed]
    seen_within(lambda: cache.get_many(KEYS), {key: 1 for key in KEYS if key not in gone})


def test_own_writes_are_read_back_at_once(csc, cluster):
    """Read-your-writes within the process, whatever node each key lives on."""
    cache = csc()
    cache.set_many({key: 1 for key in KEYS})
    kept_everywhere(cache, cluster, KEYS)
    cache.set_many({key: 2 for key in KEYS[:10]})
    assert cache.get_many(KEYS[:12]) == dict({key: 2 for key in KEYS[:10]}, k10=1, k11=1)
    cache.delete_many(KEYS[:5])
    assert cache.get_many(KEYS[:7]) == {"k5": 2, "k6": 2}
    assert cache.incr("k20") == 2 and cache.get("k20") == 2
    assert cache.delete_pattern("k2*") > 0 and cache.get("k21") is None
    kept_everywhere(cache, cluster, KEYS[25:])
    cache.clear()
    assert cache.get_many(KEYS) == {}
    cache.set("k1", 3)
    kept_everywhere(cache, cluster, ["k1"])
    cache.flushall()
    assert cache.get("k1") is None


def test_async_on_the_same_alias_shares_the_stores(csc, cluster):
    cache = csc()
    cache.set_many({key: 1 for key in KEYS})
    kept_everywhere(cache, cluster, KEYS)

    async def scenario():
        before = gets(cluster)
        assert await cache.aget_many(KEYS) == {key: 1 for key in KEYS}
        assert await cache.aget("k3") == 1 and await cache.ahas_key("k3")
        assert gets(cluster) == before  # kept by the sync reads, hit by the async ones
        await cache.aset("k3", 5)
        assert await cache.aget("k3") == 5
        elsewhere(owner(cluster, cache, "k4"), f"SET {cache.make_key('k4')} 6")
        deadline = time.monotonic() + 2
        while await cache.aget("k4") != 6:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.002)

    asyncio.run(scenario())
    assert cache.get("k3") == 5 and cache.get("k4") == 6


def test_a_stale_slot_map_empties_every_store(csc, cluster):
    """A MOVED reply changes the map: everything kept on every node is forgotten
    before the read goes on (a slot that moved away and back must not bring back
    what was kept before it left); the value read is the cluster's."""
    cache = csc()
    cache.set_many({key: 1 for key in KEYS})
    kept_everywhere(cache, cluster, KEYS)
    router = cache.client._router
    slot = key_slot(cache.make_key("k7"))
    right = router.node_of(slot)
    wrong = next(node for node in router.primaries if node != right)
    flushes = {node: each["flushes"] for node, each in cache.client.local_cache_stats().items()}
    router.slots[slot] = wrong
    assert cache.get("k7") == 1
    assert router.node_of(slot) == right
    after = cache.client.local_cache_stats()
    assert all(after[node]["flushes"] > flushes[node] for node in flushes)
    kept_everywhere(cache, cluster, KEYS)  # and kept again afterwards


def migrate(cluster, slot, source, target, how="MIGRATE"):
    """Move ``slot`` (and its keys) from primary ``source`` to ``target``: the way
    ``valkey-cli --cluster reshard`` does (MIGRATE key by key), or by Valkey 9's
    atomic slot migration (``CLUSTER MIGRATESLOTS``)."""
    if how == "MIGRATESLOTS":
        reply = source.command(
            f"CLUSTER MIGRATESLOTS SLOTSRANGE {slot} {slot} NODE {cluster.node_id(target)}")[0]
        if reply.startswith("-ERR unknown subcommand"):
            pytest.skip("this server has no atomic slot migration (Valkey 9 has)")
        assert reply in ("+OK", "OK"), reply
        deadline = time.monotonic() + 20
        while cluster.serving(slot, asked=source) is not target:
            assert time.monotonic() < deadline, "the slot never moved"
            time.sleep(0.05)
        return
    target.command(f"CLUSTER SETSLOT {slot} IMPORTING {cluster.node_id(source)}")
    source.command(f"CLUSTER SETSLOT {slot} MIGRATING {cluster.node_id(target)}")
    while True:
        keys = source.command(f"CLUSTER GETKEYSINSLOT {slot} 100")[0].split()
        if not keys:
            break
        for key in keys:
            reply = source.command(f"MIGRATE 127.0.0.1 {target.port} {key} 0 5000")[0]
            assert reply in ("+OK", "OK"), reply
    for primary in cluster.primaries:
        primary.command(f"CLUSTER SETSLOT {slot} NODE {cluster.node_id(target)}")


@pytest.mark.parametrize("how", ["MIGRATE", "MIGRATESLOTS"])
def test_a_resharded_slot_moving_away_and_back_is_never_served_stale(csc, cluster, how):
    cache = csc()
    cache.set("moving", 1)
    kept_everywhere(cache, cluster, ["moving"])
    slot = key_slot(cache.make_key("moving"))
    source = cluster.serving(slot)
    target = next(primary for primary in cluster.primaries if primary is not source)
    try:
        migrate(cluster, slot, source, target, how)
        elsewhere(target, f"SET {cache.make_key('moving')} 2")
        seen_within(lambda: cache.get("moving"), 2)
        kept_everywhere(cache, cluster, ["moving"])  # kept on the target now
        migrate(cluster, slot, target, source, how)
        elsewhere(source, f"SET {cache.make_key('moving')} 3")
        seen_within(lambda: cache.get("moving"), 3)
        assert cache.get("moving") == 3
    finally:
        for primary in cluster.primaries:
            primary.command(f"CLUSTER SETSLOT {slot} NODE {cluster.node_id(source)}")
    # The slot is home again; whatever was kept meanwhile says what the cluster says.
    elsewhere(source, f"SET {cache.make_key('moving')} 4")
    seen_within(lambda: cache.get("moving"), 4)


def test_a_primary_failover_forgets_what_the_old_primary_said(csc):
    """The primary of a kept key is SIGKILLed; its replica is promoted: its listener's
    loss empties its store, the new slot map empties every store, and a value written
    on the new primary by another process is what reads return."""
    cluster = Cluster()
    try:
        cache = csc(on=cluster, options={"SOCKET_TIMEOUT": 1})
        cache.set_many({key: 1 for key in KEYS})
        kept_everywhere(cache, cluster, KEYS)
        victim = owner(cluster, cache, "k0")
        promoted = cluster.nodes[3 + cluster.primaries.index(victim)]
        # (replication is asynchronous: a write the replica has not applied yet is lost
        # with its primary, and None would then be the cluster's last word on k0)
        victim.replicated_to(promoted)
        victim.kill()

        def read():
            try:
                return cache.get("k0")
            except ConnectionInterrupted:
                return "failing over"

        deadline = time.monotonic() + 60
        while "cluster_state:ok" not in promoted.command("CLUSTER INFO")[0] \
                or "role:master" not in promoted.command("INFO replication")[0]:
            assert time.monotonic() < deadline, "the replica was never promoted"
            assert read() in (1, "failing over")  # never anything but the last value
            time.sleep(0.05)
        elsewhere(promoted, f"SET {cache.make_key('k0')} 2")
        seen_within(read, 2, bound=20)
        assert cache.get_many(KEYS) == dict({key: 1 for key in KEYS}, k0=2)
        # The dead primary serves no slot: its store and listener are gone.
        assert f"127.0.0.1:{victim.port}" not in cache.client.local_cache_stats()
    finally:
        cluster.stop()


# -- the cluster caching plan, fed replies directly --------------------------------------

A, B = ("127.0.0.1", 7000), ("127.0.0.1", 7001)


class Nodes:
    """A cluster's client-side cache as the plan sees it: a live store per node, and
    each node's listener id."""

    class _Server:
        def __init__(self, client_id):
            self.store = LocalStore(100, 1 << 20, 60.0)
            self.store.connected()
            self.store.proved(time.monotonic())
            self.client_id = client_id

        def redirect_id(self):
            return self.client_id

    def __init__(self):
        self.servers = {A: self._Server(41), B: self._Server(42)}

    def server_at(self, node):
        return self.servers[node]

    def store_of(self, node):
        return self.servers[node].store

    def __iter__(self):
        return iter([server.store for server in self.servers.values()])


def split_router(keys_on_a, keys_on_b):
    """A router whose map puts ``keys_on_a``' slots on A and ``keys_on_b``' on B."""
    router = ClusterRouter([A])
    router.apply_slots([[0, 16383, [A[0].encode(), A[1]]]])
    for key in keys_on_b:
        router.slots[key_slot(key)] = B
    return router


def test_each_node_reads_with_tracking_redirected_to_its_own_listener():
    router, nodes = split_router(["a"], ["b"]), Nodes()
    plan = through_cluster_stores(router, nodes, ("MGET", "a", "b"))
    step = next(plan)
    assert type(step) is Fanout
    assert step[A] == [("CLIENT", "TRACKING", "ON", "REDIRECT", 41, "OPTIN"),
                       ("CLIENT", "CACHING", "YES"), ("MGET", "a"), ("PTTL", "a")]
    assert step[B][0] == ("CLIENT", "TRACKING", "ON", "REDIRECT", 42, "OPTIN")
    with pytest.raises(StopIteration) as answer:
        plan.send({A: [b"OK", b"OK", [b"1"], -1], B: [b"OK", b"OK", [b"2"], 500]})
    assert answer.value.value == [b"1", b"2"]
    assert nodes.store_of(A).lookup("a") == b"1" and nodes.store_of(B).lookup("b") == b"2"
    assert nodes.store_of(A).lookup("b") is MISSING  # each key in its node's store


def test_an_invalidation_on_one_node_during_a_read_keeps_that_reply_out():
    router, nodes = split_router(["a"], ["b"]), Nodes()
    plan = through_cluster_stores(router, nodes, ("MGET", "a", "b"))
    next(plan)
    nodes.store_of(B).invalidate(["b"])  # arrives before the reply
    with pytest.raises(StopIteration) as answer:
        plan.send({A: [b"OK", b"OK", [b"1"], -1], B: [b"OK", b"OK", [b"old"], -1]})
    assert answer.value.value == [b"1", b"old"]  # the caller gets what was said
    assert nodes.store_of(A).lookup("a") == b"1"
    assert nodes.store_of(B).lookup("b") is MISSING


def test_a_moved_read_is_read_again_on_its_node_and_not_kept():
    router, nodes = split_router(["a"], ["b"]), Nodes()
    changes = []
    router.on_change = lambda: changes.append(True)
    plan = through_cluster_stores(router, nodes, ("GET", "b"))
    step = next(plan)
    assert list(step) == [B]
    moved = MovedError(f"{key_slot('b')} {A[0]}:{A[1]}")
    again = plan.send({B: [b"OK", b"OK", moved, moved]})
    assert again == Fanout({A: [("GET", "b")]})  # the general plan, on the right node
    with pytest.raises(StopIteration) as answer:
        plan.send({A: [b"2"]})
    assert answer.value.value == b"2"
    assert changes == [True]  # the map changed: the stores were told
    assert nodes.store_of(A).lookup("b") is MISSING  # (read untracked: not kept)


def test_a_failed_node_is_read_again_and_a_timeout_is_raised():
    router, nodes = split_router(["a"], ["b"]), Nodes()
    plan = through_cluster_stores(router, nodes, ("MGET", "a", "b"))
    next(plan)
    again = plan.send({A: [b"OK", b"OK", [b"1"], -1], B: ConnectionError("reset")})
    assert again == Fanout({B: [("MGET", "b")]})  # (reads may be sent again)
    plan.close()
    assert nodes.store_of(B)._reads == {}  # (no read left in flight)
    plan = through_cluster_stores(router, nodes, ("GET", "b"))
    next(plan)
    with pytest.raises(TimeoutError):
        plan.send({B: TimeoutError("slow")})


def test_writes_forget_their_keys_in_every_nodes_store():
    router, nodes = split_router(["a"], ["b"]), Nodes()
    for node, key in ((A, "a"), (B, "b")):
        store = nodes.store_of(node)
        store.finish_read(key, store.begin_read(key), b"1", -1)
        assert store.lookup(key) == b"1"
    plan = through_cluster_stores(router, nodes, [("SET", "a", b"2"), ("DEL", b"b")])
    next(plan)
    assert nodes.store_of(A).lookup("a") is MISSING
    assert nodes.store_of(B).lookup("b") is MISSING


def test_each_key_keeps_its_own_ttl_whatever_its_place_in_the_pipeline():
    """One node, three slots (one with two keys), a refused slot in the middle: each
    kept reply expires with its own key's PTTL; the refused slot is read again and not
    kept."""
    router, nodes = split_router(["{t}1", "{t}2", "x", "y"], []), Nodes()
    keys = ("{t}1", "x", "{t}2", "y")
    plan = through_cluster_stores(router, nodes, ("MGET", *keys))
    (pipeline,) = next(plan).values()
    reads = [command for command in pipeline if command[0] == "MGET"]
    assert len(reads) == 3 and [c[1] for c in pipeline if c[0] == "PTTL"] == [
        "{t}1", "{t}2", "x", "y"]  # (slot by slot, in first-seen order)
    ttls = {"{t}1": 10_000, "{t}2": 20_000, "x": 30_000, "y": 40_000}
    refused = next(i for i, command in enumerate(pipeline) if command == ("MGET", "x"))
    replies = []
    for index, command in enumerate(pipeline):
        if command[0] == "PTTL":
            replies.append(ttls[command[1]])
        elif command[0] == "MGET":
            replies.append(TryAgainError("TRYAGAIN") if index == refused
                           else [key.encode() for key in command[1:]])
        else:
            replies.append(b"OK")
    again = plan.send({A: replies})
    assert again == Fanout({A: [("MGET", "x")]})
    with pytest.raises(StopIteration) as answer:
        plan.send({A: [[b"x"]]})
    assert answer.value.value == [b"{t}1", b"x", b"{t}2", b"y"]
    store = nodes.store_of(A)
    now = time.monotonic()
    for key in ("{t}1", "{t}2", "y"):
        assert abs(store._entries[key][1] - now - ttls[key] / 1000) < 1.0, key
    assert store.lookup("x") is MISSING
