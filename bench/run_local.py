"""The client-side cache benchmark: hot keys and a 90/10 read/write mix, in one run.

Contenders, each a cache alias on one valkey-server this script starts: this package
with ``OPTIONS["CLIENT_SIDE_CACHE"]`` on and without it, django-valkey, django-redis
and Django's ``RedisCache``. Workloads:

- **hot get**: ``get`` of one 100-byte value, and **hot aget**, one in flight (against
  django-valkey's AsyncValkeyCache; the others' ``aget`` is Django's, in a thread); with
  the local cache on, a hit costs no I/O.
- **90/10 mix**: nine ``get`` for one ``set`` over ten hot keys, while **another
  process** writes those keys a few hundred times a second: the local cache's hits are
  cut by invalidations, its own writes and the writer's.

Rounds interleave the contenders in shuffled order; the table gives medians, ops/s and
client CPU microseconds per operation, and ratios to django-valkey.

    bash scripts/bench.sh --local          # or: .venv/bin/python bench/run_local.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.run import VALUE_100, server_location, server_version  # noqa: E402

BASELINE = "django-valkey 0.4"
ASYNC_BASELINE = "django-valkey 0.4 AsyncValkeyCache"
LOCAL = "django-valkey-fast, CLIENT_SIDE_CACHE on"
SYNC, ASYNC_ONLY = "sync", "async only"
# name -> (alias, BACKEND, OPTIONS, speaks redis://, kind): a "sync" backend runs get (and
# its aget if it has one); an "async only" one (AsyncValkeyCache) only the async workload.
ALIASES = {
    LOCAL: ("local", "django_valkey_fast.cache.ValkeyCache",
            {"CLIENT_SIDE_CACHE": {}}, False, SYNC),
    "django-valkey-fast": ("fast", "django_valkey_fast.cache.ValkeyCache", {}, False, SYNC),
    BASELINE: ("dv", "django_valkey.cache.ValkeyCache", {}, False, SYNC),
    ASYNC_BASELINE: ("dv-async", "django_valkey.async_cache.cache.AsyncValkeyCache", {},
                     False, ASYNC_ONLY),
    "django-redis": ("dr", "django_redis.cache.RedisCache", {}, True, SYNC),
    "Django RedisCache": ("builtin", "django.core.cache.backends.redis.RedisCache", {}, True,
                          SYNC),
}
BASELINES = {"hot get": BASELINE, "hot aget": ASYNC_BASELINE, "90/10 mix": BASELINE}
HOT = [f"hot{i}" for i in range(10)]

# The writer process: SETs the hot keys (as Django's default KEY_FUNCTION names them)
# at a steady rate until its stdin closes.
SET = """
import socket, sys, threading, time
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def set_(key, value):
    sock.sendall(b"*3\\r\\n$3\\r\\nSET\\r\\n$%d\\r\\n%s\\r\\n$%d\\r\\n%s\\r\\n"
                 % (len(key), key, len(value), value))
    sock.recv(100)
"""
WRITER = SET + """
value = bytes.fromhex(sys.argv[3])
rate = float(sys.argv[2])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
n = 0
while not stop.is_set():
    set_(b":1:hot%d" % (n % 10), value)
    n += 1
    time.sleep(1 / rate)
"""


# A writer driven line by line: for each key=value on stdin it SETs the (pickled,
# by the caller) value and prints the monotonic time its acknowledgement arrived
# (CLOCK_MONOTONIC: one clock for every process of the machine).
PROBE = SET + """
for line in sys.stdin:
    key, value = line.split()
    set_(key.encode(), bytes.fromhex(value))
    print(time.monotonic(), flush=True)
"""


def invalidation_delays(cache, port: str, samples: int) -> list:
    """Seconds from another process's write being acknowledged to this process's
    ``get`` returning the new value, the old one being kept locally each time."""
    probe = subprocess.Popen([sys.executable, "-c", PROBE, port], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    delays = []
    try:
        for n in range(samples):
            cache.set("probe", n)
            while cache.get("probe") != n:
                pass
            for _ in range(3):
                cache.get("probe")  # (kept, and served locally)
            probe.stdin.write(f":1:probe {str(n + 1).encode().hex()}\n")
            probe.stdin.flush()
            while cache.get("probe") != n + 1:
                pass
            seen = time.monotonic()
            acknowledged = float(probe.stdout.readline())
            delays.append(max(0.0, seen - acknowledged))
    finally:
        probe.stdin.close()
        probe.wait(10)
    return delays


def configure(location):
    import django
    from django.conf import settings

    caches = {}
    for alias, backend, options, redis_scheme, _ in ALIASES.values():
        url = location.replace("valkey://", "redis://") if redis_scheme else location
        if alias == "dv-async":  # django-valkey keys its process-wide pools by URL only:
            url = url.replace("127.0.0.1", "localhost")  # not its ValkeyCache's sync pool
        # A client name per alias: django-valkey keys its pools by their settings, and
        # would hand its sync ValkeyCache's pool to its AsyncValkeyCache on the same URL.
        named = ({"client_name": f"bench-{alias}"} if "django.core" in backend else
                 {"CONNECTION_POOL_KWARGS": {"client_name": f"bench-{alias}"}})
        caches[alias] = {"BACKEND": backend, "LOCATION": url, "OPTIONS": {**options, **named}}
    settings.configure(CACHES=caches, USE_TZ=True, INSTALLED_APPS=[])
    django.setup()


def workloads(cache, kind: str):
    """Name -> one call (a coroutine function for "hot aget")."""
    if kind == ASYNC_ONLY:  # (its get is a coroutine)
        return {"hot aget": lambda: cache.get("hot0")}
    counter = iter(range(1 << 62))

    def mix():
        i = next(counter)
        key = HOT[i % 10]
        if i % 10 == 9:
            cache.set(key, VALUE_100)
        else:
            cache.get(key)

    loads = {"hot get": lambda: cache.get("hot0"), "90/10 mix": mix}
    aget = getattr(cache, "aget", None)  # (django-valkey's ValkeyCache has none)
    if aget is not None:
        loads["hot aget"] = lambda: aget("hot0")
    return loads


_LOOP = asyncio.new_event_loop()


def measure(call, calls: int, is_async: bool):
    """(ops/s, CPU us per op) of ``calls`` calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    if is_async:
        async def run():
            for _ in range(calls):
                await call()
        _LOOP.run_until_complete(run())  # (one loop: django-valkey's pools keep theirs)
    else:
        for _ in range(calls):
            call()
    return calls / (time.perf_counter() - wall), (time.process_time() - cpu) / calls * 1e6


def wait_live(cache, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cache.get("hot0")
        if all(s["live"] for s in cache.client.local_cache_stats().values()):
            return
        time.sleep(0.01)
    raise RuntimeError("the client-side cache's listener never went live")


def run(location, rounds, calls, writer_rate):
    from django.core.cache import caches

    chosen = {name: (caches[alias], kind) for name, (alias, _, _, _, kind) in ALIASES.items()}
    for cache, kind in chosen.values():
        if kind == SYNC:
            cache.set_many({key: VALUE_100 for key in HOT}, timeout=None)
    wait_live(chosen[LOCAL][0])
    port = location.rsplit(":", 1)[1].split("/")[0]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, port, str(writer_rate),
         pickle.dumps(VALUE_100, pickle.HIGHEST_PROTOCOL).hex()],
        stdin=subprocess.PIPE, text=True)
    results: dict = {}
    try:
        for round_number in range(rounds):
            for workload in ("hot get", "hot aget", "90/10 mix"):
                order = list(chosen.items())
                random.shuffle(order)
                for name, (cache, kind) in order:
                    loads = workloads(cache, kind)
                    if workload not in loads:
                        continue
                    n = calls * (10 if name == LOCAL and workload != "90/10 mix" else 1)
                    results.setdefault((workload, name), []).append(
                        measure(loads[workload], n, workload == "hot aget"))
            print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)
    finally:
        writer.stdin.close()
        writer.wait(10)
    stats = chosen[LOCAL][0].client.local_cache_stats()
    delays = invalidation_delays(chosen[LOCAL][0], port, 300)
    return chosen, results, stats, delays


def report(chosen, results, stats, writer_rate, delays):
    lines = ["| workload | backend | ops/s | CPU us/op | ops/s vs django-valkey | "
             "CPU vs django-valkey |", "|---|---|---:|---:|---:|---:|"]
    # (hot aget compares with django-valkey's AsyncValkeyCache, the others with its
    # ValkeyCache)
    for workload in ("hot get", "hot aget", "90/10 mix"):
        base = results[workload, BASELINES[workload]]
        base_ops = statistics.median(r[0] for r in base)
        base_cpu = statistics.median(r[1] for r in base)
        for name in chosen:
            runs = results.get((workload, name))
            if runs is None:
                continue
            ops = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            lines.append(f"| {workload} | {name} | {ops:,.0f} | {cpu:.2f} | "
                         f"{ops / base_ops:.2f}x | {cpu / base_cpu:.2f}x |")
    (counters,) = stats.values()
    lines += ["", f"The writer process set the ten hot keys {writer_rate:.0f} times a second "
              f"throughout. The local cache's counters at the end: {counters['hits']:,} hits, "
              f"{counters['misses']:,} misses, {counters['invalidations']:,} invalidations, "
              f"{counters['flushes']} flushes."]
    delays = sorted(delays)
    lines += ["", f"**How soon another process's write is seen** ({len(delays)} samples: a "
              "value kept and served locally, another process SETs it, this process reads "
              "until it gets the new value; from the writer's acknowledgement to that "
              f"read): median {statistics.median(delays) * 1e3:.2f} ms, 99th percentile "
              f"{delays[int(len(delays) * 0.99) - 1] * 1e3:.2f} ms, "
              f"longest {delays[-1] * 1e3:.2f} ms."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--location", help="use this server instead of starting one")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000, help="calls per batch")
    parser.add_argument("--writer-rate", type=float, default=200.0,
                        help="SETs per second of the writer process")
    parser.add_argument("--markdown", metavar="PAGE",
                        help="also write the table into PAGE (docs/performance.md)")
    args = parser.parse_args()
    with server_location(args.location) as location:
        configure(location)
        chosen, results, stats, delays = run(location, args.rounds, args.calls,
                                             args.writer_rate)
        server = server_version(location)
    table = report(chosen, results, stats, args.writer_rate, delays)
    print(table)
    if args.markdown:
        from bench.report import environment, write_section

        write_section(args.markdown, "local", environment(server, args.rounds) + "\n\n" + table)


if __name__ == "__main__":
    main()
