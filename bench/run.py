"""Side-by-side benchmark: django-valkey-fast against its peers and the floor, in one run.

Every contender is a Django cache backend configured in ``settings.CACHES`` and
talking to the same server (one this script starts, unless ``--location`` names one):
this package compiled (in this process) and pure-Python (in a child process started
with ``DJANGO_VALKEY_FAST_NO_EXTENSIONS=1``, driven by this one), django-valkey,
django-redis, Django's ``RedisCache``, valkey-py called directly, and the bare-socket
floor (:mod:`bench.floor`). Rounds interleave every contender on every workload in a
shuffled order, so drift on a shared machine hits all of them alike; the report gives
medians over rounds and ratios to django-valkey and to the floor.

The ``per request`` workload is what Django does under ASGI, where its cache handler
is context-local: build the backend from settings (``caches.create_connection``), run
one ``get``, ``close()`` it.

    bash scripts/bench.sh                # or: .venv/bin/python bench/run.py --rounds 9

Columns: ops/s (wall clock), client CPU microseconds per operation
(``time.process_time`` of the process that ran it; the server runs elsewhere), and the
server connections the contender held after the batch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VALUE_100 = "v" * 100
VALUE_30K = {"rows": [{"id": i, "name": f"row-{i}", "score": i * 1.5} for i in range(600)]}
MANY = 100
PER_REQUEST = "per request (build + get + close)"

BASELINE = "django-valkey 0.4"
FLOOR = "bare socket (floor)"
PURE = "django-valkey-fast (pure)"

# name -> (alias, BACKEND, OPTIONS, speaks redis://)
BACKENDS = {
    "django-valkey-fast": ("fast", "django_valkey_fast.cache.ValkeyCache",
                           {"CONNECTION_POOL_KWARGS": {"client_name": "bench-fast"}}, False),
    PURE: ("pure", "django_valkey_fast.cache.ValkeyCache",
           {"CONNECTION_POOL_KWARGS": {"client_name": "bench-pure"}}, False),
    BASELINE: ("dv", "django_valkey.cache.ValkeyCache",
               {"CONNECTION_POOL_KWARGS": {"client_name": "bench-dv"}}, False),
    "django-redis": ("dr", "django_redis.cache.RedisCache",
                     {"CONNECTION_POOL_KWARGS": {"client_name": "bench-dr"}}, True),
    "Django RedisCache": ("builtin", "django.core.cache.backends.redis.RedisCache",
                          {"client_name": "bench-builtin"}, True),
}
CLIENT_NAMES = {name: f"bench-{alias}" for name, (alias, *_) in BACKENDS.items()}
CLIENT_NAMES.update({"valkey-py": "bench-valkey-py", FLOOR: "bench-floor"})


@contextlib.contextmanager
def server_location(location):
    """Yield ``location``, or the URL of a valkey-server started for the run."""
    if location is not None:
        yield location
        return
    from tests.servers import Server, server_binary

    from bench.report import pin

    server = Server()
    pin([server.process.pid])
    print(f"server: {server_binary()} at {server.url}", file=sys.stderr)
    try:
        yield server.url
    finally:
        server.stop()


def configure(location=None, names=BACKENDS):
    """Configure Django with a cache alias per backend of ``names`` on ``location``."""
    import django
    from django.conf import settings

    caches = {}
    if location is not None:
        for name in names:
            alias, backend, options, redis_scheme = BACKENDS[name]
            url = location.replace("valkey://", "redis://") if redis_scheme else location
            caches[alias] = {"BACKEND": backend, "LOCATION": url, "OPTIONS": options}
    settings.configure(CACHES=caches, USE_TZ=True, INSTALLED_APPS=[])
    django.setup()


def django_request(alias: str) -> None:
    """One request as Django's handler runs it under ASGI: a new backend, one get, close."""
    from django.core.cache import caches

    cache = caches.create_connection(alias)
    cache.get("small")
    cache.close()


def workloads():
    """Name -> (setup(cache), operation(cache, alias)): the operation is one call."""
    many_keys = [f"many-{i}" for i in range(MANY)]
    many_data = {key: VALUE_100 for key in many_keys}

    def per_request(cache, alias):
        if alias is None:  # the floor and valkey-py build nothing: a request is a get
            return cache.get("small")
        return django_request(alias)

    def put_small(cache):
        cache.set("small", VALUE_100)

    return {
        "get 100B": (put_small, lambda c, a: c.get("small")),
        PER_REQUEST: (put_small, per_request),
        "set 100B": (None, lambda c, a: c.set("small", VALUE_100)),
        "get miss": (None, lambda c, a: c.get("missing")),
        "incr": (lambda c: c.set("counter", 1), lambda c, a: c.incr("counter")),
        "get 30KB": (lambda c: c.set("large", VALUE_30K), lambda c, a: c.get("large")),
        "set 30KB": (None, lambda c, a: c.set("large", VALUE_30K)),
        f"get_many {MANY}": (lambda c: c.set_many(many_data), lambda c, a: c.get_many(many_keys)),
        f"set_many {MANY}": (None, lambda c, a: c.set_many(many_data)),
    }


class Contender:
    """A cache measured in this process: ``cache`` is a backend (or the floor)."""

    def __init__(self, cache, alias=None, loads=None):
        self.cache, self.alias = cache, alias
        self.loads = loads or workloads()

    def setup(self, workload: str) -> None:
        """Put in the server what ``workload`` reads."""
        setup = self.loads[workload][0]
        if setup is not None:
            setup(self.cache)

    def measure(self, workload: str, calls: int):
        """Run ``workload`` ``calls`` times: (wall seconds, CPU seconds)."""
        operation, cache, alias = self.loads[workload][1], self.cache, self.alias
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            operation(cache, alias)
        return time.perf_counter() - wall, time.process_time() - cpu

    def close(self) -> None:
        """Stop (nothing to do in this process)."""


class PureProcess(Contender):
    """This package's pure-Python build, measured in a child process of its own
    (``DJANGO_VALKEY_FAST_NO_EXTENSIONS=1``), which runs each request of this one."""

    def __init__(self, location: str):
        env = dict(os.environ, DJANGO_VALKEY_FAST_NO_EXTENSIONS="1")
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", "--location", location],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)

    def _ask(self, **request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError("the pure-Python benchmark process died (see its stderr)")
        return json.loads(answer)

    def setup(self, workload: str) -> None:
        self._ask(op="setup", workload=workload)

    def measure(self, workload: str, calls: int):
        return tuple(self._ask(op="measure", workload=workload, calls=calls))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


def serve_pure(location: str) -> None:
    """The child side of :class:`PureProcess`: answer its requests on stdin/stdout."""
    import django_valkey_fast

    assert not django_valkey_fast.COMPILED, "the pure process loaded a compiled twin"
    configure(location, names=[PURE])
    from django.core.cache import caches

    contender = Contender(caches[BACKENDS[PURE][0]], BACKENDS[PURE][0])
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "setup":
            contender.setup(request["workload"])
            answer = None
        else:
            answer = contender.measure(request["workload"], request["calls"])
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class RawValkey:
    """valkey-py called directly, pickling like the backends do."""

    def __init__(self, location):
        import pickle

        import valkey

        self.client = valkey.Valkey.from_url(location, client_name=CLIENT_NAMES["valkey-py"])
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


def contenders(location: str, pure: bool = True):
    """Name -> Contender, all on ``location`` (configure(location) first)."""
    from django.core.cache import caches

    import django_valkey_fast
    from bench.floor import BareSocket

    assert django_valkey_fast.COMPILED, "build the extensions first (pip install -e .)"
    chosen = {}
    for name, (alias, *_) in BACKENDS.items():
        if name == PURE:
            if pure:
                chosen[name] = PureProcess(location)
        else:
            chosen[name] = Contender(caches[alias], alias)
    chosen["valkey-py"] = Contender(RawValkey(location))
    chosen[FLOOR] = Contender(BareSocket(location))
    return chosen


def cluster_contenders(location: str):
    """This package's cluster backend (with and without its client-side cache) and
    django-valkey's, on one cluster."""
    from django_valkey.cluster_cache.cache import ClusterValkeyCache as PeerCluster

    from django_valkey_fast.cluster_cache.cache import ClusterValkeyCache

    loads = cluster_workloads()
    return {
        "django-valkey-fast ClusterValkeyCache": Contender(ClusterValkeyCache(location, {}),
                                                           loads=loads),
        "django-valkey-fast ClusterValkeyCache, CLIENT_SIDE_CACHE on": Contender(
            ClusterValkeyCache(location, {"OPTIONS": {"CLIENT_SIDE_CACHE": {}}}), loads=loads),
        "django-valkey 0.4 ClusterValkeyCache": Contender(PeerCluster(location, {}), loads=loads),
    }


def cluster_workloads():
    """get/set of a 100-byte value and get_many of 100 keys spread over the slots."""
    chosen = workloads()
    return {name: chosen[name] for name in ("get 100B", "set 100B", f"get_many {MANY}")}


def server_version(location: str) -> str:
    """What the server says it is ("Valkey 9.1.2", "Redis 7.0.15")."""
    import valkey

    client = valkey.Valkey.from_url(location)
    info = client.info("server")
    client.close()
    if "valkey_version" in info:
        return f"Valkey {info['valkey_version']}"
    return f"Redis {info['redis_version']}"


class ConnectionCounter:
    """Counts each contender's connections to the server (by client name)."""

    def __init__(self, location):
        import valkey

        self.client = valkey.Valkey.from_url(location, client_name="bench-counter")
        self.peaks: dict = {}

    def record(self, workload: str, name: str) -> None:
        wanted = CLIENT_NAMES.get(name)
        if wanted is None:
            return
        count = sum(1 for entry in self.client.client_list() if entry.get("name") == wanted)
        key = (workload, name)
        self.peaks[key] = max(self.peaks.get(key, 0), count)


def run(location, rounds, seconds, chosen, loads, counter=None):
    """Measure every workload of ``loads`` on every contender of ``chosen``, interleaved."""
    results = {(w, c): [] for w in loads for c in chosen}
    calls = {}
    for workload in loads:
        for name, contender in chosen.items():
            contender.setup(workload)
            contender.measure(workload, 1)  # warm up: connect, load scripts
            wall, _ = contender.measure(workload, 50)
            calls[workload, name] = max(20, int(seconds / max(wall / 50, 1e-7)))
    for round_number in range(rounds):
        for workload in loads:
            order = list(chosen.items())
            random.shuffle(order)
            for name, contender in order:
                contender.setup(workload)
                n = calls[workload, name]
                wall, cpu = contender.measure(workload, n)
                results[workload, name].append((n / wall, cpu / n * 1e6))
                if counter is not None:
                    counter.record(workload, name)
        print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)
    return results


def summarize(results):
    """(workload, name) -> (median ops/s, median CPU us/op)."""
    return {key: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
            for key, runs in results.items()}


def report(names, loads, summary, baseline=BASELINE, peaks=None):
    """Markdown table: median ops/s, CPU us/op, ratios to ``baseline`` and the floor."""
    floor = FLOOR in names
    lines = ["| workload | backend | ops/s | CPU us/op | ops/s vs django-valkey | "
             "CPU vs django-valkey |" + (" CPU vs floor |" if floor else "")
             + (" connections |" if peaks else ""),
             "|---|---|---:|---:|---:|---:|" + ("---:|" if floor else "")
             + ("---:|" if peaks else "")]
    for workload in loads:
        base_ops, base_cpu = summary[workload, baseline]
        for name in names:
            ops, cpu = summary[workload, name]
            line = (f"| {workload} | {name} | {ops:,.0f} | {cpu:.1f} | "
                    f"{ops / base_ops:.2f}x | {cpu / base_cpu:.2f}x |")
            if floor:
                line += f" {cpu / summary[workload, FLOOR][1]:.2f}x |"
            if peaks:
                line += f" {peaks.get((workload, name), '-')} |"
            lines.append(line)
    return "\n".join(lines)


def per_request_report(names, summary):
    """How much a request costs against a warm ``get`` of the same backend."""
    lines = ["| backend | per request CPU us | warm get CPU us | per request / warm get |",
             "|---|---:|---:|---:|"]
    for name in names:
        request, warm = summary[PER_REQUEST, name][1], summary["get 100B", name][1]
        lines.append(f"| {name} | {request:.1f} | {warm:.1f} | {request / warm:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--location", help="use this server instead of starting one")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.15,
                        help="target duration of one batch")
    parser.add_argument("--json", help="also write the medians to this file")
    parser.add_argument("--cluster", action="store_true",
                        help="compare the cluster backends on a 6-node cluster started here")
    parser.add_argument("--no-pure", action="store_true", help="leave out the pure build")
    parser.add_argument("--workloads", help="comma-separated subset of the workloads")
    parser.add_argument("--markdown", metavar="PAGE",
                        help="also write the tables into PAGE (docs/performance.md)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return serve_pure(args.location)
    if args.cluster:
        configure()
        from tests.servers import Cluster

        cluster = Cluster()
        from bench.report import pin

        pin([node.process.pid for node in cluster.nodes])
        try:
            chosen, loads = cluster_contenders(cluster.url), cluster_workloads()
            summary = summarize(run(cluster.url, args.rounds, args.seconds, chosen, loads))
            server = f"a 6-node cluster of {server_version(cluster.url)}"
        finally:
            cluster.stop()
        tables = [report(chosen, loads, summary,
                         baseline="django-valkey 0.4 ClusterValkeyCache")]
    else:
        with server_location(args.location) as location:
            configure(location)
            loads = workloads()
            if args.workloads:
                loads = {name: loads[name] for name in args.workloads.split(",")}
            chosen = contenders(location, pure=not args.no_pure)
            counter = ConnectionCounter(location)
            try:
                summary = summarize(run(location, args.rounds, args.seconds, chosen, loads,
                                        counter))
                server = server_version(location)
            finally:
                for contender in chosen.values():
                    contender.close()
        tables = [report(chosen, loads, summary, peaks=counter.peaks)]
        if PER_REQUEST in loads and "get 100B" in loads:
            tables.append(per_request_report(chosen, summary))
    print("\n\n".join(tables))
    if args.markdown:
        from bench.report import environment, write_section

        write_section(args.markdown, "cluster" if args.cluster else "sync",
                      environment(server, args.rounds) + "\n\n" + "\n\n".join(tables))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({f"{w} | {n}": v for (w, n), v in summary.items()}, handle, indent=1)


if __name__ == "__main__":
    main()
