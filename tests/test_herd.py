"""Herd clients: django-valkey's format both ways, incr/decr, and single-flight stampedes."""

import asyncio
import threading
import time
from collections import OrderedDict

import pytest
from django.test import override_settings

from django_valkey_fast.async_cache.cache import AsyncValkeyCache
from django_valkey_fast.cache import ValkeyCache

HERD = {"CLIENT_CLASS": "django_valkey_fast.client.HerdClient"}
ASYNC_HERD = {"CLIENT_CLASS": "django_valkey_fast.async_cache.client.AsyncHerdClient"}


@pytest.fixture
def herd(server):
    with override_settings(CACHE_HERD_TIMEOUT=1):
        yield ValkeyCache(server.url, {"OPTIONS": dict(HERD)})


def test_reads_and_writes_django_valkeys_herd_values(server):
    from django_valkey.cache import ValkeyCache as PeerCache

    peer = PeerCache(server.url, {"OPTIONS": {"CLIENT_CLASS": "django_valkey.client.HerdClient"}})
    ours = ValkeyCache(server.url, {"OPTIONS": dict(HERD)})
    for value in ({"a": [1, 2]}, "text", 42, 1.5):
        peer.set("from-peer", value, 100)
        assert ours.get("from-peer") == value
        ours.set("from-us", value, 100)
        assert peer.get("from-us") == value
    raw = ours.client.get_client()
    assert raw.get(":1:from-us") == b"1.5" and raw.ttl(":1:from-us") <= 100  # numbers raw
    ours.set("packed-by-us", {"x": 1}, 100)
    assert 100 + 60 - 2 <= raw.ttl(":1:packed-by-us") <= 160  # CACHE_HERD_TIMEOUT added
    peer.set("packed", {"x": 1}, 100)
    assert b"django_valkey.base_client" in raw.get(":1:packed")


def test_stale_values_read_as_missing_but_stay_stored(herd):
    # (2 s: the stored refresh time is in whole seconds, int(now) + timeout; the key
    # lives 1 s more, CACHE_HERD_TIMEOUT)
    herd.set("k", "old", 2)
    written = time.monotonic()
    assert herd.get("k") == "old"
    while herd.get("k", "recompute") != "recompute":  # past the timeout, in the herd window
        assert time.monotonic() < written + 10, "never stale"
        time.sleep(0.05)
    assert time.monotonic() - written > 0.9  # (due at int(time of the write) + 2)
    assert herd.get_many(["k"]) == {}
    assert herd.client.get_client().exists(":1:k") == 1  # others may still be served it


def test_no_timeout_and_many(herd):
    herd.set("forever", "v", None)
    assert herd.ttl("forever") is None and herd.get("forever") == "v"
    assert herd.set_many({"a": 1, "b": "two"}, 30) == []
    assert herd.get_many(["a", "b", "c"]) == {"a": 1, "b": "two"}
    assert herd.touch("b", 100) is True and herd.ttl("b") > 90
    assert herd.touch("missing") is False


def test_incr_and_decr_work(server, herd):
    herd.set("n", 10, 100)
    assert herd.incr("n", 5) == 15 and herd.decr("n") == 14
    assert herd.ttl("n") > 90
    from django_valkey.cache import ValkeyCache as PeerCache

    peer = PeerCache(server.url, {"OPTIONS": {"CLIENT_CLASS": "django_valkey.client.HerdClient"}})
    peer.set("packed-n", 7, 100)  # django-valkey packs numbers too
    assert herd.incr("packed-n", 3) == 10
    assert peer.get("packed-n") == 10 and herd.ttl("packed-n") > 90


def test_stampede_recomputes_once_across_threads(herd):
    herd.set("report", "old", 1)
    time.sleep(1.2)
    computations = []
    start = threading.Barrier(16)
    results = []

    def compute():
        computations.append(1)
        time.sleep(0.2)  # slow enough for every caller to pile up
        return "fresh"

    def caller():
        start.wait()
        results.append(herd.get_or_set("report", compute, 30))

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(computations) == 1
    assert results == ["fresh"] * 16
    assert herd.get("report") == "fresh"


@pytest.mark.parametrize("backend, options", [(ValkeyCache, HERD), (AsyncValkeyCache, ASYNC_HERD)])
def test_stampede_recomputes_once_across_tasks(server, backend, options):
    with override_settings(CACHE_HERD_TIMEOUT=1):
        cache = backend(server.url, {"OPTIONS": dict(options)})
        get_or_set = cache.aget_or_set
        computations = []

        def compute():
            computations.append(1)
            return "fresh"

        async def scenario():
            await cache.aset("report", "old", 1)
            await asyncio.sleep(1.2)

            async def caller():
                return await get_or_set("report", compute, 30)

            return await asyncio.gather(*[caller() for _ in range(50)])

        assert asyncio.run(scenario()) == ["fresh"] * 50
        assert len(computations) == 1


def test_missing_key_is_computed_once(herd):
    calls = []
    assert herd.get_or_set("new", lambda: calls.append(1) or "v", 30) == "v"
    assert herd.get_or_set("new", lambda: calls.append(1) or "w", 30) == "v"
    assert calls == [1]


def test_marker_without_django_valkey_installed(server):
    """Without django-valkey, herd values still pickle under its marker name and read back
    here, and a django-valkey process reads them too."""
    import os
    import subprocess
    import sys

    script = f"""
import importlib.abc, sys

class NoDjangoValkey(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "django_valkey" or name.startswith("django_valkey."):
            raise ModuleNotFoundError(name)

sys.meta_path.insert(0, NoDjangoValkey())
import django
from django.conf import settings
settings.configure(CACHES={{}})
django.setup()
from django_valkey_fast.cache import ValkeyCache
cache = ValkeyCache("{server.url}", {{"OPTIONS": {{"CLIENT_CLASS": "django_valkey_fast.client.HerdClient"}}}})
cache.set("shim", {{"made": "without django-valkey"}}, 100)
assert cache.get("shim") == {{"made": "without django-valkey"}}
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.stdout.strip() == "ok", result.stderr
    from django_valkey.cache import ValkeyCache as PeerCache

    peer = PeerCache(server.url, {"OPTIONS": {"CLIENT_CLASS": "django_valkey.client.HerdClient"}})
    assert peer.get("shim") == {"made": "without django-valkey"}


# -- early recomputation (XFetch) ------------------------------------------------------


def test_early_recompute_follows_the_xfetch_distribution():
    """Seeded: the share of readers that recompute ``gap`` seconds before the refresh
    time is exp(-gap / (delta * beta)), for a value that took ``delta`` to compute;
    nothing is recomputed early before a duration is known or without a refresh time."""
    import math
    import random

    from django_valkey_fast.herd import EarlyRecompute

    for beta in (1.0, 2.0):
        early = EarlyRecompute(beta, random.Random(1234).random, durations=OrderedDict())
        assert not early.due("k", 100.0, 99.9)  # (never computed here: no delta)
        early.computed("k", 0.5)
        assert not early.due("k", None, 99.9)  # (not a herd-packed value)
        for gap in (0.05, 0.25, 0.5, 1.0, 2.0):
            draws = 20_000
            share = sum(early.due("k", 100.0, 100.0 - gap) for _ in range(draws)) / draws
            expected = math.exp(-gap / (0.5 * beta))
            assert abs(share - expected) < 0.012, (beta, gap, share, expected)
        assert early.due("k", 100.0, 100.0)  # (at the refresh time: always)


def test_early_recompute_durations_are_bounded():
    from django_valkey_fast.herd import EarlyRecompute

    early = EarlyRecompute(1.0, durations=OrderedDict())
    for index in range(EarlyRecompute.MAX_KEYS + 10):
        early.computed(f"k{index}", 0.1)
    assert len(early._durations) == EarlyRecompute.MAX_KEYS
    assert "k0" not in early._durations and f"k{EarlyRecompute.MAX_KEYS + 9}" in early._durations


@pytest.mark.parametrize("backend, options", [(ValkeyCache, HERD), (AsyncValkeyCache, ASYNC_HERD)])
def test_a_reader_refreshes_early_while_the_value_is_still_served(server, backend, options):
    """A value read near its refresh time (the random draw forced) is recomputed and
    stored by that reader, in the herd format; a reader that finds the refresh under
    way is served the current value at once; with the option off, never early."""
    import random

    cache = backend(server.url, {"KEY_PREFIX": f"early{time.monotonic_ns()}",
                                 "OPTIONS": dict(options, EARLY_RECOMPUTE_BETA=1.0)})
    calls = []

    def compute():  # (a str: numbers are stored raw, with no refresh time to be early for)
        calls.append(1)
        return f"v{len(calls)}"

    async def run(call):
        return await call

    def settle(value):
        return asyncio.run(run(value)) if asyncio.iscoroutine(value) else value

    get_or_set = cache.get_or_set
    assert settle(get_or_set("hot", compute, 100)) == "v1"
    early = cache.client._early
    early._random = lambda: 0.0  # (-ln(1) = 0: not early while the refresh is 100 s away)
    assert settle(get_or_set("hot", compute, 100)) == "v1" and calls == [1]
    early.computed(cache.make_key("hot"), 10.0)  # (as if computing it took 10 s)
    early._random = lambda: 1.0 - 1e-6  # (10 s * -ln(1e-6) = 138 s: the refresh is due)
    assert settle(get_or_set("hot", compute, 100)) == "v2"  # this reader refreshed it
    assert settle(cache.get("hot")) == "v2"  # stored, for every reader
    raw = __import__("valkey").Valkey.from_url(server.url)
    assert b"django_valkey.base_client" in raw.get(cache.make_key("hot"))  # the herd format
    if backend is ValkeyCache:
        from django_valkey_fast.client.herd import SingleFlight

        lock = SingleFlight.lock_for(cache.make_key("hot"))
        with lock:  # another caller is refreshing it: served the current value, no wait
            assert get_or_set("hot", compute, 100) == "v2" and calls == [1, 1]
    off = backend(server.url, {"KEY_PREFIX": cache.key_prefix, "OPTIONS": dict(options)})
    assert off.client._early is None
    assert settle(off.get_or_set("hot", compute, 100)) == "v2" and len(calls) == 2


@pytest.mark.parametrize("beta", [0, -1, "1", True])
def test_a_bad_beta_is_a_clear_error(server, beta):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="EARLY_RECOMPUTE_BETA"):
        ValkeyCache(server.url, {"OPTIONS": dict(HERD, EARLY_RECOMPUTE_BETA=beta)}).get("k")
