"""Side-by-side benchmark: django-valkey-fast against its peers, in one process.

Every contender is a Django cache backend instance talking to the same server (one
this script starts, unless ``--location`` names one). Rounds interleave every
contender on every workload, in a shuffled order, so drift on a shared machine hits
all of them alike; the report gives medians over rounds and ratios to django-valkey.

    bash scripts/bench.sh                # or: .venv/bin/python bench/run.py --rounds 9

Columns: ops/s (wall clock) and client CPU microseconds per operation
(``time.process_time``: this process only; the server runs elsewhere).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VALUE_100 = "v" * 100
VALUE_30K = {"rows": [{"id": i, "name": f"row-{i}", "score": i * 1.5} for i in range(600)]}
MANY = 100


@contextlib.contextmanager
def server_location(location):
    """Yield ``location``, or the URL of a valkey-server started for the run."""
    if location is not None:
        yield location
        return
    from tests.servers import Server, server_binary

    server = Server()
    print(f"server: {server_binary()} at {server.url}", file=sys.stderr)
    try:
        yield server.url
    finally:
        server.stop()


def configure():
    import django
    from django.conf import settings

    settings.configure(CACHES={}, USE_TZ=True, INSTALLED_APPS=[])
    django.setup()


def use_pure_twins(cache):
    """Point a django-valkey-fast cache at the pure-Python twins (own pool, own channel)."""
    from django_valkey_fast import _codec_py, _wire_py
    from django_valkey_fast.channel import Channel, _channels

    client = cache.client
    codec = client._codec
    pure = _codec_py.Codec(codec.serializer, codec.compressor, codec.mode, codec.min_length,
                           codec.magic)
    client._codec, client.encode, client.decode = pure, pure.encode, pure.decode
    keys = _codec_py.KeyMaker(client._keys.prefix, client._keys.version, client._keys.key_func,
                              client._keys.default_key_func)
    client._keys, client._key = keys, keys.make
    pool = client.get_client().connection_pool
    _channels[pool] = Channel(pool, _wire_py.pack_command, _wire_py.pack_commands)
    client._channels = [None] * len(client._channels)


def contenders(location: str):
    """Name -> an object with the Django cache API, all on ``location``."""
    from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
    from django_redis.cache import RedisCache as DjangoRedisPackage
    from django_valkey.cache import ValkeyCache as DjangoValkey

    import django_valkey_fast
    from django_valkey_fast.cache import ValkeyCache

    redis_location = location.replace("valkey://", "redis://")
    fast = ValkeyCache(location, {})
    assert django_valkey_fast.COMPILED, "build the extensions first (pip install -e .)"
    pure = ValkeyCache(location, {"OPTIONS": {"CONNECTION_POOL_KWARGS": {"client_name": "pure"}}})
    use_pure_twins(pure)
    return {
        "django-valkey-fast": fast,
        "django-valkey-fast (pure)": pure,
        "django-valkey 0.4": DjangoValkey(location, {}),
        "django-redis": DjangoRedisPackage(redis_location, {}),
        "Django RedisCache": DjangoRedisCache(redis_location, {}),
        "valkey-py (floor)": RawValkey(location),
    }


class RawValkey:
    """The floor: valkey-py called directly, pickling like the backends do."""

    def __init__(self, location):
        import pickle

        import valkey

        self.client = valkey.Valkey.from_url(location)
        self.dumps, self.loads = pickle.dumps, pickle.loads

    def get(self, key):
        value = self.client.get(key)
        return None if value is None else self.loads(value)

    def set(self, key, value):
        stored = value if type(value) is int else self.dumps(value)
        return self.client.set(key, stored, px=300_000)

    def incr(self, key):
        return self.client.incr(key)

    def get_many(self, keys):
        return {k: self.loads(v) for k, v in zip(keys, self.client.mget(keys)) if v is not None}

    def set_many(self, data):
        pipeline = self.client.pipeline(transaction=False)
        for key, value in data.items():
            pipeline.set(key, self.dumps(value), px=300_000)
        pipeline.execute()


def cluster_contenders(location: str):
    """This package's and django-valkey's cluster backends on one cluster."""
    from django_valkey.cluster_cache.cache import ClusterValkeyCache as PeerCluster

    from django_valkey_fast.cluster_cache.cache import ClusterValkeyCache

    return {
        "django-valkey-fast ClusterValkeyCache": ClusterValkeyCache(location, {}),
        "django-valkey 0.4 ClusterValkeyCache": PeerCluster(location, {}),
    }


def cluster_workloads():
    """get/set of a 100-byte value and get_many of 100 keys spread over the slots."""
    chosen = workloads()
    return {name: chosen[name] for name in ("get 100B", "set 100B", f"get_many {MANY}")}


def workloads():
    """Name -> (setup(cache), operation(cache), operations per call)."""
    many_keys = [f"many-{i}" for i in range(MANY)]
    many_data = {key: VALUE_100 for key in many_keys}
    return {
        "get 100B": (lambda c: c.set("small", VALUE_100), lambda c: c.get("small"), 1),
        "set 100B": (None, lambda c: c.set("small", VALUE_100), 1),
        "get miss": (None, lambda c: c.get("missing"), 1),
        "incr": (lambda c: c.set("counter", 1), lambda c: c.incr("counter"), 1),
        "get 30KB": (lambda c: c.set("large", VALUE_30K), lambda c: c.get("large"), 1),
        "set 30KB": (None, lambda c: c.set("large", VALUE_30K), 1),
        f"get_many {MANY}": (lambda c: c.set_many(many_data), lambda c: c.get_many(many_keys), 1),
        f"set_many {MANY}": (None, lambda c: c.set_many(many_data), 1),
    }


def measure(cache, operation, calls):
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        operation(cache)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(location, rounds, seconds, caches=None, loads=None):
    caches = caches or contenders(location)
    loads = loads or workloads()
    results = {(w, c): [] for w in loads for c in caches}
    calls = {}
    for workload, (setup, operation, _) in loads.items():
        for name, cache in caches.items():
            if setup:
                setup(cache)
            operation(cache)  # warm up: connect, load scripts
            wall, _ = measure(cache, operation, 50)
            calls[workload, name] = max(20, int(seconds / max(wall / 50, 1e-7)))
    for round_number in range(rounds):
        for workload, (setup, operation, _) in loads.items():
            order = list(caches.items())
            random.shuffle(order)
            for name, cache in order:
                if setup:
                    setup(cache)
                n = calls[workload, name]
                wall, cpu = measure(cache, operation, n)
                results[workload, name].append((n / wall, cpu / n * 1e6))
        print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)
    return caches, loads, results


def report(caches, loads, results, baseline="django-valkey 0.4"):
    """Markdown table: median ops/s, CPU us/op, and ratios to ``baseline``."""
    lines = ["| workload | backend | ops/s | CPU us/op | ops/s vs django-valkey | "
             "CPU vs django-valkey |", "|---|---|---:|---:|---:|---:|"]
    summary = {}
    for workload in loads:
        base_ops = statistics.median(r[0] for r in results[workload, baseline])
        base_cpu = statistics.median(r[1] for r in results[workload, baseline])
        for name in caches:
            ops = statistics.median(r[0] for r in results[workload, name])
            cpu = statistics.median(r[1] for r in results[workload, name])
            summary[workload, name] = (ops, cpu)
            lines.append(f"| {workload} | {name} | {ops:,.0f} | {cpu:.1f} | "
                         f"{ops / base_ops:.2f}x | {cpu / base_cpu:.2f}x |")
    return "\n".join(lines), summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--location", help="use this server instead of starting one")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.15,
                        help="target duration of one batch")
    parser.add_argument("--json", help="also write the medians to this file")
    parser.add_argument("--cluster", action="store_true",
                        help="compare the cluster backends on a 6-node cluster started here")
    args = parser.parse_args()
    configure()
    if args.cluster:
        from tests.servers import Cluster

        cluster = Cluster()
        try:
            caches, loads, results = run(cluster.url, args.rounds, args.seconds,
                                         cluster_contenders(cluster.url), cluster_workloads())
        finally:
            cluster.stop()
        table, summary = report(caches, loads, results,
                                baseline="django-valkey 0.4 ClusterValkeyCache")
    else:
        with server_location(args.location) as location:
            caches, loads, results = run(location, args.rounds, args.seconds)
        table, summary = report(caches, loads, results)
    print(table)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({f"{w} | {n}": v for (w, n), v in summary.items()}, handle, indent=1)


if __name__ == "__main__":
    main()
