"""Bad input gets a clear error and loses nothing."""

import importlib
import logging
import socket
import sys
import threading
import time

import pytest
import valkey
from django.test import override_settings

from django_valkey_fast.exceptions import ConnectionInterrupted, DecodeError, MissingDependency
from django_valkey_fast.config import _forget_prepared as forget_prepared
from tests.servers import free_port


def test_corrupt_payload_is_a_clear_error_and_stays_in_the_server(cache):
    raw = cache.client.get_client()
    raw.set(":1:broken", b"\x80\x05not a pickle")
    with pytest.raises(DecodeError) as info:
        cache.get("broken")
    assert "':1:broken'" in str(info.value) and "PickleSerializer" in str(info.value)
    assert raw.get(":1:broken") == b"\x80\x05not a pickle"
    with pytest.raises(DecodeError):
        cache.get_many(["broken"])


def test_corrupt_payload_with_ignore_exceptions_returns_the_default(make_cache):
    cache = make_cache(OPTIONS={"IGNORE_EXCEPTIONS": True})
    cache.client.get_client().set(":1:broken", b"\x80\x05not a pickle")
    assert cache.get("broken", "fallback") == "fallback"
    assert cache.get_many(["broken"]) == {}


def test_corrupt_compressed_payload(make_cache):
    cache = make_cache(OPTIONS={"COMPRESSOR": "django_valkey_fast.compressors.zlib.ZlibCompressor"})
    cache.client.get_client().set(":1:z", b"x\x9c-garbage")  # zlib magic, broken stream
    with pytest.raises(DecodeError, match="':1:z'"):
        cache.get("z")


def test_down_server_raises_connection_interrupted_quickly(make_cache):
    cache = make_cache(LOCATION=f"valkey://127.0.0.1:{free_port()}/0",
                       OPTIONS={"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5})
    started = time.monotonic()
    with pytest.raises(ConnectionInterrupted) as info:
        cache.get("k")
    assert time.monotonic() - started < 2
    # Code written for django-valkey catches valkey-py's error: that works too.
    assert isinstance(info.value, valkey.exceptions.ConnectionError)
    assert "Valkey ConnectionError" in str(info.value)
    with pytest.raises(ConnectionInterrupted):
        cache.set("k", 1)


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_unresponsive_server_times_out_within_socket_timeout(make_cache, silent_server):
    cache = make_cache(LOCATION=f"valkey://127.0.0.1:{silent_server}/0",
                       OPTIONS={"SOCKET_TIMEOUT": 0.3})
    started = time.monotonic()
    with pytest.raises(ConnectionInterrupted) as info:
        cache.get("k")
    assert 0.25 < time.monotonic() - started < 1.5
    assert isinstance(info.value, valkey.exceptions.TimeoutError)


def test_ignore_exceptions_per_cache_and_logged(make_cache, caplog):
    cache = make_cache(LOCATION=f"valkey://127.0.0.1:{free_port()}/0",
                       OPTIONS={"IGNORE_EXCEPTIONS": True, "LOG_IGNORE_EXCEPTIONS": True})
    with caplog.at_level(logging.ERROR):
        assert cache.get("k", "default") == "default"
        assert cache.set("k", 1) is False
        assert cache.get_many(["a", "b"]) == {}
        assert cache.set_many({"a": 1}) == ["a"]
        assert cache.has_key("k") is False
        assert cache.ttl("k") == 0
        assert cache.keys("*") == []
        assert list(cache.iter_keys("*")) == []
        assert cache.delete_pattern("*") == 0
        assert cache.smembers("s") == set()
    assert "Exception ignored" in caplog.text
    # django-valkey logs to django_valkey.base: LOGGING entries rename one word.
    assert {record.name for record in caplog.records} == {"django_valkey_fast.base"}


def test_ignore_exceptions_global_settings(make_cache, caplog):
    with override_settings(DJANGO_VALKEY_IGNORE_EXCEPTIONS=True,
                           DJANGO_VALKEY_LOG_IGNORED_EXCEPTIONS=True,
                           DJANGO_VALKEY_LOGGER="tests.cache-errors"):
        cache = make_cache(LOCATION=f"valkey://127.0.0.1:{free_port()}/0")
        with caplog.at_level(logging.ERROR, logger="tests.cache-errors"):
            assert cache.get("k") is None
    assert [r.name for r in caplog.records] == ["tests.cache-errors"]


def test_not_ignored_by_default(make_cache):
    cache = make_cache(LOCATION=f"valkey://127.0.0.1:{free_port()}/0")
    with pytest.raises(ConnectionInterrupted):
        cache.get("k")


def test_wrong_password(make_cache, auth_server):
    cache = make_cache(LOCATION=auth_server.url, OPTIONS={"PASSWORD": "wrong"})
    with pytest.raises(ConnectionInterrupted) as info:
        cache.get("k")
    assert isinstance(info.value, valkey.exceptions.AuthenticationError)
    assert "password" in str(info.value).lower()
    no_password = make_cache(LOCATION=auth_server.url)
    with pytest.raises(ConnectionInterrupted, match="(?i)auth"):
        no_password.set("k", 1)


def test_wrong_type_is_reported(cache):
    cache.sadd("a-set", 1)
    with pytest.raises(ConnectionInterrupted, match="WRONGTYPE|wrong kind"):
        cache.get("a-set")


@pytest.mark.parametrize("option, path", [
    ("SERIALIZER", "django_valkey_fast.serializers.nope.NopeSerializer"),
    ("COMPRESSOR", "django_valkey_fast.compressors.zlib.NoSuchCompressor"),
])
def test_unknown_serializer_or_compressor_path(make_cache, option, path):
    cache = make_cache(OPTIONS={option: path})
    with pytest.raises(ImportError, match=path.rsplit(".", 1)[0].rsplit(".", 1)[1]):
        cache.get("k")


@pytest.mark.parametrize("module, library, path, extra", [
    ("django_valkey_fast.compressors.lz4", "lz4", "lz4.Lz4Compressor", "lz4"),
    ("django_valkey_fast.compressors.brotli", "brotli", "brotli.BrotliCompressor", "brotli"),
    ("django_valkey_fast.serializers.msgpack", "msgpack", "msgpack.MSGPackSerializer", "msgpack"),
    ("django_valkey_fast.serializers.msgspec", "msgspec", "msgspec.MsgSpecJsonSerializer",
     "msgspec"),
])
def test_missing_optional_library_names_the_extra(make_cache, monkeypatch, module, library,
                                                  path, extra):
    option = "COMPRESSOR" if ".compressors." in module else "SERIALIZER"
    for name in [library] + [m for m in sys.modules if m.startswith(library + ".")]:
        monkeypatch.setitem(sys.modules, name, None)  # the library is not installed
    importlib.reload(importlib.import_module(module))
    forget_prepared()  # as in a process that never had the library
    try:
        cache = make_cache(OPTIONS={option: module.rsplit(".", 1)[0] + "." + path})
        with pytest.raises(MissingDependency, match=rf"pip install 'django-valkey-fast\[{extra}\]'"):
            cache.get("k")
    finally:
        monkeypatch.undo()
        importlib.reload(importlib.import_module(module))
        forget_prepared()


def test_missing_zstd_library_names_the_extra(make_cache, monkeypatch):
    for name in ("compression", "compression.zstd", "backports", "backports.zstd", "zstandard"):
        monkeypatch.setitem(sys.modules, name, None)
    module = importlib.import_module("django_valkey_fast.compressors.zstd")
    importlib.reload(module)
    forget_prepared()
    try:
        cache = make_cache(OPTIONS={"COMPRESSOR": "django_valkey_fast.compressors.zstd.ZStdCompressor"})
        with pytest.raises(MissingDependency, match=r"django-valkey-fast\[zstd\]"):
            cache.set("k", "v" * 100)
    finally:
        monkeypatch.undo()
        importlib.reload(module)
        forget_prepared()


def test_zstd_falls_back_to_zstandard(make_cache, monkeypatch):
    for name in ("compression", "compression.zstd", "backports", "backports.zstd"):
        monkeypatch.setitem(sys.modules, name, None)
    module = importlib.import_module("django_valkey_fast.compressors.zstd")
    importlib.reload(module)
    forget_prepared()
    try:
        assert module.zstd is None and module.zstandard is not None
        cache = make_cache(OPTIONS={"COMPRESSOR": "django_valkey_fast.compressors.zstd.ZStdCompressor"})
        cache.set("k", "v" * 100)
        assert cache.get("k") == "v" * 100
    finally:
        monkeypatch.undo()
        importlib.reload(module)
        forget_prepared()
    # ...and what zstandard wrote, backports.zstd reads
    cache = make_cache(OPTIONS={"COMPRESSOR": "django_valkey_fast.compressors.zstd.ZStdCompressor"})
    assert cache.get("k") == "v" * 100


def test_pickle_version_checks(make_cache):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="integer"):
        make_cache(OPTIONS={"PICKLE_VERSION": "x"}).get("k")
    with pytest.raises(ImproperlyConfigured, match="HIGHEST_PROTOCOL"):
        make_cache(OPTIONS={"PICKLE_VERSION": 99}).get("k")
    cache = make_cache(OPTIONS={"PICKLE_VERSION": 2})
    cache.set("k", {"a": 1})
    assert cache.client.get_client().get(":1:k")[:2] == b"\x80\x02"


def _chain(error):
    """Every exception in ``error``'s cause/context chain."""
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def test_a_connection_failure_chains_no_internal_exceptions(make_cache):
    """The traceback of a down server holds only the failure itself: no internal
    cache-miss KeyError or empty-pool IndexError chained in front of it (sync and
    async, first call of a fresh configuration)."""
    import asyncio

    location = f"valkey://127.0.0.1:{free_port()}/0"
    cache = make_cache(LOCATION=location, OPTIONS={"SOCKET_CONNECT_TIMEOUT": 0.5,
                                                   "CLIENT_CLASS": "django_valkey_fast.client.DefaultClient"})
    with pytest.raises(ConnectionInterrupted) as info:
        cache.get("k")
    assert not [e for e in _chain(info.value) if isinstance(e, (KeyError, IndexError))]

    async def async_side():
        with pytest.raises(ConnectionInterrupted) as async_info:
            await make_cache(LOCATION=location, KEY_PREFIX="fresh").aget("k")
        return async_info.value

    chained = _chain(asyncio.run(async_side()))
    assert not [e for e in chained if isinstance(e, (KeyError, IndexError))]


@pytest.mark.parametrize("client_class", ["django_valkey_fast.client.DefaultClient",
                                          "django_valkey_fast.client.HerdClient"])
def test_timeouts_of_every_type_django_accepts(make_cache, client_class):
    """A timeout is read as Django's RedisCache reads it: ``"10"`` is 10 seconds (not
    a string repeated a thousand times), Decimal and float keep their fraction."""
    from decimal import Decimal

    cache = make_cache(OPTIONS={"CLIENT_CLASS": client_class})
    assert cache.set("s", 1, timeout="10") is True
    assert 9 <= cache.ttl("s") <= 10
    assert cache.set("d", 1, timeout=Decimal("2.9")) is True
    assert 2000 < cache.pttl("d") <= 2900
    assert cache.add("a", 1, timeout="20") is True and 19 <= cache.ttl("a") <= 20
    assert cache.touch("a", "30") is True and 29 <= cache.ttl("a") <= 30
    assert cache.set_many({"m": 1}, timeout="40") == [] and 39 <= cache.ttl("m") <= 40


@pytest.mark.parametrize("bad", ["ten", object(), [10]])
def test_a_timeout_that_is_not_a_number_is_a_programming_error(make_cache, bad):
    """A timeout that is not a number raises a clear TypeError/ValueError before
    anything is sent, even with IGNORE_EXCEPTIONS (which is for server errors)."""
    import asyncio

    cache = make_cache(OPTIONS={"IGNORE_EXCEPTIONS": True})
    with pytest.raises((TypeError, ValueError), match="timeout is a number of seconds"):
        cache.set("k", 1, timeout=bad)
    with pytest.raises((TypeError, ValueError), match="timeout is a number of seconds"):
        asyncio.run(cache.aset("k", 1, timeout=bad))
    assert cache.get("k") is None
