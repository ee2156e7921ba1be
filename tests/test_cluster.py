"""Valkey Cluster: a real 6-node cluster (3 primaries, 3 replicas) started here."""

import asyncio
import time

import pytest
from django_valkey.cluster_cache.cache import ClusterValkeyCache as PeerClusterCache

from django_valkey_fast._slots import key_slot
from django_valkey_fast.cluster_cache.cache import ClusterValkeyCache
from tests.clear_checks import check_prefix_scoped_clear
from tests.servers import Cluster
from tests.writers import ContinuousWriters


@pytest.fixture(scope="module")
def cluster():
    nodes = Cluster()
    yield nodes
    nodes.stop()


@pytest.fixture
def cache(cluster):
    cache = ClusterValkeyCache(cluster.url, {})
    yield cache
    cache.clear()


def holders(cluster, made_key):
    return [n for n in cluster.primaries if n.command(f"EXISTS {made_key}")[0] == ":1"]


def test_keys_spread_over_the_primaries_and_multi_key_operations(cluster, cache):
    data = {f"k{i}": {"i": i} for i in range(60)}
    assert cache.set_many(data, 100) == []
    assert cache.get_many(list(data) + ["missing"]) == data
    assert {holders(cluster, f":1:k{i}")[0].port for i in range(60)} == {
        p.port for p in cluster.primaries}
    assert all(90 < cache.ttl(key) <= 100 for key in ("k1", "k30", "k59"))  # timeout honoured
    assert cache.delete_many([f"k{i}" for i in range(20)]) == 20
    assert sorted(cache.keys("k*")) == sorted(f"k{i}" for i in range(20, 60))
    assert sorted(cache.iter_keys("k*", itersize=5)) == sorted(f"k{i}" for i in range(20, 60))
    assert cache.delete_pattern("k2*") == 10  # no CROSSSLOT: deleted per slot
    assert cache.clear() is True and cache.keys("*") == set()


def test_single_key_operations(cache):
    cache.set("n", 1, 100)
    assert cache.incr("n", 4) == 5 and cache.decr("n") == 4
    assert 98 <= cache.ttl("n") <= 100
    assert cache.add("n", 9) is False and cache.touch("n", None) is True
    assert cache.ttl("n") is None
    assert cache.keyslot("n") == key_slot(":1:n")
    cache.sadd("{team}:a", 1, 2)
    cache.sadd("{team}:b", 2, 3)
    assert cache.sinter("{team}:a", "{team}:b") == {2}  # hash tags share a slot
    with cache.lock("lock", timeout=5):
        assert cache.get_lock("lock", blocking=False).acquire() is False


def test_incr_version_across_slots(cache):
    assert key_slot(":1:moving") != key_slot(":2:moving")
    cache.set("moving", [1, 2], 100)
    assert cache.incr_version("moving") == 2
    assert cache.get("moving") is None and cache.get("moving", version=2) == [1, 2]
    assert 98 <= cache.ttl("moving", version=2) <= 100


def test_compatible_with_django_valkeys_cluster_backend(cluster, cache):
    peer = PeerClusterCache(cluster.url, {})
    for i in range(10):
        peer.set(f"peer{i}", {"p": i})
        cache.set(f"ours{i}", {"o": i})
        assert cache.get(f"peer{i}") == {"p": i}
        assert peer.get(f"ours{i}") == {"o": i}


def test_async_on_the_same_alias(cache):
    async def scenario():
        data = {f"a{i}": i for i in range(30)}
        await cache.aset_many(data, 100)
        assert await cache.aget_many(list(data)) == data
        assert await asyncio.gather(*[cache.aincr("a1") for _ in range(20)]) == list(
            range(2, 22))
        assert sorted([key async for key in cache.aiter_keys("a*")]) == sorted(data)
        lock = await cache.alock("async-lock", timeout=5)
        async with lock:
            pass
        assert await cache.adelete_pattern("a*") == 30

    asyncio.run(scenario())


def test_moved_redirection_is_followed(cluster, cache):
    cache.set("redirected", "v")
    router = cache.client._router
    slot = key_slot(":1:redirected")
    right = router.node_of(slot)
    wrong = next(node for node in router.primaries if node != right)
    router.slots[slot] = wrong  # a stale map: the server answers MOVED
    assert cache.get("redirected") == "v"
    assert router.node_of(slot) == right

    async def again():
        router.slots[slot] = wrong
        return await cache.aget("redirected")

    assert asyncio.run(again()) == "v"


def test_get_many_follows_a_redirection_for_one_of_its_slots(cluster, cache):
    """A stale slot map for one key of a get_many (MOVED), then a key in a migrating
    slot (ASK): every value comes back, sync and async; the map is corrected."""
    data = {f"many{i}": i for i in range(30)}
    cache.set_many(data)
    router = cache.client._router
    slot = key_slot(cache.make_key("many7"))
    right = router.node_of(slot)
    wrong = next(node for node in router.primaries if node != right)
    router.slots[slot] = wrong
    assert cache.get_many(list(data)) == data
    assert router.node_of(slot) == right

    async def again():
        router.slots[slot] = wrong
        return await cache.aget_many(list(data))

    assert asyncio.run(again()) == data
    key = "many11"
    slot = key_slot(cache.make_key(key))
    source = cluster.primary_for_slot(slot)
    target = next(p for p in cluster.primaries if p is not source)
    cache.delete(key)
    target.command(f"CLUSTER SETSLOT {slot} IMPORTING {cluster.node_id(source)}")
    source.command(f"CLUSTER SETSLOT {slot} MIGRATING {cluster.node_id(target)}")
    try:
        assert cache.set(key, "moved along") is True  # (lands on the target, via ASK)
        assert cache.get_many(list(data)) == dict(data, **{key: "moved along"})
    finally:
        for primary in (source, target):
            primary.command(f"CLUSTER SETSLOT {slot} NODE {cluster.node_id(target)}")


def test_get_many_decodes_as_django_valkey_does_and_reports_a_corrupt_value(cluster):
    """get_many on the cluster decodes each node's values as that node answers: a
    stored None comes back as None, a missing key is left out, ints and compressed
    values read as on one server; a corrupt value is a DecodeError naming its key,
    sync and async, after which the connections serve the next call; with
    IGNORE_EXCEPTIONS the call answers {}."""
    from django_valkey_fast.exceptions import DecodeError

    zlib = {"COMPRESSOR": "django_valkey_fast.compressors.zlib.ZlibCompressor",
            "COMPRESS_MIN_LENGTH": 10}
    cache = ClusterValkeyCache(cluster.url, {"OPTIONS": zlib})
    data = {f"d{i}": ("x" * 50 if i % 3 == 0 else None if i % 3 == 1 else i)
            for i in range(30)}
    cache.set_many(data)
    keys = list(data) + ["missing"]
    assert cache.get_many(keys) == data
    assert asyncio.run(cache.aget_many(keys)) == data
    broken = cache.make_key("d5")
    cluster.primary_for_slot(key_slot(broken)).command(f"SET {broken} garbage-not-zlib")
    with pytest.raises(DecodeError, match=f"'{broken}'"):
        cache.get_many(keys)
    with pytest.raises(DecodeError, match=f"'{broken}'"):
        asyncio.run(cache.aget_many(keys))
    assert cache.get_many([k for k in keys if k != "d5"]) == {
        k: v for k, v in data.items() if k != "d5"}
    ignoring = ClusterValkeyCache(cluster.url, {"OPTIONS": dict(zlib, IGNORE_EXCEPTIONS=True)})
    assert ignoring.get_many(keys) == {}
    cache.clear()


def test_ask_redirection_during_a_slot_migration(cluster, cache):
    key = "migrating"
    slot = key_slot(f":1:{key}")
    source = cluster.primary_for_slot(slot)
    target = next(p for p in cluster.primaries if p is not source)
    target.command(f"CLUSTER SETSLOT {slot} IMPORTING {cluster.node_id(source)}")
    source.command(f"CLUSTER SETSLOT {slot} MIGRATING {cluster.node_id(target)}")
    try:
        # The key is not on the source: it answers ASK, and the command is re-sent to
        # the target after ASKING.
        assert cache.set(key, "moved along") is True
        assert target.command("ASKING", f"GET :1:{key}")[1] != ""
        assert source.command(f"EXISTS :1:{key}")[0].startswith("-ASK")  # not there
        assert cache.get(key) == "moved along"

        async def async_side():
            await cache.aset(key, "async")
            return await cache.aget(key)

        assert asyncio.run(async_side()) == "async"
    finally:
        for primary in (source, target):
            primary.command(f"CLUSTER SETSLOT {slot} NODE {cluster.node_id(target)}")
        cache.delete(key)


def test_primary_failure_under_continuous_writes(capsys):
    """RECOVERY + no acknowledged write lost after the failover: sync and async
    writers write without pause to keys of one primary's slots while that primary is
    SIGKILLed. Both resume once its replica is promoted; every write acknowledged
    after that is readable; the ones lost by the failover are counted and reported."""
    cluster = Cluster()
    try:
        cache = ClusterValkeyCache(cluster.url, {"OPTIONS": {"SOCKET_TIMEOUT": 1}})
        victim = cluster.primaries[1]
        tag = next(f"t{i}" for i in range(1000)
                   if cluster.primary_for_slot(key_slot(f"{{t{i}}}")) is victim)
        writers = ContinuousWriters(cache, key_format="{{" + tag + "}}-{}-{}").start()
        killed, resumed = writers.through(victim.kill, timeout=60)
        assert resumed is not None, "writes never resumed on both sides"
        assert writers.longest_call < 20  # BOUNDED: each call gives up or succeeds
        lost = writers.lost(cache.get_many, before=killed)
        assert writers.lost(cache.get_many) == lost  # none lost after the failover
        with capsys.disabled():
            print(f"\n[cluster failover] sync+async writes resumed {resumed:.1f}s after a "
                  f"primary died; {writers.count()} acknowledged, {lost} acknowledged before "
                  f"the kill lost, {sum(writers.failed.values())} raised")
    finally:
        cluster.stop()


def test_async_lock_as_the_first_call(cluster):
    fresh = ClusterValkeyCache(cluster.url, {})

    async def lock_first():
        lock = await fresh.alock("first-thing", timeout=5)
        async with lock:
            return await lock.owned()

    assert asyncio.run(lock_first()) is True


def test_clear_scope_prefix_on_the_cluster(cluster):
    """CLEAR_SCOPE "prefix" on a Cluster: the keys of this cache go from every
    primary (sync and async), another prefix's stay."""
    other = ClusterValkeyCache(cluster.url, {"KEY_PREFIX": "q"})
    check_prefix_scoped_clear(
        ClusterValkeyCache(cluster.url, {"KEY_PREFIX": "p", "OPTIONS": {"CLEAR_SCOPE": "prefix"}}),
        other)
    other.clear()


def test_target_nodes_as_django_valkey_takes_them(cluster, cache):
    """django-valkey's cluster ``keys``/``iter_keys``/``delete_pattern`` take
    ``target_nodes``: a node group means the whole keyspace here (every primary), a
    node or a list of nodes means those primaries only; a replica is refused clearly."""
    from valkey.cluster import ClusterNode, ValkeyCluster

    data = {f"t{i}": i for i in range(30)}
    cache.set_many(data)
    everything = sorted(data)
    for group in (ValkeyCluster.ALL_NODES, ValkeyCluster.PRIMARIES, ValkeyCluster.RANDOM,
                  ValkeyCluster.DEFAULT_NODE, None):
        assert sorted(cache.keys("t*", target_nodes=group)) == everything
        assert sorted(cache.iter_keys("t*", target_nodes=group)) == everything
    first = cluster.primaries[0]
    on_first = sorted(key for key in data if holders(cluster, f":1:{key}")[0].port == first.port)
    assert 0 < len(on_first) < len(data)
    node = ClusterNode("127.0.0.1", first.port)
    assert sorted(cache.keys("t*", target_nodes=node)) == on_first
    assert sorted(cache.keys("t*", target_nodes=[node])) == on_first
    # django-valkey's positional order and answer: target_nodes second, a set back (a
    # node group given positionally is never taken for a version).
    assert cache.keys("t*", node) == set(on_first)
    assert cache.keys("t*", ValkeyCluster.ALL_NODES) == set(everything)
    assert cache.keys("t*", None, 1) == set(everything) and cache.keys("t*", None, 2) == set()
    assert sorted(cache.iter_keys("t*", itersize=3, target_nodes=node)) == on_first

    async def async_listing():
        return (sorted(await cache.akeys("t*", target_nodes=node)),
                sorted([key async for key in cache.aiter_keys("t*", target_nodes=node)]),
                sorted(await cache.akeys("t*", target_nodes=ValkeyCluster.ALL_NODES)))

    assert asyncio.run(async_listing()) == (on_first, on_first, everything)
    with pytest.raises(ValueError, match="serves no slots"):
        replica = next(n for n in cluster.nodes if n not in cluster.primaries)
        cache.keys("t*", target_nodes=ClusterNode("127.0.0.1", replica.port))
    assert cache.delete_pattern("t*", target_nodes=node) == len(on_first)
    assert sorted(cache.keys("t*")) == sorted(set(everything) - set(on_first))
    assert asyncio.run(cache.adelete_pattern("t*", target_nodes=ValkeyCluster.PRIMARIES)) \
        == len(data) - len(on_first)


def test_close_connection_disconnects_through_the_connection_factory(cluster):
    from django_valkey_fast.cluster_cache.pool import ClusterConnectionFactory

    disconnected = []

    class Recording(ClusterConnectionFactory):
        def disconnect(self, connection):
            disconnected.append(connection)
            super().disconnect(connection)

    import tests.test_cluster as here
    here.RecordingClusterFactory = Recording
    cache = ClusterValkeyCache(cluster.url, {"OPTIONS": {
        "CLOSE_CONNECTION": True,
        "CONNECTION_FACTORY": "tests.test_cluster.RecordingClusterFactory"}})
    cache.set("k", 1)
    raw = cache.client.get_client()
    cache.close()
    assert disconnected == [raw]
    assert cache.get("k") == 1
    asyncio.run(cache.aset("k", 2))
    asyncio.run(cache.aclose())
    assert cache.get("k") == 2


def test_every_async_method_runs_on_the_loop(cache):
    """No ``a*`` method hops to a thread on the Cluster backend (ready for Django 6.1)."""
    from django_valkey_fast.cache import EXTENDED_ASYNC_API
    from tests.native_async import DJANGO_ASYNC_API, exercise_async_api, no_thread_hops

    async def run():
        with no_thread_hops():
            return await exercise_async_api(cache, prefix="c")

    assert set(DJANGO_ASYNC_API) | set(EXTENDED_ASYNC_API) <= asyncio.run(run())


def test_sync_multi_node_steps_write_every_node_before_reading_any(cluster, cache, monkeypatch):
    """Invariant: a sync operation spanning several nodes costs one round trip: every
    node's pipeline is written before any node's replies are read (the nodes work in
    parallel), and each node's replies still reach the keys they belong to."""
    from django_valkey_fast.channel import Channel

    data = {f"spread{i}": i for i in range(30)}
    cache.set_many(data, 100)
    events = []
    send, receive = Channel.send_pipeline, Channel.receive_pipeline

    def recording_send(self, commands):
        events.append(("write", self.pool.connection_kwargs["port"]))
        return send(self, commands)

    def recording_receive(self, sent):
        events.append(("read", self.pool.connection_kwargs["port"]))
        return receive(self, sent)

    monkeypatch.setattr(Channel, "send_pipeline", recording_send)
    monkeypatch.setattr(Channel, "receive_pipeline", recording_receive)
    channel = cache.client._cluster_channel
    decode = channel.decode

    def recording_decode(value, key):
        events.append(("decode", key))
        return decode(value, key)

    monkeypatch.setattr(channel, "decode", recording_decode)
    assert cache.get_many(list(data)) == data
    kinds = [kind for kind, _ in events if kind != "decode"]
    assert len({port for kind, port in events if kind != "decode"}) == 3  # three primaries
    assert kinds == ["write"] * 3 + ["read"] * 3
    # Each node's values are decoded as soon as its replies are read, before the next
    # node's are: the decoding overlaps the other nodes' work.
    reads = [index for index, (kind, _) in enumerate(events) if kind == "read"]
    decoded = [index for index, (kind, _) in enumerate(events) if kind == "decode"]
    assert len(decoded) == 30
    assert any(reads[0] < d < reads[1] for d in decoded)
    assert any(reads[1] < d < reads[2] for d in decoded) and decoded[-1] > reads[2]
    events.clear()
    assert cache.delete_many(list(data)) == 30
    assert [kind for kind, _ in events] == ["write"] * 3 + ["read"] * 3


def test_cluster_extras_answer_as_django_valkeys(cluster, cache):
    """``mset_nonatomic`` answers one True per slot written and ``flushall`` empties
    every primary whatever CLEAR_SCOPE says (ASYNC when asked), as django-valkey's
    cluster backend does, side by side on one cluster."""
    peer = PeerClusterCache(cluster.url, {})
    data = {f"n{i}": i for i in range(12)}
    ours = cache.mset_nonatomic(data)
    theirs = peer.mset_nonatomic({f"p{i}": i for i in range(12)})
    slots = {key_slot(f":1:{key}") for key in data}
    assert ours == [True] * len(slots) and len(slots) > 1
    assert theirs == [True] * len({key_slot(f":1:p{i}") for i in range(12)})
    assert cache.get_many(list(data)) == data and peer.get_many(list(data)) == data
    assert cache.ttl("n1") is None  # (no expiry, as MSET)
    scoped = ClusterValkeyCache(cluster.url, {"KEY_PREFIX": "s",
                                              "OPTIONS": {"CLEAR_SCOPE": "prefix"}})
    scoped.set("mine", 1)
    assert scoped.flushall(asynchronous=True) is True
    for node in cluster.primaries:
        assert node.command("DBSIZE")[0] == ":0"
    assert cache.get_many(list(data)) == {}
    cache.set("back", 1)
    assert cache.flushall() is True and cache.get("back") is None


def _calls(nodes, command: str) -> int:
    """How many times ``command`` ran on ``nodes`` (commands answered with MOVED or
    ASK did not run: they are not counted)."""
    total = 0
    for node in nodes:
        for line in node.command("INFO commandstats")[0].splitlines():
            if line.startswith(f"cmdstat_{command}:"):
                total += int(line.split("calls=")[1].split(",")[0])
    return total


@pytest.mark.parametrize("side", ["sync", "async"])
def test_ask_inside_a_multi_node_pipeline_runs_each_command_once(cluster, cache, side):
    """A set_many over every node while one of its slots migrates: the command of
    that slot's key is sent to the target with ASKING (the source no longer has the
    key), the others run where they are, and every SET runs exactly once."""
    data = {f"piped{i}": i for i in range(30)}
    key = "piped7"
    slot = key_slot(cache.make_key(key))
    source = cluster.serving(slot)
    target = next(p for p in cluster.primaries if p is not source)
    cache.delete_many(list(data))
    target.command(f"CLUSTER SETSLOT {slot} IMPORTING {cluster.node_id(source)}")
    source.command(f"CLUSTER SETSLOT {slot} MIGRATING {cluster.node_id(target)}")
    try:
        sets, askings = _calls(cluster.primaries, "set"), _calls([target], "asking")
        if side == "sync":
            assert cache.set_many(data, timeout=100) == []
        else:
            assert asyncio.run(cache.aset_many(data, timeout=100)) == []
        assert _calls(cluster.primaries, "set") - sets == len(data)  # each SET once
        assert _calls([target], "asking") - askings >= 1
        assert target.command("ASKING", f"GET {cache.make_key(key)}")[1] != ""
    finally:
        for primary in cluster.primaries:
            primary.command(f"CLUSTER SETSLOT {slot} NODE {cluster.node_id(target)}")
    assert cache.get_many(list(data)) == data


REPLICA_READS = {"OPTIONS": {"BASE_CLIENT_KWARGS": {"read_from_replicas": True}}}


def _replicas_listed(cluster) -> None:
    """Wait until the seed's CLUSTER SLOTS names a replica for every range (a new
    cluster's gossip may not have told it yet; the slot map is learned from it)."""
    import valkey

    seed = valkey.Valkey(port=cluster.nodes[0].port)
    deadline = time.monotonic() + 15
    while not all(len(entry) >= 4 for entry in seed.execute_command("CLUSTER SLOTS")):
        assert time.monotonic() < deadline, "the replicas were never listed"
        time.sleep(0.05)
    seed.close()


def _reads_back_async(cache, data, times: int) -> None:
    """``times`` rounds of aget_many and of aget per key, each answering ``data``."""

    async def rounds():
        for _ in range(times):
            assert await cache.aget_many(list(data)) == data
            for key, value in data.items():
                assert await cache.aget(key) == value

    asyncio.run(rounds())


def _on_replicas(cluster, cache, data) -> None:
    """Wait until every replica has ``data`` (replication is asynchronous)."""
    deadline = time.monotonic() + 10
    for key in data:
        made = cache.make_key(key)
        for replica in cluster.nodes[3:]:
            while True:
                reply = replica.command("READONLY", f"EXISTS {made}")[1]
                if reply in (":1", "-MOVED") or reply.startswith("-MOVED"):
                    break
                assert time.monotonic() < deadline, f"{made} never reached {replica.port}"
                time.sleep(0.02)


def test_reads_from_replicas_with_valkey_pys_option(cluster):
    """BASE_CLIENT_KWARGS={"read_from_replicas": True}, as django-valkey passes it to
    valkey-py: reads go to each slot's primary and replicas in turn (replicas under
    READONLY), sync and async; the values are the ones written."""
    _replicas_listed(cluster)
    cache = ClusterValkeyCache(cluster.url, dict(REPLICA_READS, KEY_PREFIX="replica-reads"))
    data = {f"r{i}": {"i": i} for i in range(30)}
    cache.set_many(data, timeout=100)
    _on_replicas(cluster, cache, data)
    replicas = cluster.nodes[3:]
    before = _calls(replicas, "get") + _calls(replicas, "mget")
    for _ in range(3):
        assert cache.get_many(list(data)) == data
        assert all(cache.get(key) == value for key, value in data.items())
    sync_reads = _calls(replicas, "get") + _calls(replicas, "mget") - before
    assert sync_reads >= 30  # (about half of the reads: primary, replica, primary...)

    _reads_back_async(cache, data, times=3)
    assert _calls(replicas, "get") + _calls(replicas, "mget") - before - sync_reads >= 30
    plain = ClusterValkeyCache(cluster.url, {"KEY_PREFIX": "replica-reads"})
    before = _calls(replicas, "get") + _calls(replicas, "mget")
    assert plain.get_many(list(data)) == data and plain.get("r1") == {"i": 1}
    assert _calls(replicas, "get") + _calls(replicas, "mget") == before  # (off by default)


def test_a_dead_replica_costs_reads_nothing():
    """A replica SIGKILLed under reads from replicas: its slots are read from their
    primary, no read error reaches the caller, sync and async."""
    cluster = Cluster()
    try:
        _replicas_listed(cluster)
        cache = ClusterValkeyCache(cluster.url, dict(
            REPLICA_READS, OPTIONS=dict(REPLICA_READS["OPTIONS"], SOCKET_TIMEOUT=1)))
        data = {f"d{i}": i * 10 for i in range(40)}
        cache.set_many(data, timeout=100)
        _on_replicas(cluster, cache, data)
        assert cache.get_many(list(data)) == data
        dead = ("127.0.0.1", cluster.nodes[3].port)
        router = cache.client._router
        assert any(dead in table for table in router.read_tables)
        cluster.nodes[3].kill()
        for _ in range(5):
            assert cache.get_many(list(data)) == data
            assert all(cache.get(key) == value for key, value in data.items())
        # Its slots are read from their primary now, with no pause to wait out per read.
        assert not any(dead in table for table in router.read_tables)

        _reads_back_async(cache, data, times=5)
    finally:
        cluster.stop()
