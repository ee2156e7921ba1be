"""The client-side cache (OPTIONS["CLIENT_SIDE_CACHE"]) against real servers.

Invariant protected throughout: **never serve a value after the server told us it
changed**, and never serve one without recent proof that we would have been told.
Changes come from another process (writes, deletes, TTLs, FLUSHDB, eviction), the
listener's connection is killed, the server restarts or stops answering; each test
checks the local store flushes or drops what it must, and that hits really are local
(the server's GET count does not move).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_valkey_fast.caching import through_stores
from django_valkey_fast.client.local_cache import TrackingUnsupported
from django_valkey_fast.exceptions import ConnectionInterrupted
from django_valkey_fast.local_store import MISSING, LocalStore
from tests.servers import Server
from tests.test_sentinel import doomed_topology  # noqa: F401 - a fixture (own topology)

BOUND = 2.0  # seconds within which a change made elsewhere must be seen (CI headroom)


@pytest.fixture
def csc(server):
    """``csc(**CLIENT_SIDE_CACHE settings)``: a ValkeyCache with the client-side cache
    on, on ``server`` unless LOCATION is given; listeners stopped at the end."""
    from django_valkey_fast.cache import ValkeyCache

    built = []

    def make(location=None, backend=ValkeyCache, options=None, **settings):
        # A heartbeat every 30 s, not 0.5 s: a lookup made while a PING reply waits
        # unread on the listener's socket goes to the server, which would move the
        # GET counts the tests read. Tests of the heartbeat set their own.
        settings.setdefault("MAX_STALENESS", 60)
        options = dict(options or {}, CLIENT_SIDE_CACHE=settings)
        # A prefix of its own: a configuration (and its store) per test.
        params = {"OPTIONS": options, "KEY_PREFIX": f"csc{len(built)}-{time.monotonic_ns()}"}
        cache = backend(location or server.url, params)
        built.append(cache)
        return cache

    yield make
    for cache in built:
        client = cache.__dict__.get("client")  # (never build one just to stop it)
        if client is not None and client._local_cache is not None:
            client._local_cache.stop()


def live(cache, timeout: float = 5.0, url=None):
    """Wait until the cache serves hits (its listener subscribed and proved): every
    server's store, or the one of ``url``."""
    cache.get("warm-up")  # (starts the listener)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = cache.client.local_cache_stats()
        if all(stats["live"] for each, stats in found.items() if url in (None, each)):
            return cache
        time.sleep(0.01)
    raise AssertionError(f"the invalidation listener never went live: "
                         f"{cache.client.local_cache_stats()}")


def stats(cache) -> dict:
    (only,) = cache.client.local_cache_stats().values()
    return only


def server_gets(server, command: str = "get") -> int:
    """How many ``command`` (GET by default) the server has run so far."""
    for line in server.command("INFO commandstats")[0].splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def elsewhere(server, *commands: str) -> None:
    """Run ``commands`` (inline, space-separated) from another process."""
    script = ("import socket, sys\n"
              "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
              "for line in sys.argv[2:]:\n"
              "    s.sendall(line.encode() + b'\\r\\n')\n"
              "    assert s.recv(65536)\n")
    subprocess.run([sys.executable, "-c", script, str(server.port), *commands],
                   check=True, timeout=30)


def seen_within(read, expected, bound: float = BOUND) -> float:
    """Seconds until ``read()`` returns ``expected`` (fails after ``bound``)."""
    started = time.monotonic()
    while True:
        if read() == expected:
            return time.monotonic() - started
        if time.monotonic() - started > bound:
            raise AssertionError(f"still {read()!r} after {bound}s, expected {expected!r}")
        time.sleep(0.002)


def server_key(cache, key) -> str:
    return cache.make_key(key)


def kept(cache, server, key) -> None:
    """Read ``key`` until the store keeps it: then a read costs the server nothing."""
    deadline = time.monotonic() + 5
    while True:
        cache.get(key)
        before = server_gets(server)
        cache.get(key)
        if server_gets(server) == before:
            return
        assert time.monotonic() < deadline, f"{key!r} is never kept"


# -- hits are local ---------------------------------------------------------------------


def test_hits_are_answered_in_process_and_decoded_per_call(csc, server):
    cache = live(csc())
    cache.set("k", {"rows": [1, 2]})
    assert cache.get("k") == {"rows": [1, 2]}  # a miss: read, tracked, kept
    before = server_gets(server)
    first, second = cache.get("k"), cache.get("k")
    assert first == second == {"rows": [1, 2]} and first is not second  # no shared object
    assert cache.has_key("k")
    assert server_gets(server) == before, "a hit reached the server"
    assert stats(cache)["hits"] >= 3
    first["rows"].append(3)  # a caller's mutation stays its own
    assert cache.get("k") == {"rows": [1, 2]}


def test_missing_keys_are_kept_as_missing_until_created_elsewhere(csc, server):
    cache = live(csc())
    assert cache.get("nothing") is None and cache.get("nothing", "dflt") == "dflt"
    before = server_gets(server)
    assert cache.get("nothing") is None and not cache.has_key("nothing")
    assert server_gets(server) == before
    elsewhere(server, f"SET {server_key(cache, 'nothing')} 5")
    seen_within(lambda: cache.get("nothing"), 5)


def test_get_many_mixes_hits_and_reads(csc, server):
    cache = live(csc())
    cache.set_many({"a": 1, "b": 2})
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    before = server_gets(server)
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert server_gets(server) == before  # (an MGET would not count as GET either:)
    assert stats(cache)["hits"] >= 3
    elsewhere(server, f"SET {server_key(cache, 'c')} 3")
    seen_within(lambda: cache.get_many(["a", "b", "c"]), {"a": 1, "b": 2, "c": 3})


# -- changes made elsewhere -------------------------------------------------------------


@pytest.mark.parametrize("change, expected", [
    ("SET {key} 2", 2), ("DEL {key}", None), ("FLUSHDB", None),
    ("APPEND {key} 0", 10), ("RENAME {other} {key}", 7),
])
def test_a_change_made_by_another_process_is_seen_within_the_bound(csc, server, change,
                                                                   expected):
    cache = live(csc())
    cache.set("k", 1)
    cache.set("other", 7)
    kept(cache, server, "k")
    elsewhere(server, change.format(key=server_key(cache, "k"),
                                    other=server_key(cache, "other")))
    took = seen_within(lambda: cache.get("k"), expected)
    assert took < BOUND


def test_a_ttl_set_elsewhere_expires_the_kept_value(csc, server):
    cache = live(csc())
    cache.set("k", "v", timeout=None)
    assert cache.get("k") == "v" and cache.get("k") == "v"
    elsewhere(server, f"PEXPIRE {server_key(cache, 'k')} 1000")
    assert cache.get("k") == "v"  # re-read with its new TTL...
    time.sleep(1.05)
    assert cache.get("k") is None  # ...and gone when the TTL is: no wait for a message


def test_a_value_kept_with_its_ttl_expires_locally(csc):
    cache = live(csc())
    cache.set("k", "v", timeout=1)
    assert cache.get("k") == "v" and cache.get("k") == "v"
    time.sleep(1.05)
    assert cache.get("k") is None


def test_eviction_under_maxmemory_is_an_invalidation(csc):
    # volatile-lru: "k" (the only key with a TTL) is the one the server evicts.
    own = Server("--maxmemory", "4mb", "--maxmemory-policy", "volatile-lru")
    try:
        cache = live(csc(location=own.url))
        cache.set("k", "v", timeout=300)
        assert cache.get("k") == "v" and cache.get("k") == "v"
        filler = "x" * 20_000
        for i in range(400):  # 8 MB into 4
            own.command(f"SET fill{i} {filler}")
            if own.command(f"EXISTS {server_key(cache, 'k')}")[0].endswith("0"):
                break
        else:
            raise AssertionError("the server never evicted the key")
        seen_within(lambda: cache.get("k"), None)
    finally:
        own.stop()


# -- this process's writes --------------------------------------------------------------


@pytest.mark.parametrize("scope", ["database", "prefix"])
def test_own_writes_are_read_back_at_once(csc, server, scope):
    cache = live(csc(options={"CLEAR_SCOPE": scope}))
    cache.set("k", 1)
    assert cache.get("k") == 1 and cache.get("k") == 1
    for write, expected in [
        (lambda: cache.set("k", 2), 2),
        (lambda: cache.incr("k"), 3),
        (lambda: cache.set_many({"k": 4}), 4),
        (lambda: cache.delete("k"), None),
        (lambda: cache.add("k", 5), 5),
        (lambda: cache.touch("k", 0), None),
        (lambda: cache.set("k", 6), 6),
        (lambda: cache.delete_many(["k"]), None),
        (lambda: cache.set("k", 7), 7),
        (lambda: cache.delete_pattern("k*"), None),  # (UNLINK of the keys SCAN found)
        (lambda: cache.set("k", 8), 8),
        (lambda: cache.incr_version("k"), None),  # (RENAME to the next version)
        (lambda: cache.set("k", 9), 9),
        (lambda: cache.clear(), None),
    ]:
        kept(cache, server, "k")  # (kept again before each write: a local hit to beat)
        write()
        assert cache.get("k") == expected  # no sleep: read-your-writes


# -- the read in flight race (sans-IO, deterministic) -----------------------------------


def _live_store() -> LocalStore:
    store = LocalStore(100, 1 << 20, 60.0)
    store.connected()
    store.proved(time.monotonic())
    return store


@pytest.mark.parametrize("invalidated_first", [True, False])
def test_an_invalidation_during_a_read_keeps_the_stale_reply_out(invalidated_first):
    """The classic race: GET's reply and the invalidation of its key arrive on two
    connections in either order. Invalidated first: the reply is not kept. Reply
    first: kept, then dropped. Never served afterwards."""
    store = _live_store()
    plan = through_stores(store, [store], lambda: 42, ("GET", "k"))
    pipeline = next(plan)
    assert pipeline[:2] == [("CLIENT", "TRACKING", "ON", "REDIRECT", 42, "OPTIN"),
                            ("CLIENT", "CACHING", "YES")]
    assert pipeline[2:] == [("GET", "k"), ("PTTL", "k")]
    if invalidated_first:
        store.invalidate(["k"])
    with pytest.raises(StopIteration) as answer:
        plan.send([b"OK", b"OK", b"old", -1])
    assert answer.value.value == b"old"  # (the caller gets what the server said)
    if not invalidated_first:
        store.invalidate(["k"])
    assert store.lookup("k") is MISSING


def test_a_flush_or_a_reconnect_during_a_read_keeps_it_out():
    for happen in (LocalStore.flush, LocalStore.disconnected):
        store = _live_store()
        plan = through_stores(store, [store], lambda: 42, ("MGET", "a", "b"))
        next(plan)
        happen(store)
        store.connected()
        store.proved(time.monotonic())
        with pytest.raises(StopIteration):
            plan.send([b"OK", b"OK", [b"1", b"2"], -1, -1])
        assert store.lookup("a") is MISSING and store.lookup("b") is MISSING


def test_a_write_during_a_read_keeps_the_read_out():
    store = _live_store()
    read = through_stores(store, [store], lambda: 42, ("GET", "k"))
    next(read)
    write = through_stores(store, [store], lambda: 42, ("SET", "k", b"new"))
    assert next(write) == ("SET", "k", b"new")
    with pytest.raises(StopIteration):
        read.send([b"OK", b"OK", b"old", -1])
    with pytest.raises(StopIteration):
        write.send(b"OK")
    assert store.lookup("k") is MISSING


# -- faults -----------------------------------------------------------------------------


def test_killing_the_listener_connection_flushes_and_stops_hits(csc, server):
    cache = live(csc())
    cache.set("k", 1)
    assert cache.get("k") == 1 and cache.get("k") == 1
    listener = cache.client._local_cache._servers[server.url].listener
    flushes = stats(cache)["flushes"]
    server.command(f"CLIENT KILL ID {listener.client_id}")
    deadline = time.monotonic() + 5
    while stats(cache)["flushes"] == flushes:  # (the loss flushes)
        assert time.monotonic() < deadline, "the listener's loss was never noticed"
        time.sleep(0.005)
    deadline = time.monotonic() + 5
    while stats(cache)["listener_error"] is None:  # (reported for operators)
        assert time.monotonic() < deadline, "the listener's loss was never reported"
        time.sleep(0.005)
    # A write elsewhere while the listener was down is seen (nothing stale was kept).
    elsewhere(server, f"SET {server_key(cache, 'k')} 2")
    assert cache.get("k") == 2
    live(cache)
    assert cache.get("k") == 2 and cache.get("k") == 2
    elsewhere(server, f"SET {server_key(cache, 'k')} 3")
    seen_within(lambda: cache.get("k"), 3)  # the new listener is the one told


def test_a_server_restart_flushes_what_was_kept(csc):
    own = Server()
    try:
        cache = live(csc(location=own.url))
        cache.set("k", 1)
        assert cache.get("k") == 1 and cache.get("k") == 1
        own.restart()  # comes back empty
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if cache.get("k") is None:
                    break
            except ConnectionInterrupted:
                pass
            time.sleep(0.01)
        assert cache.get("k") is None
    finally:
        own.stop()


def test_no_hits_without_recent_proof_from_the_listener(csc):
    """MAX_STALENESS: a stopped server cannot prove the listener current, so after
    MAX_STALENESS the kept value is no longer served (the read goes to the server and
    times out) instead of being served stale forever."""
    own = Server()
    try:
        cache = live(csc(location=own.url, options={"SOCKET_TIMEOUT": 0.3},
                         MAX_STALENESS=0.3))
        cache.set("k", 1)
        kept(cache, own, "k")
        own.pause()
        try:
            time.sleep(0.5)
            with pytest.raises(ConnectionInterrupted):
                cache.get("k")
        finally:
            own.resume()
        live(cache)
        assert cache.get("k") == 1
    finally:
        own.stop()


# -- bounds and bad input -----------------------------------------------------------


def test_entries_and_bytes_are_bounded(csc, server):
    cache = live(csc(MAX_ENTRIES=3, MAX_BYTES=2000))
    for i in range(6):
        cache.set(f"k{i}", i)
        assert cache.get(f"k{i}") == i
    assert stats(cache)["entries"] == 3
    big = "x" * 5000
    cache.set("big", big)
    before = server_gets(server)
    assert cache.get("big") == big and cache.get("big") == big  # served, never kept
    assert server_gets(server) == before + 2
    assert stats(cache)["bytes"] <= 2000


@pytest.mark.parametrize("setting", [
    {"MAX_ENTRIES": 0}, {"MAX_BYTES": "1MB"}, {"MAX_STALENESS": 0},
    {"MAX_STALENESS": True}, {"SIZE": 10},
])
def test_bad_settings_are_refused_with_a_clear_error(csc, setting):
    with pytest.raises(ImproperlyConfigured, match="CLIENT_SIDE_CACHE"):
        csc(**setting).get("k")


def test_a_server_refusing_tracking_is_a_clear_error(csc, auth_server):
    auth_server.command("ACL SETUSER nocsc on >nocscpass ~* &* +@all -client|tracking")
    cache = csc(location=f"valkey://nocsc:nocscpass@127.0.0.1:{auth_server.port}/0")
    deadline = time.monotonic() + 5
    while True:
        try:
            cache.get("k")
        except TrackingUnsupported as refused:
            assert "CLIENT TRACKING" in str(refused)
            break
        assert time.monotonic() < deadline, "the refusal was never reported"
        time.sleep(0.01)


# -- async, other clients, concurrency --------------------------------------------------


async def test_native_async_reads_and_writes_share_the_store(csc, server):
    cache = csc()
    await cache.aget("warm-up")
    await asyncio.to_thread(live, cache)
    await cache.aset("k", 1)
    assert await cache.aget("k") == 1
    before = server_gets(server)
    assert await cache.aget("k") == 1 and cache.get("k") == 1
    assert server_gets(server) == before
    await cache.aset("k", 2)
    assert await cache.aget("k") == 2  # read-your-writes, async too
    await asyncio.to_thread(elsewhere, server, f"SET {server_key(cache, 'k')} 3")
    deadline = time.monotonic() + BOUND
    while await cache.aget("k") != 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.002)


async def test_async_valkey_cache_and_herd_client(csc, server):
    from django_valkey_fast.async_cache.cache import AsyncValkeyCache

    cache = csc(backend=AsyncValkeyCache)
    await cache.get("warm-up")
    await cache.set("k", [1])
    assert await cache.get("k") == [1]
    deadline = time.monotonic() + 5
    while not all(s["live"] for s in cache.client.local_cache_stats().values()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert await cache.get("k") == [1]
    before = server_gets(server)
    assert await cache.get("k") == [1]
    assert server_gets(server) == before
    herd = live(csc(options={"CLIENT_CLASS": "django_valkey_fast.client.HerdClient"}))
    assert herd.get_or_set("h", lambda: "computed", 60) == "computed"
    assert herd.get("h") == "computed" and herd.get("h") == "computed"
    herd.set("h", "again")
    assert herd.get("h") == "again"


def test_readers_never_go_back_in_time_while_another_process_writes(csc, server):
    """Threads and two event loops read a counter that another process raises; each
    reader sees it never decrease, and all see the last value within the bound. With
    the default heartbeat (PING every 0.5 s): hits that find a reply waiting on the
    listener's socket read from the server, a path this stresses too."""
    cache = live(csc(MAX_STALENESS=1))
    cache.set("n", 0, timeout=None)
    key = server_key(cache, "n")
    seen: dict = {}
    stop = threading.Event()
    failures: list = []

    def reader(name):
        last = -1
        while True:
            done = stop.is_set()  # (the last read starts after the main thread saw 300)
            value = cache.get("n")
            if value < last:
                failures.append((name, last, value))
            last = value
            if done:
                break
        seen[name] = last

    async def async_reader(name):
        last = -1
        while True:
            done = stop.is_set()
            value = await cache.aget("n")
            if value < last:
                failures.append((name, last, value))
            last = value
            if done:
                break
            await asyncio.sleep(0)
        seen[name] = last

    threads = [threading.Thread(target=reader, args=(f"t{i}",)) for i in range(4)]
    # Two event loops (one per thread), sharing the store with the sync readers.
    threads += [threading.Thread(target=lambda name=name: asyncio.run(async_reader(name)))
                for name in ("loop1", "loop2")]
    for thread in threads:
        thread.start()
    elsewhere(server, *[f"SET {key} {n}" for n in range(1, 301)])
    final = time.monotonic()
    while time.monotonic() - final < BOUND and cache.get("n") != 300:
        time.sleep(0.005)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert not failures, failures[:5]
    assert all(last == 300 for last in seen.values()), seen
    assert stats(cache)["hits"] > 0


def test_eviction_gives_entries_hit_since_the_last_pass_a_second_chance():
    """The bound evicts by the CLOCK rule: the oldest entry goes unless it was hit
    since the last pass (then it moves to the back), so a hot entry survives a stream
    of cold ones; bytes are bounded the same way."""
    store = _live_store()
    store.max_entries = 3
    for key in ("hot", "a", "b"):
        token = store.begin_read(key)
        store.finish_read(key, token, b"v", -1)
    for key in ("c", "d", "e", "f"):
        assert store.lookup("hot") == b"v"
        token = store.begin_read(key)
        store.finish_read(key, token, b"v", -1)
        assert len(store) == 3
    assert store.lookup("hot") == b"v"
    assert store.lookup("a") is MISSING and store.lookup("b") is MISSING
    store.max_bytes = store.stats()["bytes"]  # full: one more entry evicts
    token = store.begin_read("g")
    store.finish_read("g", token, b"v", -1)
    assert store.lookup("g") == b"v" and store.stats()["bytes"] <= store.max_bytes
    token = store.begin_read("big")  # larger than the whole store: never kept
    store.finish_read("big", token, b"x" * store.max_bytes, -1)
    assert store.lookup("big") is MISSING and store.stats()["bytes"] <= store.max_bytes


def test_eviction_is_bounded_when_every_entry_was_hit():
    """Every entry hit since the last pass: one insert gives each a second chance at
    most once, then evicts the oldest (not the entry it is making room for)."""
    store = _live_store()
    store.max_entries = 1000
    for i in range(1000):
        token = store.begin_read(f"k{i}")
        store.finish_read(f"k{i}", token, b"v", -1)
    for i in range(1000):
        assert store.lookup(f"k{i}") == b"v"
    token = store.begin_read("new")
    store.finish_read("new", token, b"v", -1)
    assert store.lookup("new") == b"v" and len(store) == 1000
    assert store.lookup("k0") is MISSING  # (all had their chance: the oldest went)


def test_primary_and_replica_each_keep_and_forget_their_own(csc, replicated):
    """Reads go to the replica, whose store is told of the primary's writes as the
    replica applies them; a write of this process drops its keys in both stores."""
    primary, replica = replicated
    cache = csc(location=f"{primary.url},{replica.url}")
    cache.set("k", 1)
    seen_within(lambda: cache.get("k"), 1)  # (replication lag)
    live(cache, url=replica.url)  # (reads go to the replica: the primary keeps nothing)
    assert cache.get("k") == 1 and cache.get("k") == 1
    replica_stats = cache.client.local_cache_stats()[replica.url]
    assert replica_stats["entries"] >= 1 and replica_stats["hits"] >= 1
    elsewhere(primary, f"SET {server_key(cache, 'k')} 2")
    seen_within(lambda: cache.get("k"), 2)
    cache.delete("k")
    seen_within(lambda: cache.get("k"), None)


async def test_async_herd_client(csc):
    from django_valkey_fast.async_cache.cache import AsyncValkeyCache

    cache = csc(backend=AsyncValkeyCache,
                options={"CLIENT_CLASS": "django_valkey_fast.async_cache.client.AsyncHerdClient"})
    await cache.get("warm-up")
    deadline = time.monotonic() + 5
    while not all(s["live"] for s in cache.client.local_cache_stats().values()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert await cache.get_or_set("h", lambda: "computed", 60) == "computed"
    assert await cache.get("h") == "computed" and await cache.get("h") == "computed"
    await cache.set("h", "again")
    assert await cache.get("h") == "again"
    assert stats(cache)["hits"] >= 1


def test_a_read_whose_tracking_is_refused_is_answered_but_not_kept():
    """The listener named in CLIENT TRACKING may have just gone (the server refuses to
    redirect to a client that no longer exists): the caller still gets the value,
    and nothing is kept without tracking behind it."""
    from valkey.exceptions import ResponseError

    store = _live_store()
    plan = through_stores(store, [store], lambda: 42, ("GET", "k"))
    next(plan)
    refused = ResponseError("The client ID you want redirect to does not exist")
    with pytest.raises(StopIteration) as answer:
        plan.send([refused, b"OK", b"v", -1])
    assert answer.value.value == b"v"
    assert store.lookup("k") is MISSING
    # The same when CLIENT CACHING YES is the one refused: this read was not tracked.
    plan = through_stores(store, [store], lambda: 42, ("MGET", "k", "j"))
    next(plan)
    caching_refused = ResponseError("CLIENT CACHING can be called only when tracking is on")
    with pytest.raises(StopIteration) as answer:
        plan.send([b"OK", caching_refused, [b"v", b"w"], -1, -1])
    assert answer.value.value == [b"v", b"w"]
    assert store.lookup("k") is MISSING and store.lookup("j") is MISSING


# -- Sentinel ---------------------------------------------------------------------------


def sentinel_csc(csc, sentinel, backend=None):
    from django_valkey_fast.async_cache.cache import AsyncValkeyCache

    client = ("django_valkey_fast.async_cache.client.AsyncSentinelClient"
              if backend is AsyncValkeyCache else "django_valkey_fast.client.SentinelClient")
    options = {"SENTINELS": [("127.0.0.1", sentinel.port)], "SOCKET_TIMEOUT": 2,
               "SOCKET_CONNECT_TIMEOUT": 1, "CLIENT_CLASS": client}
    return csc(location=f"valkey://{sentinel.name}/0", options=options,
               **({} if backend is None else {"backend": backend}))


def test_sentinel_reads_on_the_replica_are_kept_and_invalidated(csc, doomed_topology):
    primary, replica, sentinel = doomed_topology
    cache = sentinel_csc(csc, sentinel)
    cache.set("k", 1)
    seen_within(lambda: cache.get("k"), 1)
    replica_url = cache.client._server[1]
    live(cache, url=replica_url)
    assert cache.get("k") == 1  # (kept now that the listener is up)
    before = server_gets(replica)
    assert cache.get("k") == 1 and cache.get("k") == 1
    assert server_gets(replica) == before  # hits: local
    elsewhere(primary, f"SET {server_key(cache, 'k')} 2")
    seen_within(lambda: cache.get("k"), 2)  # (the replica applies it, then tells)
    cache.set("k", 3)
    seen_within(lambda: cache.get("k"), 3)


async def test_async_sentinel_client(csc, doomed_topology):
    from django_valkey_fast.async_cache.cache import AsyncValkeyCache

    primary, replica, sentinel = doomed_topology
    cache = sentinel_csc(csc, sentinel, backend=AsyncValkeyCache)
    await cache.set("k", [1])
    deadline = time.monotonic() + BOUND
    while await cache.get("k") != [1]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    replica_url = cache.client._server[1]
    while not cache.client.local_cache_stats()[replica_url]["live"]:
        assert time.monotonic() < deadline + 5
        await asyncio.sleep(0.01)
    assert await cache.get("k") == [1]  # (kept now that the listener is up)
    assert await cache.get("k") == [1] and await cache.get("k") == [1]
    assert cache.client.local_cache_stats()[replica_url]["hits"] >= 2


def test_sentinel_failover_forgets_what_the_old_topology_said(csc, doomed_topology):
    """The primary dies; Sentinel promotes the replica (and kills its clients, the
    listener among them): what was kept is flushed, and a value written on the new
    primary afterwards is what reads return."""
    primary, replica, sentinel = doomed_topology
    cache = sentinel_csc(csc, sentinel)
    cache.set("k", 1)
    seen_within(lambda: cache.get("k"), 1)
    live(cache, url=cache.client._server[1])
    assert cache.get("k") == 1 and cache.get("k") == 1
    assert cache.client.local_cache_stats()[cache.client._server[1]]["entries"] >= 1
    flushes = cache.client.local_cache_stats()[cache.client._server[1]]["flushes"]
    primary.kill()
    deadline = time.monotonic() + 40
    while sentinel.primary_port() != replica.port:
        assert time.monotonic() < deadline, "Sentinel never promoted the replica"
        time.sleep(0.1)
    elsewhere(replica, f"SET {server_key(cache, 'k')} 2")

    def read():
        try:
            return cache.get("k")
        except ConnectionInterrupted:
            return "failing over"

    seen_within(read, 2, bound=20)
    stats_now = cache.client.local_cache_stats()[cache.client._server[1]]
    assert stats_now["flushes"] > flushes


def test_writes_through_a_raw_client_reach_the_store_as_invalidations(csc, server):
    """get_client()/client= run on the configuration's pooled connections, which
    track the keys they read: their writes must still be reported (no NOLOOP)."""
    cache = live(csc())
    cache.set("k", 1)
    kept(cache, server, "k")
    raw = cache.client.get_client()
    raw.set(server_key(cache, "k"), b"2")
    seen_within(lambda: cache.get("k"), 2)
    kept(cache, server, "k")
    cache.set("k", 3, client=raw)
    seen_within(lambda: cache.get("k"), 3)


def test_a_key_of_another_type_is_not_kept_as_missing(csc, server):
    """MGET answers nil for a key holding a set: that is not "no such key"."""
    cache = live(csc())
    cache.sadd("s", "member")
    assert cache.get_many(["s"]) == {}
    assert cache.get_many(["s"]) == {}
    assert cache.has_key("s")  # (not answered locally as missing)
    assert stats(cache)["entries"] == 0


def test_a_refusing_server_starts_no_thread_per_read(csc, auth_server):
    auth_server.command("ACL SETUSER nocsc2 on >pw2 ~* &* +@all -client|tracking")
    cache = csc(location=f"valkey://nocsc2:pw2@127.0.0.1:{auth_server.port}/0")
    for _ in range(50):
        try:
            cache.get("k")
        except TrackingUnsupported:
            pass
        time.sleep(0.002)
    listeners = [thread for thread in threading.enumerate()
                 if "invalidations" in thread.name and str(auth_server.port) in thread.name]
    assert len(listeners) <= 1


@pytest.mark.parametrize("earlier_finishes_first", [True, False])
def test_overlapping_reads_told_different_things_keep_nothing(earlier_finishes_first):
    """Two reads of one key in flight at once may run in either order in the server:
    the one that started later was told 90, the other 89. Whatever order the replies
    arrive in, 89 is not kept (the caller told 90 would read back in time)."""
    store = _live_store()
    earlier = through_stores(store, [store], lambda: 42, ("GET", "k"))
    later = through_stores(store, [store], lambda: 42, ("GET", "k"))
    next(earlier)
    next(later)
    plans = [(earlier, b"89"), (later, b"90")]
    for plan, value in plans if earlier_finishes_first else reversed(plans):
        with pytest.raises(StopIteration):
            plan.send([b"OK", b"OK", value, -1])
    assert store.lookup("k") is MISSING
    agreeing = [through_stores(store, [store], lambda: 42, ("GET", "k")) for _ in range(2)]
    for plan in agreeing:
        next(plan)
    for plan in agreeing:
        with pytest.raises(StopIteration):
            plan.send([b"OK", b"OK", b"90", -1])
    assert store.lookup("k") == b"90"  # (overlapping reads that agree: kept)


def test_a_read_told_newer_drops_an_older_kept_reply_whatever_it_keeps():
    """Invariant: a caller is never served a value older than one it was given (a CI run
    saw a reader get 3, then 0). The interleaving, deterministically: 0 is kept (the
    message that the key changed is still on its way to the listener); a read that then
    starts answers 0 too (served before the change) and another answers 3. The read told
    3 keeps neither (they disagree), and it must drop the kept 0 as well: until the
    listener thread applies the message, a hit would serve it."""
    store = _live_store()
    first = through_stores(store, [store], lambda: 42, ("GET", "n"))
    next(first)
    with pytest.raises(StopIteration):
        first.send([b"OK", b"OK", b"0", -1])
    assert store.lookup("n") == b"0"
    # (reads that found the listener's socket busy: they go to the server)
    earlier = store.begin_read("n")
    told_newer = through_stores_after(store, "n")
    store.finish_read("n", earlier, b"0", -1)  # served before the change: agrees with 0
    with pytest.raises(StopIteration) as done:
        told_newer.send([b"OK", b"OK", b"3", -1])
    assert done.value.value == b"3"
    assert store.lookup("n") is MISSING  # (was b"0": 3, then 0)


@pytest.mark.parametrize("untracked_finishes_first", [True, False])
def test_a_read_made_without_tracking_still_drops_an_older_kept_reply(
        untracked_finishes_first):
    """The same invariant for a read made while the listener's id is not published (a
    reconnection) or its tracking is refused: it keeps nothing, but its caller was
    given a value. Server order: the tracked read's GET (Y), a write (X), the untracked
    read's GET (X); the tracked read must not leave Y to be served to that caller."""
    store = _live_store()
    listener_id = [None]
    untracked = through_stores(store, [store], lambda: listener_id[0], ("GET", "k"))
    assert next(untracked) == ("GET", "k")
    listener_id[0] = 42
    tracked = through_stores(store, [store], lambda: listener_id[0], ("GET", "k"))
    next(tracked)
    plans = [(untracked, b"X"), (tracked, [b"OK", b"OK", b"Y", -1])]
    for plan, reply in plans if untracked_finishes_first else reversed(plans):
        with pytest.raises(StopIteration):
            plan.send(reply)
    assert store.lookup("k") is MISSING  # (was b"Y" when the tracked read finished first)


def test_a_redirect_the_listener_verifies_is_kept_only_on_its_own_server():
    """Sentinel: a data connection may reach another server than the listener's, where
    the listener's client id may be someone else's (ids are per server, small
    integers): the server accepts the redirect and would send the invalidations to that
    client. A read's reply is kept only if ``CLIENT LIST ID`` there shows the listener
    as the listener saw itself (its ``addr`` and ``laddr``)."""
    store = _live_store()
    target = (7, "127.0.0.1:50000", "127.0.0.1:6379")

    def read(listed):
        plan = through_stores(store, [store], lambda: target, ("GET", "k"))
        pipeline = next(plan)
        assert pipeline[0] == ("CLIENT", "LIST", "ID", 7)
        assert pipeline[1] == ("CLIENT", "TRACKING", "ON", "REDIRECT", 7, "OPTIN")
        with pytest.raises(StopIteration) as done:
            plan.send([listed, b"OK", b"OK", b"v", -1])
        return done.value.value

    for elsewhere_ in (b"id=7 addr=10.0.0.9:41000 laddr=127.0.0.1:6379 fd=9 name=x\n",
                       b"id=7 addr=127.0.0.1:50000 laddr=127.0.0.1:6380 fd=9\n",
                       b"", ValueError("ERR unknown subcommand")):
        assert read(elsewhere_) == b"v" and store.lookup("k") is MISSING
    assert read(b"id=7 addr=127.0.0.1:50000 laddr=127.0.0.1:6379 fd=9 name=\n") == b"v"
    assert store.lookup("k") == b"v"


def test_the_verified_redirect_tells_servers_apart():
    """The check above on real servers: a listener on one server; on another, a client
    that happens to have the listener's id. The probe's reply matches the listener's
    own view only on the listener's server."""
    import socket as _socket

    import valkey

    from django_valkey_fast.caching import _tracked_pipeline, _tracked_replies
    from django_valkey_fast.invalidation import InvalidationListener

    class Owner:
        def __getattr__(self, name):
            return lambda *args: None

    server, other = Server(), Server()
    for _ in range(10):  # (ids are per server: the listener's is above the other's first)
        server.command("PING")
    listener = InvalidationListener(
        lambda: valkey.Connection(host="127.0.0.1", port=server.port), Owner(),
        heartbeat=30, verify=True)
    listener.ensure_started()
    held = []
    try:
        deadline = time.monotonic() + 5
        while listener.redirect is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        listener_id = listener.redirect[0]
        while True:  # a client of the other server with the listener's id
            sock = _socket.create_connection(("127.0.0.1", other.port))
            sock.sendall(b"CLIENT ID\r\n")
            their_id = int(sock.recv(100)[1:].split(b"\r\n")[0])
            if their_id >= listener_id:
                held.append(sock)
                break
            sock.close()
        assert their_id == listener_id, "the other server's ids passed the listener's"
        pipeline = _tracked_pipeline(listener.redirect, [("GET", "k")], ["k"])
        for where, kept in ((server, True), (other, False)):
            client = valkey.Valkey(port=where.port)
            replies = []
            for command in pipeline:
                try:
                    replies.append(client.execute_command(*command))
                except valkey.ResponseError as error:
                    replies.append(error)
            ((answer, keep, ttls),) = _tracked_replies(replies, [1], listener.redirect)
            assert keep is kept, (where.port, replies[0])
            client.close()
    finally:
        listener.stop()
        for sock in held:
            sock.close()
        server.stop()
        other.stop()


def through_stores_after(store, key):
    """A GET plan on ``store`` sent past the store (its lookup already made)."""
    plan = through_stores(store, [store], lambda: 42, ("GET", key))
    unread = store._unread
    store._unread = lambda: True  # (the lookup misses: the listener's socket is busy)
    try:
        next(plan)
    finally:
        store._unread = unread
    return plan


@pytest.mark.parametrize("case", ["flush while in flight", "too large", "ttl unknown"])
def test_a_read_that_keeps_nothing_drops_a_kept_reply_that_differs(case):
    """The same invariant on every path where a read keeps nothing: its caller was told
    something newer than what is kept, so that goes too."""
    store = _live_store()
    kept = store.begin_read("n")
    store.finish_read("n", kept, b"old", -1)
    token = store.begin_read("n")
    ttl = -1
    if case == "flush while in flight":
        token.epoch -= 1  # (began as a flush came: the token of the epoch before)
    elif case == "too large":
        store.max_bytes = 100
    else:
        ttl = None  # (its PTTL failed)
    store.finish_read("n", token, b"new" * 50, ttl)
    assert store.lookup("n") is MISSING


def test_no_hit_while_the_listener_socket_holds_unread_bytes():
    """A message that reached the listener's socket may be an invalidation: until the
    listener thread reads it (it may wait for the GIL), nothing is served locally."""
    store = _live_store()
    token = store.begin_read("k")
    store.finish_read("k", token, b"v", -1)
    assert store.lookup("k") == b"v"
    unread = [True]
    store.connected(lambda: unread[0])
    store.proved(time.monotonic())
    token = store.begin_read("k")
    store.finish_read("k", token, b"v", -1)
    assert store.lookup("k") is MISSING
    unread[0] = False
    assert store.lookup("k") == b"v"


def test_no_hit_while_the_listener_holds_bytes_it_has_not_applied():
    """NO-STALE-HIT: once the listener thread has taken a message from its socket (the
    socket is empty again) it may wait for the GIL before applying it; it says
    ``reading(True)`` before it reads, and until ``reading(False)`` no hit is served,
    by ``lookup`` or ``lookup_many``. A reconnection starts with no such word."""
    store = _live_store()
    store.finish_read("k", store.begin_read("k"), b"v", -1)
    assert store.lookup("k") == b"v" and store.lookup_many(["k"]) == [b"v"]
    store.reading(True)
    assert store.lookup("k") is MISSING and store.lookup_many(["k"]) == [MISSING]
    store.reading(False)
    assert store.lookup("k") == b"v" and store.lookup_many(["k"]) == [b"v"]
    store.reading(True)
    store.disconnected()
    store.connected()
    store.proved(time.monotonic())
    store.finish_read("k", store.begin_read("k"), b"v", -1)
    assert store.lookup("k") == b"v"


def test_the_listener_reads_only_after_saying_so_and_applies_before_unsaying(server):
    """The listener's side of the rule above, on a real server: each ``reading(True)``
    comes while the message is still in the socket (the store's socket check covers the
    time before), every invalidation is applied while the word holds, and the word is
    taken back once nothing is left unread."""
    from django_valkey_fast._wire import fd_readable
    from django_valkey_fast.invalidation import InvalidationListener

    class Owner:
        def __init__(self):
            self.events, self.unread, self.busy = [], None, False

        def connected(self, unread):
            self.unread = unread
            self.events.append("connected")

        def reading(self, busy):
            if busy and not self.busy and self.events[-1] != "connected":
                self.events.append(("socket held bytes", self.unread()))
            self.busy = busy
            self.events.append(("reading", busy))

        def invalidate(self, keys):
            self.events.append(("invalidate", keys, self.busy))

        def flush(self):
            self.events.append(("flush", self.busy))

        def proved(self, as_of):
            self.events.append("proved")

        def disconnected(self):
            self.events.append("disconnected")

    import valkey

    owner = Owner()
    listener = InvalidationListener(
        lambda: valkey.Connection(host="127.0.0.1", port=server.port), owner, heartbeat=30)
    listener.ensure_started()
    tracked = valkey.Valkey(port=server.port)
    try:
        deadline = time.monotonic() + 5
        while listener.client_id is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for n in range(20):
            tracked.execute_command("CLIENT", "TRACKING", "ON", "REDIRECT",
                                    listener.client_id)
            tracked.get(f"k{n}")
            elsewhere(server, f"SET k{n} {n}")
        while sum(1 for event in owner.events if event[0] == "invalidate") < 20:
            assert time.monotonic() < deadline + 5, owner.events
            time.sleep(0.01)
        while owner.busy:
            assert time.monotonic() < deadline + 5
            time.sleep(0.01)
    finally:
        listener.stop()
        tracked.close()
    applied = [event for event in owner.events if event[0] in ("invalidate", "flush")]
    assert applied and all(event[-1] is True for event in applied), applied
    # The word said before the read that took each message (a word said around a
    # PING's send, with nothing to read, is taken back before the next read).
    held = None
    for event in owner.events:
        if event[0] == "socket held bytes":
            held = event[1]
        elif event[0] == "invalidate":
            assert held is True, owner.events
    assert ("reading", False) in owner.events


def test_lookup_many_answers_as_lookup_does_with_one_socket_check():
    """get_many's lookups: each key's kept reply or MISSING, as ``lookup`` answers;
    hits counted, an expired entry dropped; a store not live, or a listener socket
    holding unread bytes (checked after the entries are read), serves no hit at all."""
    now = [100.0]
    store = LocalStore(100, 1 << 20, 60.0, clock=lambda: now[0])
    assert store.lookup_many(["a"]) == [MISSING]  # (not live yet)
    unread = [False]
    checks = []

    def socket_holds_bytes():
        checks.append(1)
        return unread[0]

    store.connected(socket_holds_bytes)
    store.proved(now[0])
    for key, reply, ttl in (("a", b"A", -1), ("none", None, -2), ("short", b"S", 1000)):
        store.finish_read(key, store.begin_read(key), reply, ttl)
    assert store.lookup_many(["a", "x", "none", "short"]) == [b"A", MISSING, None, b"S"]
    assert store.hits == 3 and len(checks) == 1  # (one check for the whole batch)
    now[0] += 2  # "short" expired
    assert store.lookup_many(["short", "a"]) == [MISSING, b"A"]
    assert "short" not in store._entries
    unread[0] = True
    assert store.lookup_many(["a", "none"]) == [MISSING, MISSING]
    unread[0] = False
    now[0] += 61  # not proved within MAX_STALENESS
    assert store.lookup_many(["a"]) == [MISSING]


def test_a_listener_that_runs_during_a_lookup_leaves_no_stale_hit():
    """NO-STALE-HIT: the listener thread may take the GIL between a lookup reading an
    entry and asking the socket: it reads the waiting invalidation (the socket is then
    empty) and drops the entry. The lookup must not serve what it read before: one key
    (``lookup``) or a batch (``lookup_many``, whose entries are read over a longer
    window), and a flush (the listener's connection lost) the same."""
    from collections import OrderedDict

    def store_with(keys, unread=int):
        store = LocalStore(100, 1 << 20, 60.0, clock=lambda: 100.0)
        store.connected(unread)
        store.proved(100.0)
        for key in keys:
            store.finish_read(key, store.begin_read(key), b"old-" + key.encode(), -1)
        return store

    # lookup: the listener runs at the socket check, finds the message, applies it.
    waiting = [True]

    def listener_runs_at_the_check():
        if waiting[0]:
            waiting[0] = False
            store.invalidate(["a"])
        return False

    store = store_with("a", listener_runs_at_the_check)
    assert store.lookup("a") is MISSING
    assert store.lookup("a") is MISSING  # (dropped: the next read fetches it)

    class ListenerRunsWhileReading(OrderedDict):
        """The entries; reading ``b`` lets the listener run (``then``) once."""
        then = None

        def get(self, key, default=None):
            if key == "b" and self.then is not None:
                then, self.then = self.then, None
                then()
            return super().get(key, default)

    for listener in ("invalidates a", "loses its connection"):
        store = store_with("ab")
        entries = ListenerRunsWhileReading(store._entries)
        store._entries = entries
        entries.then = ((lambda: store.invalidate(["a"])) if listener == "invalidates a"
                        else store.disconnected)
        found = store.lookup_many(["a", "b"])
        assert found[0] is MISSING, listener
        if listener == "invalidates a":
            assert found[1] == b"old-b" and store.hits == 1
        else:
            assert found[1] is MISSING and store.hits == 0


def test_a_spinning_reader_sees_another_process_write_without_waiting_for_the_gil(
        csc, server):
    """A thread doing nothing but local hits holds the GIL: the listener thread gets
    it only at the interpreter's switch interval. The hit path checks the listener's
    socket instead, so the change is seen as soon as the message arrives. The switch
    interval is raised to 200 ms for the test: a hit path that waited for the listener
    would show a median near 200 ms; the bound (50 ms) leaves room for a loaded machine
    to preempt the process."""
    import sys as _sys

    switch_interval = _sys.getswitchinterval()
    _sys.setswitchinterval(0.2)
    try:
        _spin_on_another_process_write(live(csc()), server)
    finally:
        _sys.setswitchinterval(switch_interval)


def _spin_on_another_process_write(cache, server):
    import sys as _sys

    probe = subprocess.Popen([_sys.executable, "-c", (
        "import socket, sys, time\n"
        "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
        "for line in sys.stdin:\n"
        "    s.sendall(line.strip().encode() + b'\\r\\n'); s.recv(100)\n"
        "    print(time.monotonic(), flush=True)\n"), str(server.port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    delays = []
    try:
        for n in range(31):
            cache.set("p", n)
            kept(cache, server, "p")
            probe.stdin.write(f"SET {server_key(cache, 'p')} {n + 1}\n")
            probe.stdin.flush()
            while cache.get("p") != n + 1:
                pass
            delays.append(time.monotonic() - float(probe.stdout.readline()))
    finally:
        probe.stdin.close()
        probe.wait(10)
    delays.sort()
    assert delays[15] < 0.05, f"median {delays[15] * 1e3:.2f} ms"


def test_resp3_pool_settings_still_get_a_resp2_listener(csc, server):
    """The listener reads subscribed messages as RESP2 replies whatever protocol the
    pool's settings ask for (RESP3 would deliver them as pushes it never sees)."""
    cache = live(csc(options={"CONNECTION_POOL_KWARGS": {"protocol": 3}}))
    cache.set("k", 1)
    kept(cache, server, "k")
    elsewhere(server, f"SET {server_key(cache, 'k')} 2")
    seen_within(lambda: cache.get("k"), 2)


# -- client-side sharding -------------------------------------------------------------


def test_sharded_reads_are_kept_per_shard_and_invalidated(csc):
    """ShardClient: each shard's reads are kept in that shard's store, with its own
    listener; another process's write on a shard and this process's multi-shard
    writes and clear reach them."""
    from tests.test_sharding import holder as shard_of

    shards = [Server() for _ in range(2)]
    try:
        cache = csc(location=[shard.url for shard in shards],
                    options={"CLIENT_CLASS": "django_valkey_fast.client.ShardClient"})
        keys = [f"k{i}" for i in range(32)]  # (on both shards, whatever the prefix)
        cache.set_many({key: 1 for key in keys})
        assert cache.get_many(keys) == {key: 1 for key in keys}
        deadline = time.monotonic() + 5
        while not all(s["live"] for s in cache.client.local_cache_stats().values()):
            cache.get_many(keys)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert len(cache.client.local_cache_stats()) == 2  # a store per shard
        cache.get_many(keys)
        gets = [server_gets(shard) for shard in shards]
        assert cache.get_many(keys) == {key: 1 for key in keys}
        assert all(cache.get(key) == 1 for key in keys)
        assert [server_gets(shard) for shard in shards] == gets  # all local
        (owner,) = shard_of(shards, cache.make_key("k0"))
        elsewhere(owner, f"SET {server_key(cache, 'k0')} 2")
        seen_within(lambda: cache.get("k0"), 2)
        cache.set_many({key: 3 for key in keys})
        assert cache.get_many(keys) == {key: 3 for key in keys}

        async def async_side():
            assert await cache.aget_many(keys) == {key: 3 for key in keys}
            hits = sum(s["hits"] for s in cache.client.local_cache_stats().values())
            assert await cache.aget_many(keys) == {key: 3 for key in keys}
            assert sum(s["hits"] for s in cache.client.local_cache_stats().values()) > hits
            await cache.aset("k1", 4)
            assert await cache.aget("k1") == 4

        asyncio.run(async_side())
        cache.clear()
        assert cache.get_many(keys) == {}
    finally:
        for shard in shards:
            shard.stop()


def test_two_configurations_on_one_server_each_hear_their_invalidations(csc, server):
    """Two aliases (two configurations, two stores) read through the same pooled
    connections, whose tracking can redirect to one listener only: each must still
    be told when another process changes a key it keeps."""
    first, second = live(csc()), live(csc())
    first.set("k", 1)
    second.set("j", 1)
    kept(first, server, "k")
    kept(second, server, "j")  # (its reads may redirect the shared connections)
    kept(first, server, "k")
    elsewhere(server, f"SET {server_key(first, 'k')} 2", f"SET {server_key(second, 'j')} 2")
    seen_within(lambda: first.get("k"), 2)
    seen_within(lambda: second.get("j"), 2)
