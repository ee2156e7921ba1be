"""Async side-by-side benchmark: 1 and 50 operations in flight, in one event loop.

Contenders: this package's ValkeyCache (its native ``a*`` methods) and
AsyncValkeyCache, django-valkey's AsyncValkeyCache, django-redis and Django's
RedisCache (whose ``a*`` methods hop to a thread), and the asyncio floor
(``bench.floor.BareProtocol``: a bare protocol, a future per call, no client). All
talk to one server; rounds
interleave every contender in shuffled order. Reported: median ops/s, client CPU
microseconds per op, and the peak number of server connections each one opened.

The **per request** workload is what Django does under ASGI, where its cache handler is
context-local: build the backend from settings (``caches.create_connection``), one
``aget`` (``get`` on an AsyncValkeyCache), then ``close()`` it as Django's
``close_caches`` does at ``request_finished`` (awaited when it is a coroutine
function, as django-valkey's own receiver does).

    bash scripts/bench.sh --async
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.run import VALUE_100, server_location, server_version  # noqa: E402

# name -> (alias, BACKEND, speaks redis://, coroutines under a* names): every contender
# is a cache alias in settings.CACHES, measured warm and built per request.
ALIASES = {
    "django-valkey-fast ValkeyCache": (
        "fast", "django_valkey_fast.cache.ValkeyCache", False, True),
    "django-valkey-fast AsyncValkeyCache": (
        "fast-async", "django_valkey_fast.async_cache.cache.AsyncValkeyCache", False, False),
    "django-valkey 0.4 AsyncValkeyCache": (
        "dv-async", "django_valkey.async_cache.cache.AsyncValkeyCache", False, False),
    "django-redis": ("dr", "django_redis.cache.RedisCache", True, True),
    "Django RedisCache": ("builtin", "django.core.cache.backends.redis.RedisCache", True, True),
}
PER_REQUEST = "per request (build + aget + close)"
FLOOR = "floor (bare asyncio protocol)"

NAMES = {
    "django-valkey-fast ValkeyCache": "dvf-sync-alias",
    "django-valkey-fast AsyncValkeyCache": "dvf-async",
    "django-valkey 0.4 AsyncValkeyCache": "dv-async",
    "django-redis": "django-redis",
    "Django RedisCache": "django-builtin",
    FLOOR: "bench-async-floor",
}


def contenders(location):
    """Name -> (the alias's backend, or the floor; whether its coroutines have a* names)."""
    from django.core.cache import caches

    from bench.floor import BareProtocol

    chosen = {name: (caches[alias], prefixed)
              for name, (alias, _, _, prefixed) in ALIASES.items()}
    chosen[FLOOR] = (BareProtocol(location), True)
    return chosen


def configure_aliases(location):
    """Django settings with a cache alias per contender."""
    import django
    from django.conf import settings

    caches = {}
    for name, (alias, backend, redis_scheme, _) in ALIASES.items():
        url = location.replace("valkey://", "redis://") if redis_scheme else location
        options = ({"client_name": NAMES[name]} if name == "Django RedisCache" else
                   {"CONNECTION_POOL_KWARGS": {"client_name": NAMES[name]}})
        caches[alias] = {"BACKEND": backend, "LOCATION": url, "OPTIONS": options}
    settings.configure(CACHES=caches, USE_TZ=True, INSTALLED_APPS=[])
    django.setup()


def per_request(name: str, prefixed: bool):
    """One request as Django's handler runs it under ASGI: a new backend, one aget, close."""
    import inspect

    from django.core.cache import caches

    alias = ALIASES[name][0]

    async def request():
        cache = caches.create_connection(alias)
        await (cache.aget("small") if prefixed else cache.get("small"))
        if inspect.iscoroutinefunction(cache.close):
            await cache.close()
        else:
            cache.close()

    return request


def operation(cache, prefixed: bool, name: str, contender: str = ""):
    """The coroutine function for workload ``name`` on ``cache``."""
    if name == PER_REQUEST:
        if contender == FLOOR:  # (the floor builds nothing: a request is one aget)
            return lambda: cache.aget("small")
        return per_request(contender, prefixed)
    def method(method_name):
        return getattr(cache, ("a" + method_name) if prefixed else method_name)

    keys10 = [f"many-{i}" for i in range(10)]
    get, set_, get_many, incr = (method(n) for n in ("get", "set", "get_many", "incr"))
    return {
        "aget": lambda: get("small"),
        "aset": lambda: set_("small", VALUE_100),
        "aget_many 10": lambda: get_many(keys10),
        "aincr": lambda: incr("counter"),
    }[name]


WORKLOADS = ("aget", "aset", "aget_many 10", "aincr", PER_REQUEST)


async def prepare(cache, prefixed):
    set_ = getattr(cache, "aset" if prefixed else "set")
    await set_("small", VALUE_100)
    await set_("counter", 1)
    for i in range(10):
        await set_(f"many-{i}", VALUE_100)


async def batch(op, in_flight, total):
    per_worker = max(1, total // in_flight)

    async def worker():
        for _ in range(per_worker):
            await op()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*[worker() for _ in range(in_flight)])
    ops = per_worker * in_flight
    return ops / (time.perf_counter() - wall), (time.process_time() - cpu) / ops * 1e6


async def connections(location):
    import valkey.asyncio

    client = valkey.asyncio.Valkey.from_url(location)
    listing = await client.client_list()
    await client.aclose()
    counts = {}
    for entry in listing:
        counts[entry.get("name", "")] = counts.get(entry.get("name", ""), 0) + 1
    return counts


async def run(location, rounds, total):
    caches = contenders(location)
    for cache, prefixed in caches.values():
        await prepare(cache, prefixed)
    results, peaks = {}, {name: 0 for name in caches}
    for round_number in range(rounds):
        for in_flight in (1, 50):
            for workload in WORKLOADS:
                order = list(caches.items())
                random.shuffle(order)
                for name, (cache, prefixed) in order:
                    op = operation(cache, prefixed, workload, name)
                    n = total if in_flight == 50 else total // 4
                    results.setdefault((in_flight, workload, name), []).append(
                        await batch(op, in_flight, n))
                    counts = await connections(location)
                    peaks[name] = max(peaks[name], counts.get(NAMES[name], 0))
        print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)
    return caches, results, peaks


def report(caches, results, peaks, baseline="django-valkey 0.4 AsyncValkeyCache"):
    lines = ["| in flight | workload | backend | ops/s | CPU us/op | ops/s vs django-valkey "
             "| CPU vs django-valkey | ops/s vs floor | peak connections |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for in_flight in (1, 50):
        for workload in WORKLOADS:
            base = results[in_flight, workload, baseline]
            base_ops = statistics.median(r[0] for r in base)
            base_cpu = statistics.median(r[1] for r in base)
            floor_ops = statistics.median(r[0] for r in results[in_flight, workload, FLOOR])
            for name in caches:
                ops = statistics.median(r[0] for r in results[in_flight, workload, name])
                cpu = statistics.median(r[1] for r in results[in_flight, workload, name])
                lines.append(f"| {in_flight} | {workload} | {name} | {ops:,.0f} | {cpu:.1f} | "
                             f"{ops / base_ops:.2f}x | {cpu / base_cpu:.2f}x | "
                             f"{ops / floor_ops:.2f}x | {peaks[name]} |")
    lines += ["", "| backend | per request CPU us | warm aget CPU us | per request / warm aget |",
              "|---|---:|---:|---:|"]
    for name in caches:
        if name == FLOOR:
            continue
        request = statistics.median(r[1] for r in results[1, PER_REQUEST, name])
        warm = statistics.median(r[1] for r in results[1, "aget", name])
        lines.append(f"| {name} | {request:.1f} | {warm:.1f} | {request / warm:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--location")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=2000, help="operations per batch at 50")
    parser.add_argument("--markdown", metavar="PAGE",
                        help="also write the table into PAGE (docs/performance.md)")
    args = parser.parse_args()
    with server_location(args.location) as location:
        configure_aliases(location)
        caches, results, peaks = asyncio.run(run(location, args.rounds, args.ops))
        server = server_version(location)
    table = report(caches, results, peaks)
    print(table)
    if args.markdown:
        from bench.report import environment, write_section

        write_section(args.markdown, "async", environment(server, args.rounds) + "\n\n" + table)


if __name__ == "__main__":
    main()
