"""A hot key under load, expiring again and again: how many times the value is computed
(the "database calls") and how long callers wait, with Django's own ``get_or_set`` on
this package's default client, the herd client (single-flight), and the herd client
with early recomputation (``OPTIONS["EARLY_RECOMPUTE_BETA"]``, the XFetch rule).

Eight threads call ``get_or_set(key, compute, timeout=TIMEOUT)`` in a loop; ``compute``
sleeps 50 ms (a slow query). ``CACHE_HERD_TIMEOUT`` is 1 s, so a herd value outlives
its refresh time by a second. (The herd format stores the refresh time in whole
seconds, as django-valkey does: a value set at 10.9 s with a 3 s timeout is due at 13.)
One valkey-server, started here.

    bash scripts/bench.sh --herd [--seconds 6] [--markdown docs/performance.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.run import server_location, server_version  # noqa: E402

COMPUTE = 0.05
THREADS = 8
TIMEOUT = 3
CONTENDERS = {
    "default client (Django's get_or_set)": {},
    "HerdClient (single-flight)": {"CLIENT_CLASS": "django_valkey_fast.client.HerdClient"},
    "HerdClient, EARLY_RECOMPUTE_BETA=1": {
        "CLIENT_CLASS": "django_valkey_fast.client.HerdClient", "EARLY_RECOMPUTE_BETA": 1.0},
}


def run(cache, seconds: float) -> dict:
    """Threads hammering one key: computations, calls, and call durations."""
    computed = []
    durations: list = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def compute():
        time.sleep(COMPUTE)
        computed.append(1)
        return {"rows": list(range(20)), "at": time.time()}

    def worker():
        mine = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            cache.get_or_set("hot-query", compute, TIMEOUT)
            mine.append(time.perf_counter() - started)
        with lock:
            durations.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    durations.sort()
    return {"computations": len(computed), "calls": len(durations),
            "waited": sum(1 for d in durations if d >= COMPUTE / 2),
            "p99_ms": durations[int(len(durations) * 0.99)] * 1000,
            "max_ms": durations[-1] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--location", default=None)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    import django
    from django.conf import settings

    settings.configure(USE_TZ=True, INSTALLED_APPS=[], CACHE_HERD_TIMEOUT=1)
    django.setup()
    from django_valkey_fast.cache import ValkeyCache

    results: dict = {name: [] for name in CONTENDERS}
    with server_location(args.location) as location:
        for round_number in range(args.rounds):
            for name, options in CONTENDERS.items():
                cache = ValkeyCache(location, {"OPTIONS": options,
                                               "KEY_PREFIX": f"herd{round_number}{name[:4]}"})
                results[name].append(run(cache, args.seconds))
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        version = server_version(location)
    from bench.report import environment, write_section

    lines = [environment(version, args.rounds), "",
             f"{THREADS} threads, {args.seconds:g} s per run, timeout {TIMEOUT} s, a 50 ms "
             "computation; "
             "medians over the rounds.", "",
             "| client | computations | per second of load | calls that waited (>= 25 ms) "
             "| p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for name, runs in results.items():
        def median(field):
            return statistics.median(run[field] for run in runs)

        lines.append(f"| {name} | {median('computations'):.0f} | "
                     f"{median('computations') / args.seconds:.1f} | {median('waited'):.0f} "
                     f"of {median('calls'):,.0f} | {median('p99_ms'):.1f} | "
                     f"{median('max_ms'):.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        write_section(args.markdown, "herd", text)


if __name__ == "__main__":
    main()
