"""Telemetry of cache operations, per alias: OpenTelemetry spans and the
``db.client.operation.duration`` histogram (``OPTIONS["OPENTELEMETRY"]``), and
Prometheus counters with django-prometheus's names (``OPTIONS["PROMETHEUS"]``).

Off by default, and then nothing here runs: the client is of its own class. On, the
client's class becomes a subclass (made once per class and configuration) whose cache
operations (``get``, ``aget``, ``set_many``...) wrap the class's and measure them; one
record per operation a caller asked for, whatever it sends (an operation that calls
another, as the herd client's ``get_or_set`` calls ``get`` and ``set``, is one
record). See docs/observability.md.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import time
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

from django_valkey_fast.exceptions import MissingDependency
from django_valkey_fast.measured import current as _current

__all__ = ["OPERATIONS", "Telemetry", "telemetry_for", "telemetry_options"]

# The cache operations measured (sync names; each ``a`` twin too): Django's cache API
# and django-valkey's extended one.
OPERATIONS = (
    "get", "set", "add", "delete", "get_many", "set_many", "delete_many", "has_key",
    "incr", "decr", "touch", "clear", "get_or_set", "incr_version", "decr_version",
    "ttl", "pttl", "persist", "expire", "pexpire", "expire_at", "pexpire_at", "keys",
    "delete_pattern", "mget", "mset", "hset", "hget", "hdel", "hlen", "hkeys", "hexists",
    "sadd", "scard", "sdiff", "sdiffstore", "sinter", "sinterstore", "smismember",
    "sismember", "smembers", "smove", "spop", "srandmember", "srem", "sunion", "sunionstore",
)
# Operations whose first argument is a collection of keys (a mapping for set_many).
_MANY = frozenset({"get_many", "set_many", "delete_many", "mget", "mset"})
_GETS = frozenset({"get", "aget"})

def telemetry_options(options: dict) -> tuple:
    """``(OPENTELEMETRY settings, PROMETHEUS settings)`` checked and completed from
    OPTIONS, each None when off; ImproperlyConfigured for a bad value."""
    return (_flag_or_dict(options, "OPENTELEMETRY", {"RECORD_KEYS": False}),
            _flag_or_dict(options, "PROMETHEUS", {}))


def telemetry_for(options: dict, server: str) -> Telemetry | None:
    """The configuration's telemetry from its OPTIONS (None when it is off)."""
    otel, prometheus = telemetry_options(options)
    if otel is None and prometheus is None:
        return None
    return Telemetry(server, otel, prometheus)


def _flag_or_dict(options: dict, name: str, defaults: dict) -> dict | None:
    given = options.get(name)
    if given is None or given is False:
        return None
    if given is True:
        given = {}
    if not isinstance(given, dict):
        raise ImproperlyConfigured(f"OPTIONS['{name}'] is True or a dict of settings, "
                                   f"not {type(given).__name__}")
    unknown = set(given) - set(defaults)
    if unknown:
        raise ImproperlyConfigured(f"unknown {name} settings {sorted(unknown)}; "
                                   f"known: {sorted(defaults)}")
    return dict(defaults, **given)


class _Record:
    """One operation being measured, of client ``owner``."""

    __slots__ = ("owner", "name", "started", "span", "token", "error")

    def __init__(self, owner, name: str, started: float, span, token):
        self.owner = owner
        self.name = name
        self.started = started
        self.span = span
        self.token = token
        self.error: BaseException | None = None


class Telemetry:
    """What one configuration records, and the wrappers that record it."""

    def __init__(self, server: str, otel: dict | None, prometheus: dict | None):
        url = urlparse(server.split(",")[0].strip())
        self.attributes: dict = {"db.system.name": "redis"}
        if url.scheme == "unix" or (url.path and not url.hostname):
            self.attributes["server.address"] = url.path
        else:
            self.attributes["server.address"] = url.hostname or "localhost"
            self.attributes["server.port"] = url.port or 6379
            database = url.path.strip("/") or "0"
            if database.isdigit():
                self.attributes["db.namespace"] = database
        self.record_keys = bool(otel and otel["RECORD_KEYS"])
        self._tracer = self._duration = None
        if otel is not None:
            version = _package_version()
            trace = _library("opentelemetry.trace", "OPTIONS['OPENTELEMETRY']",
                             "opentelemetry-api", "otel")
            metrics = _library("opentelemetry.metrics", "OPTIONS['OPENTELEMETRY']",
                               "opentelemetry-api", "otel")
            self._trace = trace
            self._context = _library("opentelemetry.context", "OPTIONS['OPENTELEMETRY']",
                                     "opentelemetry-api", "otel")
            self._tracer = trace.get_tracer("django_valkey_fast", version)
            self._duration = metrics.get_meter("django_valkey_fast", version) \
                .create_histogram("db.client.operation.duration", unit="s",
                                  description="Duration of database client operations.")
        self._classes: dict = {}  # client class -> its measuring subclass
        self._prometheus = None
        if prometheus is not None:
            _library("prometheus_client", "OPTIONS['PROMETHEUS']", "prometheus-client",
                     "prometheus")
            from django_valkey_fast.client.prometheus_metrics import PrometheusMetrics

            self._prometheus = PrometheusMetrics()

    # -- wrapping -----------------------------------------------------------------------

    def instrument(self, client) -> None:
        """Make ``client`` measure its cache operations: its class becomes a subclass
        (made once per class and configuration) whose operations wrap the class's."""
        cls = type(client)
        measured = self._classes.get(cls)
        if measured is None:
            namespace: dict = {"__module__": cls.__module__, "__doc__": cls.__doc__}
            for name in OPERATIONS:
                for method_name in (name, f"a{name}"):
                    method = getattr(cls, method_name, None)
                    if method is None or inspect.isasyncgenfunction(method) \
                            or inspect.isgeneratorfunction(method):
                        continue
                    wrap = self._async_wrapper if inspect.iscoroutinefunction(method) \
                        else self._sync_wrapper
                    namespace[method_name] = wrap(name, method_name, method)
            measured = self._classes[cls] = type(cls.__name__, (cls,), namespace)
        client.__class__ = measured

    def _sync_wrapper(self, name, method_name, method):
        start, finish = self._start, self._finish

        @functools.wraps(method)
        def measured(instance, *args, **kwargs):
            outer = _current.get()
            if outer is not None and outer.owner is instance:
                return method(instance, *args, **kwargs)  # (its own inner operation)
            record = start(instance, name, args)
            token = _current.set(record)
            try:
                result = method(instance, *args, **kwargs)
            except BaseException as error:
                record.error = error
                finish(record, method_name, args, kwargs, None)
                raise
            finally:
                _current.reset(token)
            finish(record, method_name, args, kwargs, result)
            return result

        return measured

    def _async_wrapper(self, name, method_name, method):
        start, finish = self._start, self._finish

        @functools.wraps(method)
        async def measured(instance, *args, **kwargs):
            outer = _current.get()
            if outer is not None and outer.owner is instance:
                return await method(instance, *args, **kwargs)  # (its own inner operation)
            record = start(instance, name, args)
            token = _current.set(record)
            try:
                result = await method(instance, *args, **kwargs)
            except BaseException as error:
                record.error = error
                finish(record, method_name, args, kwargs, None)
                raise
            finally:
                _current.reset(token)
            finish(record, method_name, args, kwargs, result)
            return result

        return measured

    # -- one operation ------------------------------------------------------------------

    def _start(self, owner, name: str, args) -> _Record:
        span = token = None
        if self._tracer is not None and not self._context.get_value(
                self._context._SUPPRESS_INSTRUMENTATION_KEY):
            attributes = dict(self.attributes, **{"db.operation.name": name})
            if name in _MANY and args:
                keys = args[0]
                if hasattr(keys, "__len__") and len(keys) != 1:
                    attributes["db.operation.batch.size"] = len(keys)
            if self.record_keys and args:
                attributes["cache.keys"] = _keys_of(name, args[0])
            span = self._tracer.start_span(
                name, kind=self._trace.SpanKind.CLIENT, attributes=attributes)
            token = self._context.attach(self._trace.set_span_in_context(span))
        return _Record(owner, name, time.perf_counter(), span, token)

    def _finish(self, record: _Record, method_name: str, args, kwargs, result) -> None:
        elapsed = time.perf_counter() - record.started
        error = record.error
        hit = None
        if method_name in _GETS and error is None:
            default = args[1] if len(args) > 1 else kwargs.get("default")
            hit = result is not default
        span = record.span
        if span is not None:
            try:
                if hit is not None:
                    span.set_attribute("cache.hit", hit)
                if error is not None:
                    error_type = type(error).__qualname__
                    span.set_attribute("error.type", error_type)
                    span.record_exception(error)
                    span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(error)))
                span.end()
            finally:
                self._context.detach(record.token)
        if self._duration is not None:
            attributes = dict(self.attributes, **{"db.operation.name": record.name})
            if error is not None:
                attributes["error.type"] = type(error).__qualname__
            self._duration.record(elapsed, attributes)
        if self._prometheus is not None:
            self._prometheus.observe(record.name, elapsed, error, hit)


def _package_version() -> str:
    import django_valkey_fast

    return django_valkey_fast.__version__


def _library(module: str, what: str, package: str, extra: str):
    """The optional ``module``, or MissingDependency naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(what, package, extra) from None


def _keys_of(name: str, first) -> list:
    """The keys an operation names, as the caller gave them (RECORD_KEYS), as text
    (the first hundred; an iterator's keys are not read here: the client reads them)."""
    if name in _MANY and not isinstance(first, (str, bytes)):
        keys = list(first)[:100] if hasattr(first, "__len__") else []
    else:
        keys = [first]
    return [key if isinstance(key, str) else repr(key) for key in keys]
