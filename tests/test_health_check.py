"""django-health-check's cache check (the real package, its real view) with this
backend, against a real server and a dead one. Invariant: the check passes when the
cache works and fails, with a 500 and a message, when it does not."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client, override_settings

from tests.servers import free_port

from health_check.views import HealthCheckView  # noqa: E402,F401 - the real package


def health(location: str, backend="django_valkey_fast.cache.ValkeyCache", **options):
    caches = {"default": {"BACKEND": backend, "LOCATION": location,
                          "KEY_PREFIX": f"health{time.monotonic_ns()}",
                          "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, **options}}}
    with override_settings(CACHES=caches, ROOT_URLCONF="tests.toolbar.health_urls"):
        response = Client().get("/health/?format=json")
    return response.status_code, json.loads(response.content)


@pytest.mark.parametrize("backend", ["django_valkey_fast.cache.ValkeyCache",
                                     "django_valkey_fast.async_cache.cache.AsyncValkeyCache"])
def test_the_cache_check_passes_on_a_working_server(server, backend):
    status, results = health(server.url, backend)
    assert status == 200 and list(results.values()) == ["OK"], results


def test_the_cache_check_fails_on_a_dead_server():
    status, results = health(f"valkey://127.0.0.1:{free_port()}/0")
    assert status == 500
    (message,) = results.values()
    assert message != "OK"
