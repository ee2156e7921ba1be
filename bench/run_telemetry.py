"""What telemetry costs per cache call: ``get`` and ``aget`` of a 100-byte value with
telemetry off, with ``OPTIONS["OPENTELEMETRY"]`` (the real SDK, spans to an in-memory
exporter, the duration histogram to an in-memory reader) and with
``OPTIONS["PROMETHEUS"]``, interleaved in rounds on one valkey-server this script
starts. Off, the client is the same code as without the option (its class is not
replaced); the table gives client CPU microseconds per call and the ratio to off.

    bash scripts/bench.sh --telemetry [--rounds 5] [--markdown docs/performance.md]
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

SETTINGS = {
    "off": {},
    "OPENTELEMETRY (SDK, in-memory export)": {"OPENTELEMETRY": True},
    "PROMETHEUS": {"PROMETHEUS": True},
}


def providers() -> None:
    """The real OpenTelemetry SDK: every span exported (to memory), metrics read."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return exporter


def measure(cache, is_async: bool, calls: int) -> float:
    """Client CPU microseconds per call."""
    if is_async:
        async def run():
            for _ in range(calls):
                await cache.aget("small")

        started = time.process_time()
        asyncio.run(run())
    else:
        started = time.process_time()
        for _ in range(calls):
            cache.get("small")
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--location", default=None)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    import django
    from django.conf import settings

    settings.configure(USE_TZ=True, INSTALLED_APPS=[])
    django.setup()
    exporter = providers()
    from django_valkey_fast.cache import ValkeyCache

    with server_location(args.location) as location:
        caches = {name: ValkeyCache(location, {"OPTIONS": options, "KEY_PREFIX": "tel"})
                  for name, options in SETTINGS.items()}
        for cache in caches.values():
            cache.set("small", VALUE_100)
        results: dict = {}
        for round_number in range(args.rounds):
            order = [(name, is_async) for name in caches for is_async in (False, True)]
            random.shuffle(order)
            for name, is_async in order:
                results.setdefault((name, is_async), []).append(
                    measure(caches[name], is_async, args.calls))
                exporter.clear()
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        version = server_version(location)
    from bench.report import environment, write_section

    lines = [environment(version, args.rounds), "",
             "| workload | telemetry | CPU us/op | vs off |", "|---|---|---:|---:|"]
    for is_async, workload in ((False, "get 100B"), (True, "aget 100B")):
        off = statistics.median(results[("off", is_async)])
        for name in SETTINGS:
            cost = statistics.median(results[(name, is_async)])
            lines.append(f"| {workload} | {name} | {cost:.1f} | {cost / off:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        write_section(args.markdown, "telemetry", text)


if __name__ == "__main__":
    main()
