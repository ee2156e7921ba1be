"""Prometheus metrics of the cache (``OPTIONS["PROMETHEUS"]``), in the default
registry: django-prometheus's cache counters, under its names and ``backend`` label
(its own objects when it is installed, so both can run and dashboards keep working),
counting ``aget`` as well as ``get``; and a histogram of every operation's duration.
"""

from __future__ import annotations

import threading

__all__ = ["BACKEND_LABEL", "PrometheusMetrics"]

BACKEND_LABEL = "django_valkey_fast"
_lock = threading.Lock()
_shared: dict = {}


def _metrics() -> dict:
    """The metric objects, made once per process."""
    with _lock:
        if _shared:
            return _shared
        from prometheus_client import Counter, Histogram

        try:  # django-prometheus's own counters, when it is installed
            from django_prometheus.cache import metrics as peer

            counters = {"get": peer.django_cache_get_total, "hit": peer.django_cache_hits_total,
                        "miss": peer.django_cache_misses_total,
                        "fail": peer.django_cache_get_fail_total}
        except ImportError:
            counters = {
                "get": Counter("django_cache_get_total", "Total get requests on cache",
                               ["backend"]),
                "hit": Counter("django_cache_get_hits_total", "Total hits on cache",
                               ["backend"]),
                "miss": Counter("django_cache_get_misses_total", "Total misses on cache",
                                ["backend"]),
                "fail": Counter("django_cache_get_fail_total",
                                "Total get request failures by cache", ["backend"]),
            }
        counters["duration"] = Histogram(
            "django_valkey_fast_operation_duration_seconds",
            "Duration of django-valkey-fast cache operations (sync and async)",
            ["operation", "outcome"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                     0.1, 0.25, 0.5, 1.0, 2.5))
        _shared.update(counters)
        return _shared


class PrometheusMetrics:
    """Records operations in the process's Prometheus metrics."""

    def __init__(self):
        metrics = _metrics()
        self._gets = metrics["get"].labels(backend=BACKEND_LABEL)
        self._hits = metrics["hit"].labels(backend=BACKEND_LABEL)
        self._misses = metrics["miss"].labels(backend=BACKEND_LABEL)
        self._fails = metrics["fail"].labels(backend=BACKEND_LABEL)
        self._duration = metrics["duration"]
        self._children: dict = {}

    def observe(self, operation: str, seconds: float, error, hit) -> None:
        """One operation (``get`` for ``get`` and ``aget``), its duration, its outcome."""
        outcome = "ok" if error is None else "error"
        child = self._children.get((operation, outcome))
        if child is None:
            child = self._children[(operation, outcome)] = self._duration.labels(
                operation=operation, outcome=outcome)
        child.observe(seconds)
        if operation == "get":
            self._gets.inc()
            if error is not None:
                self._fails.inc()
            elif hit:
                self._hits.inc()
            else:
                self._misses.inc()
