"""Django's cache backend contract (the behaviours of Django's BaseCacheTests)."""

import pickle
import time
import warnings
from unittest import mock

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import CacheKeyWarning
from django.http import HttpResponse
from django.middleware.cache import FetchFromCacheMiddleware, UpdateCacheMiddleware
from django.test import RequestFactory, override_settings

from django_valkey_fast.cache import ValkeyCache


class Unpicklable:
    def __getstate__(self):
        raise pickle.PickleError()


def test_is_a_django_cache(cache):
    from django.core.cache.backends.base import BaseCache

    assert isinstance(cache, ValkeyCache) and isinstance(cache, BaseCache)


def test_simple_and_none_value(cache):
    cache.set("key", "value")
    assert cache.get("key") == "value"
    cache.set("none", None)
    assert cache.get("none", default="default") is None
    assert cache.get("missing") is None
    assert cache.get("missing", "bang!") == "bang!"


def test_add(cache):
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"


def test_prefix_isolates_caches(cache):
    cache.set("somekey", "value")
    assert caches["prefix"].has_key("somekey") is False
    caches["prefix"].set("somekey", "value2")
    assert cache.get("somekey") == "value"
    assert caches["prefix"].get("somekey") == "value2"


def test_get_many(cache):
    cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
    assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert cache.get_many(["a", "b", "e"]) == {"a": "a", "b": "b"}
    assert cache.get_many(iter(["a", "b", "e"])) == {"a": "a", "b": "b"}
    cache.set_many({"x": None, "y": 1})
    assert cache.get_many(["x", "y"]) == {"x": None, "y": 1}
    assert cache.get_many([]) == {}


def test_delete(cache):
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.delete("key1") is True
    assert cache.get("key1") is None
    assert cache.get("key2") == "eggs"
    assert cache.delete("nonexistent_key") is False


def test_has_key_and_in(cache):
    cache.set("hello1", "goodbye1")
    assert cache.has_key("hello1") is True
    assert cache.has_key("goodbye1") is False
    cache.set("no_expiry", "here", None)
    assert cache.has_key("no_expiry") is True
    cache.set("null", None)
    assert cache.has_key("null") is True
    assert "null" in cache and "nope" not in cache


@pytest.mark.parametrize("method, start, deltas", [
    ("incr", 41, [(None, 42), (10, 52), (-10, 42)]),
    ("decr", 43, [(None, 42), (10, 32), (-10, 42)]),
])
def test_incr_decr(cache, method, start, deltas):
    cache.set("answer", start)
    operation = getattr(cache, method)
    for delta, expected in deltas:
        assert (operation("answer") if delta is None else operation("answer", delta)) == expected
        assert cache.get("answer") == expected
    with pytest.raises(ValueError):
        operation("does_not_exist")
    with pytest.raises(ValueError):
        operation("does_not_exist", -1)
    cache.set("null", None)
    with pytest.raises(TypeError):
        operation("null")


def test_close(cache):
    cache.close()
    cache.set("after-close", 1)
    assert cache.get("after-close") == 1


class C:
    def m(n):
        return 24


def f():
    return 42


def test_data_types(cache):
    values = {"string": "this is a string", "int": 42, "bool": True, "list": [1, 2, 3, 4],
              "tuple": (1, 2, 3, 4), "dict": {"A": 1, "B": 2}, "function": f, "class": C}
    for key, value in values.items():
        cache.set(key, value)
        assert cache.get(key) == value


def test_expiration(cache):
    cache.set("expire1", "very quickly", 1)
    cache.set("expire2", "very quickly", 1)
    cache.set("expire3", "very quickly", 1)
    time.sleep(1.5)
    assert cache.get("expire1") is None
    assert cache.add("expire2", "newvalue") is True
    assert cache.get("expire2") == "newvalue"
    assert cache.has_key("expire3") is False


def test_touch(cache):
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1", timeout=3) is True
    time.sleep(1.5)
    assert cache.has_key("expire1") is True
    assert 0 < cache.ttl("expire1") <= 2
    cache.set("expire2", "very quickly", timeout=1)
    assert cache.touch("expire2") is True  # default timeout (300)
    assert cache.ttl("expire2") > 200
    assert cache.touch("nonexistent") is False
    cache.set("persistent", 1, None)
    assert cache.touch("persistent", None) is True  # exists, already persistent


def test_unicode(cache):
    stuff = {"ascii": "ascii_value", "unicode_ascii": "Iñtërnâtiônàlizætiøn1",
             "Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn2", "ascii2": {"x": 1}}
    for key, value in stuff.items():
        cache.set(key, value)
        assert cache.get(key) == value
    for key, value in stuff.items():
        assert cache.delete(key) is True
        assert cache.add(key, value) is True
        assert cache.get(key) == value
    for key in stuff:
        assert cache.delete(key) is True
    cache.set_many(stuff)
    assert cache.get_many(stuff) == stuff


def test_binary_string(cache):
    from zlib import compress, decompress

    compressed = compress(b"value_to_be_compressed")
    cache.set("binary1", compressed)
    assert cache.get("binary1") == compressed
    assert cache.add("binary1-add", compressed) is True
    assert decompress(cache.get("binary1-add")) == b"value_to_be_compressed"
    cache.set_many({"binary1-set_many": compressed})
    assert cache.get("binary1-set_many") == compressed


def test_set_many(cache):
    assert cache.set_many({"key1": "spam", "key2": "eggs"}) == []
    assert cache.get("key1") == "spam" and cache.get("key2") == "eggs"
    assert cache.set_many({}) == []


def test_set_many_expiration(cache):
    cache.set_many({"key1": "spam", "key2": "eggs"}, 1)
    assert 0 < cache.pttl("key1") <= 1000
    time.sleep(1.2)
    assert cache.get("key1") is None and cache.get("key2") is None


def test_delete_many(cache):
    cache.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"})
    cache.delete_many(["key1", "key2"])
    assert cache.get("key1") is None and cache.get("key2") is None
    assert cache.get("key3") == "ham"
    assert cache.delete_many([]) == 0  # django-valkey's answer (Django's backends: None)
    assert cache.delete_many(key for key in ()) == 0


async def test_adelete_many_of_nothing_is_zero(cache):
    assert await cache.adelete_many([]) == 0
    assert await cache.adelete_many(key for key in ()) == 0


def test_clear(cache):
    cache.set_many({"key1": "spam", "key2": "eggs"})
    cache.clear()
    assert cache.get("key1") is None and cache.get("key2") is None


def test_long_timeout(cache):
    long = 60 * 60 * 24 * 30 + 1  # memcached treats this as absolute; here it is relative
    cache.set("key1", "eggs", long)
    assert cache.get("key1") == "eggs"
    assert cache.ttl("key1") > long - 5
    assert cache.add("key2", "ham", long) is True
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, long)
    assert cache.get_many(["key3", "key4"]) == {"key3": "sausage", "key4": "lobster bisque"}


def test_forever_timeout(cache):
    cache.set("key1", "eggs", None)
    assert cache.get("key1") == "eggs" and cache.ttl("key1") is None
    assert cache.add("key2", "ham", None) is True
    assert cache.add("key1", "new eggs", None) is False
    assert cache.get("key1") == "eggs"
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
    assert cache.ttl("key3") is None
    cache.set("key5", "belgian fries", timeout=1)
    assert cache.touch("key5", timeout=None) is True
    assert cache.ttl("key5") is None


@pytest.mark.parametrize("timeout", [0, -1])
def test_zero_and_negative_timeout(cache, timeout):
    cache.set("key1", "eggs", timeout)
    assert cache.get("key1") is None
    assert cache.add("key2", "ham", timeout) is True
    assert cache.get("key2") is None
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, timeout)
    assert cache.get_many(["key3", "key4"]) == {}
    cache.set("key5", "belgian fries", timeout=5)
    assert cache.touch("key5", timeout=timeout) is True
    assert cache.get("key5") is None
    cache.set("key6", "old")
    cache.set("key6", "new", timeout)  # an expired write removes the old value
    assert cache.get("key6") is None


def test_float_timeout(cache):
    cache.set("key1", "spam", 100.9)
    assert cache.get("key1") == "spam"
    assert 100_000 < cache.pttl("key1") <= 100_900  # the fraction kept (0.9 s of slack)


def _key_warning_operations(key):
    return [("add", [key, 1]), ("get", [key]), ("set", [key, 1]), ("incr", [key]),
            ("decr", [key]), ("touch", [key]), ("delete", [key]), ("get_many", [[key, "b"]]),
            ("set_many", [{key: 1, "b": 2}]), ("delete_many", [[key, "b"]])]


@pytest.mark.parametrize("key, expected", [
    ("key with spaces and 清",
     "Cache key contains characters that will cause errors if used with memcached: "
     "'key with spaces and 清'"),
    ("a" * 250 + "清",
     "Cache key will cause errors if used with memcached: %r (longer than 250)"
     % ("a" * 250 + "清")),
])
def test_invalid_key_warnings(cache, key, expected):
    cache.key_func = lambda key, *args: key  # as Django's tests do, after construction
    for operation, args in _key_warning_operations(key):
        with pytest.warns(CacheKeyWarning) as record:
            getattr(cache, operation)(*args)
        assert str(record[0].message) == expected, operation


def test_invalid_with_version_key_length(cache):
    cache.key_func = lambda key, *args: key + ":1"
    key = "a" * 249
    with pytest.warns(CacheKeyWarning, match="longer than 250"):
        cache.set(key, 1)


def test_versioning_get_set_add_has_key_delete(cache):
    v2 = caches["v2"]
    cache.set("answer1", 42)
    assert cache.get("answer1", version=1) == 42 and cache.get("answer1", version=2) is None
    assert v2.get("answer1") is None and v2.get("answer1", version=1) == 42
    cache.set("answer2", 42, version=2)
    assert cache.get("answer2") is None and v2.get("answer2") == 42
    v2.set("answer4", 42, version=1)
    assert cache.get("answer4") == 42 and v2.get("answer4") is None
    assert cache.add("answer5", 42, version=2) is True
    assert cache.add("answer5", 37, version=2) is False
    assert cache.add("answer5", 37, version=1) is True
    assert v2.get("answer5") == 42 and cache.get("answer5") == 37
    assert v2.has_key("answer1") is False and v2.has_key("answer1", version=1) is True
    cache.set("answer6", 37, version=1)
    cache.set("answer6", 42, version=2)
    assert v2.delete("answer6") is True
    assert cache.get("answer6") == 37 and cache.get("answer6", version=2) is None


def test_versioning_incr_decr_and_many(cache):
    v2 = caches["v2"]
    cache.set("answer1", 37, version=1)
    cache.set("answer1", 42, version=2)
    assert cache.incr("answer1") == 38 and cache.get("answer1", version=2) == 42
    assert v2.incr("answer1") == 43 and cache.get("answer1") == 38
    assert v2.decr("answer1", version=1) == 37
    cache.set_many({"ford": 37, "arthur": 42}, version=2)
    assert cache.get_many(["ford", "arthur"]) == {}
    assert v2.get_many(["ford", "arthur"]) == {"ford": 37, "arthur": 42}
    v2.delete_many(["ford"])
    assert v2.get_many(["ford", "arthur"]) == {"arthur": 42}


def test_incr_version(cache):
    cache.set("answer", 42, version=2, timeout=100)
    assert cache.incr_version("answer", version=2) == 3
    assert cache.get("answer", version=2) is None
    assert cache.get("answer", version=3) == 42
    assert 90 < cache.ttl("answer", version=3) <= 100  # the TTL moves with the value
    v2 = caches["v2"]
    v2.set("answer2", 42)
    assert v2.incr_version("answer2") == 3
    assert v2.get("answer2") is None and v2.get("answer2", version=3) == 42
    with pytest.raises(ValueError):
        cache.incr_version("does_not_exist")
    cache.set("null", None)
    assert cache.incr_version("null") == 2


def test_decr_version(cache):
    cache.set("answer", 42, version=2)
    assert cache.decr_version("answer", version=2) == 1
    assert cache.get("answer") == 42 and cache.get("answer", version=2) is None
    with pytest.raises(ValueError):
        cache.decr_version("does_not_exist", version=2)


def test_custom_key_func(cache):
    cache.set("answer1", 42)
    assert caches["custom_key"].get("answer1") is None
    assert caches["custom_key2"].get("answer1") is None
    caches["custom_key"].set("answer2", 42)
    assert cache.get("answer2") is None
    assert caches["custom_key2"].get("answer2") == 42
    assert caches["custom_key"].make_key("answer2") == "CUSTOM--1-answer2"


def test_cache_middleware_with_unpicklable_cookies(cache):
    factory = RequestFactory()
    with override_settings(CACHE_MIDDLEWARE_ALIAS="default"):
        fetch = FetchFromCacheMiddleware(lambda request: HttpResponse())
        request = factory.get("/cache/test")
        request._cache_update_cache = True
        assert fetch.process_request(request) is None

        def get_response(request):
            response = HttpResponse("Testing cookie serialization.")
            response.set_cookie("foo", "bar")
            return response

        response = UpdateCacheMiddleware(get_response)(request)
        cached = fetch.process_request(request)
        assert cached is not None
        assert cached.content == b"Testing cookie serialization."
        assert cached.cookies == response.cookies


def test_add_and_set_fail_on_pickle_error_and_keep_the_old_value(cache):
    cache.set("unpicklable", "old")
    with pytest.raises(pickle.PickleError) as info:
        cache.set("unpicklable", Unpicklable())
    assert any("':1:unpicklable'" in note for note in info.value.__notes__)
    with pytest.raises(pickle.PickleError):
        cache.add("unpicklable2", Unpicklable())
    with pytest.raises(pickle.PickleError):
        cache.set_many({"fine": 1, "unpicklable": Unpicklable()})
    assert cache.get("unpicklable") == "old"
    assert cache.get("fine") is None  # nothing of the batch was written
    assert cache.has_key("unpicklable2") is False


def test_get_or_set(cache):
    assert cache.get_or_set("projector", 42) == 42
    assert cache.get("projector") == 42
    assert cache.get_or_set("null", None) is None
    assert cache.get("null", "default") is None
    assert cache.get_or_set("mykey", lambda: "value") == "value"
    assert cache.get_or_set("mykey", "other") == "value"
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'default'"):
        cache.get_or_set("brian")
    assert cache.get("brian", version=1) is None


def test_get_or_set_racing(cache):
    with mock.patch("django_valkey_fast.cache.ValkeyCache.add") as cache_add:
        cache_add.return_value = False
        assert cache.get_or_set("key", "default") == "default"


def test_caches_are_per_thread_but_share_the_pool(cache):
    import threading

    seen = []

    def work():
        other = caches["default"]
        other.set("threaded", 1)
        seen.append((other, other.client.get_client().connection_pool))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    other, pool = seen[0]
    assert other is not cache
    assert pool is cache.client.get_client().connection_pool
