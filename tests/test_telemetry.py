"""Telemetry (OPTIONS["OPENTELEMETRY"], OPTIONS["PROMETHEUS"]) with the real
OpenTelemetry SDK (in-memory exporters) and a real Prometheus /metrics endpoint
scraped over HTTP, against a real server.

Invariants protected: one CLIENT span and one duration per cache operation a caller
asked for (sync and async), never one per internal call; failures are reported even
when IGNORE_EXCEPTIONS hides them from the caller; keys are recorded only on request;
``suppress_instrumentation`` is honoured; with telemetry off the client is untouched.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request

import pytest
from django.core.exceptions import ImproperlyConfigured
from opentelemetry import context, metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from django_valkey_fast.cache import ValkeyCache
from django_valkey_fast.client import DefaultClient
from django_valkey_fast.exceptions import ConnectionInterrupted, MissingDependency
from tests.servers import free_port

_SPANS = InMemorySpanExporter()
_READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def providers():
    """The process's OpenTelemetry providers (set once: the API allows one)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_SPANS))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    yield


@pytest.fixture
def spans():
    _SPANS.clear()
    return _SPANS


def cache_with(server_url, **options):
    """A backend on a configuration of its own (a prefix per call)."""
    return ValkeyCache(server_url, {"OPTIONS": options,
                                    "KEY_PREFIX": f"tel{time.monotonic_ns()}"})


def durations(operation: str) -> list:
    """The db.client.operation.duration data points of ``operation``."""
    found = []
    data = _READER.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != "db.client.operation.duration":
                    continue
                assert metric.unit == "s"
                found += [point for point in metric.data.data_points
                          if point.attributes.get("db.operation.name") == operation]
    return found


def test_off_by_default_leaves_the_client_as_it_is(server):
    cache = cache_with(server.url)
    cache.get("k")
    assert type(cache.client) is DefaultClient


def test_a_client_span_per_operation_with_the_database_attributes(server, spans):
    cache = cache_with(server.url, OPENTELEMETRY=True)
    cache.set("a", 1)
    assert cache.get("a") == 1
    assert cache.get("missing") is None
    cache.get_many(["a", "missing"])
    (set_span, hit, miss, many) = spans.get_finished_spans()
    assert [s.name for s in (set_span, hit, miss, many)] == ["set", "get", "get", "get_many"]
    for span in (set_span, hit, miss, many):
        assert span.kind is SpanKind.CLIENT
        attributes = dict(span.attributes)
        assert attributes["db.system.name"] == "redis"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == server.port
        assert attributes["db.namespace"] == "0"
        assert attributes["db.operation.name"] == span.name
        assert not any("key" in name for name in attributes)  # keys are not recorded
    assert hit.attributes["cache.hit"] is True and miss.attributes["cache.hit"] is False
    assert many.attributes["db.operation.batch.size"] == 2
    assert "db.operation.batch.size" not in set_span.attributes


def test_async_operations_are_measured_alike(server, spans):
    cache = cache_with(server.url, OPENTELEMETRY=True)

    async def scenario():
        with trace.get_tracer("test").start_as_current_span("view") as view:
            await cache.aset("a", 1)
            assert await cache.aget("a") == 1
            assert await cache.aget("nope", "fallback") == "fallback"
        return view

    view = asyncio.run(scenario())
    *operations, outer = spans.get_finished_spans()
    assert outer is not None and [s.name for s in operations] == ["set", "get", "get"]
    assert [s.attributes.get("cache.hit") for s in operations] == [None, True, False]
    assert all(s.parent.span_id == view.get_span_context().span_id for s in operations)


def test_an_operation_that_calls_others_is_one_span(server, spans):
    """The herd client's get_or_set runs the client's own get and set: one span."""
    cache = cache_with(server.url, OPENTELEMETRY=True,
                       CLIENT_CLASS="django_valkey_fast.client.HerdClient")
    assert cache.get_or_set("v", lambda: 1) == 1
    assert [s.name for s in spans.get_finished_spans()] == ["get_or_set"]

    async def async_side():
        return await cache.aget_or_set("w", lambda: 2)

    assert asyncio.run(async_side()) == 2
    assert [s.name for s in spans.get_finished_spans()] == ["get_or_set"] * 2
    # Another alias used by the value's function is measured, as its own operation.
    other = cache_with(server.url, OPENTELEMETRY=True)
    spans.clear()
    assert cache.get_or_set("z", lambda: other.get("elsewhere", 3)) == 3
    assert sorted(s.name for s in spans.get_finished_spans()) == ["get", "get_or_set"]


def test_the_duration_histogram_per_operation(server):
    cache = cache_with(server.url, OPENTELEMETRY=True)
    before = sum(point.count for point in durations("touch"))
    cache.touch("x")
    cache.touch("x")
    points = durations("touch")
    assert sum(point.count for point in points) - before == 2
    point = points[0]
    assert point.attributes["db.system.name"] == "redis"
    assert point.attributes["server.port"] == server.port
    assert point.sum > 0


def test_keys_are_recorded_only_when_asked(server, spans):
    cache = cache_with(server.url, OPENTELEMETRY={"RECORD_KEYS": True})
    cache.get("visible")
    cache.get_many(["one", "two"])
    cache.get_many(key for key in ["lazy"])  # (an iterator is not read twice)
    first, second, third = spans.get_finished_spans()
    assert first.attributes["cache.keys"] == ("visible",)
    assert second.attributes["cache.keys"] == ("one", "two")
    assert third.attributes["cache.keys"] == ()


def test_failures_are_reported_even_when_ignored(spans):
    dead = f"valkey://127.0.0.1:{free_port()}/0"
    raising = cache_with(dead, OPENTELEMETRY=True, SOCKET_CONNECT_TIMEOUT=0.5)
    with pytest.raises(ConnectionInterrupted):
        raising.get("k")
    ignoring = cache_with(dead, OPENTELEMETRY=True, IGNORE_EXCEPTIONS=True,
                          SOCKET_CONNECT_TIMEOUT=0.5)
    assert ignoring.get("k", "fallback") == "fallback"
    raised, ignored = spans.get_finished_spans()
    for span in (raised, ignored):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"]
        assert "cache.hit" not in span.attributes
        assert any(event.name == "exception" for event in span.events)


def test_suppress_instrumentation_is_honoured(server, spans):
    cache = cache_with(server.url, OPENTELEMETRY=True)
    token = context.attach(context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        cache.get("quiet")
    finally:
        context.detach(token)
    cache.get("loud")
    assert [s.name for s in spans.get_finished_spans()] == ["get"]


def scrape(port: int) -> dict:
    """``{sample line name with labels: value}`` from a real /metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@pytest.fixture(scope="module")
def metrics_port():
    from prometheus_client import start_http_server

    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    yield port
    server.shutdown()


def test_prometheus_counters_under_django_prometheus_names(server, metrics_port):
    cache = cache_with(server.url, PROMETHEUS=True)
    label = '{backend="django_valkey_fast"}'
    before = scrape(metrics_port)
    cache.set("p", 1)
    cache.get("p")
    cache.get("absent")

    async def async_side():
        await cache.aget("p")

    asyncio.run(async_side())
    ignoring = cache_with(f"valkey://127.0.0.1:{free_port()}/0", PROMETHEUS=True,
                          IGNORE_EXCEPTIONS=True, SOCKET_CONNECT_TIMEOUT=0.5)
    ignoring.get("k")
    after = scrape(metrics_port)

    def grew(name):
        return after.get(name + label, 0) - before.get(name + label, 0)

    assert grew("django_cache_get_total") == 4  # get and aget alike
    assert grew("django_cache_get_hits_total") == 2
    assert grew("django_cache_get_misses_total") == 1
    assert grew("django_cache_get_fail_total") == 1
    count = 'django_valkey_fast_operation_duration_seconds_count{operation="set",outcome="ok"}'
    assert after[count] - before.get(count, 0) == 1


def test_bad_settings_and_missing_libraries_are_clear_errors(server, monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="OPENTELEMETRY"):
        cache_with(server.url, OPENTELEMETRY="yes").get("k")
    with pytest.raises(ImproperlyConfigured, match="unknown PROMETHEUS settings"):
        cache_with(server.url, PROMETHEUS={"PORT": 9100}).get("k")
    for name in [m for m in sys.modules if m == "prometheus_client"
                 or m.startswith("prometheus_client.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependency, match=r"pip install 'django-valkey-fast\[prometheus\]'"):
        cache_with(server.url, PROMETHEUS=True).get("k")


def test_async_valkey_cache_is_measured_too(server, spans):
    from django_valkey_fast.async_cache.cache import AsyncValkeyCache

    cache = AsyncValkeyCache(server.url, {"OPTIONS": {"OPENTELEMETRY": True},
                                          "KEY_PREFIX": f"tel{time.monotonic_ns()}"})

    async def scenario():
        await cache.set("a", 1)
        return await cache.get("a")

    assert asyncio.run(scenario()) == 1
    assert [(s.name, s.attributes.get("cache.hit")) for s in spans.get_finished_spans()] == [
        ("set", None), ("get", True)]


def test_django_prometheus_counters_are_shared_when_it_is_installed(server, metrics_port):
    """With django-prometheus installed (the dev extra), its own counter objects are
    the ones incremented: one set of names in the registry, dashboards unchanged."""
    from django_prometheus.cache import metrics as peer

    from django_valkey_fast.client.prometheus_metrics import _metrics

    assert _metrics()["get"] is peer.django_cache_get_total
    cache = cache_with(server.url, PROMETHEUS=True)
    label = '{backend="django_valkey_fast"}'
    before = scrape(metrics_port).get("django_cache_get_total" + label, 0)
    cache.get("shared")
    assert scrape(metrics_port)["django_cache_get_total" + label] == before + 1


def test_own_counters_with_django_prometheus_absent(server):
    """Without django-prometheus (a process that cannot import it), the counters are
    this package's own, under the same names."""
    script = f"""
import sys
sys.modules["django_prometheus"] = None
import django
from django.conf import settings
settings.configure(CACHES={{"default": {{
    "BACKEND": "django_valkey_fast.cache.ValkeyCache", "LOCATION": "{server.url}",
    "OPTIONS": {{"PROMETHEUS": True}}}}}})
django.setup()
from django.core.cache import caches
caches["default"].get("absent-peer")
from prometheus_client import generate_latest
print(generate_latest().decode())
"""
    output = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                            text=True, timeout=60).stdout
    assert 'django_cache_get_total{backend="django_valkey_fast"} 1.0' in output
    assert 'django_cache_get_misses_total{backend="django_valkey_fast"} 1.0' in output
