"""A fleet half on django-valkey and half on django-valkey-fast shares one cache.

For each serializer and compressor: what django-valkey writes reads back here, what
this package writes reads back there, and where the encoding is deterministic the
bytes in the server are identical.
"""

import pytest
from django_valkey.cache import ValkeyCache as PeerValkeyCache

from django_valkey_fast.cache import ValkeyCache

SERIALIZERS = ["pickle.PickleSerializer", "json.JSONSerializer", "msgpack.MSGPackSerializer",
               "msgspec.MsgSpecJsonSerializer", "msgspec.MsgSpecMsgPackSerializer"]
COMPRESSORS = ["identity.IdentityCompressor", "zlib.ZlibCompressor", "gzip.GzipCompressor",
               "bz2.Bz2Compressor", "lzma.LzmaCompressor", "lz4.Lz4Compressor",
               "zstd.ZStdCompressor", "brotli.BrotliCompressor"]
# gzip stamps the time into its header: equal content, not equal bytes.
NON_DETERMINISTIC = {"gzip.GzipCompressor"}

VALUES = {
    "short": "hi",
    "long": "lorem ipsum " * 40,
    "nested": {"a": [1, 2, "x" * 60], "b": {"c": None, "d": True}},
    "int": 42,
    "float": 1.25,
    "list": [1, "two", 3.0],
}


def pair(location, serializer, compressor, prefix="compat"):
    def options(package):
        return {"OPTIONS": {"SERIALIZER": f"{package}.serializers.{serializer}",
                            "COMPRESSOR": f"{package}.compressors.{compressor}"},
                "KEY_PREFIX": prefix}

    return (ValkeyCache(location, options("django_valkey_fast")),
            PeerValkeyCache(location, options("django_valkey")))


@pytest.mark.parametrize("compressor", COMPRESSORS)
@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_same_bytes_both_directions(server, serializer, compressor):
    ours, theirs = pair(server.url, serializer, compressor)
    raw = ours.client.get_client()
    for key, value in VALUES.items():
        theirs.set(f"from-peer-{key}", value)
        assert ours.get(f"from-peer-{key}") == value, key
        ours.set(f"from-us-{key}", value)
        assert theirs.get(f"from-us-{key}") == value, key
        if compressor not in NON_DETERMINISTIC:
            assert raw.get(f"compat:1:from-us-{key}") == raw.get(f"compat:1:from-peer-{key}"), key
    assert ours.get_many([f"from-peer-{k}" for k in VALUES]) == {
        f"from-peer-{k}": v for k, v in VALUES.items()
    }


def test_timeouts_keys_and_numbers_match(server):
    ours, theirs = pair(server.url, "pickle.PickleSerializer", "identity.IdentityCompressor",
                        prefix="p")
    raw = ours.client.get_client()
    ours.set("n", -5, 50)
    theirs.set("m", -5, 50)
    assert raw.get("p:1:n") == raw.get("p:1:m") == b"-5"
    assert ours.get("m") == -5  # django-valkey itself reads this back as -5.0
    assert abs(raw.pttl("p:1:n") - raw.pttl("p:1:m")) < 1000
    ours.set("v", "x", version=3)
    assert theirs.get("v", version=3) == "x"
    assert sorted(ours.keys("*")) == sorted(theirs.keys("*"))
    theirs.set("counter", 10)
    assert ours.incr("counter") == 11
    assert theirs.get("counter") == 11
    ours.sadd("set", 1, "a")
    assert theirs.smembers("set") == {1, "a"}
    theirs.hset("hash", "field", {"x": 1})
    assert ours.hkeys("hash") == ["field"]


def test_django_redis_values_read_back(server):
    from django_redis.cache import RedisCache as DjangoRedisCache

    ours = ValkeyCache(server.url, {"KEY_PREFIX": "dr"})
    theirs = DjangoRedisCache(server.url.replace("valkey://", "redis://"), {"KEY_PREFIX": "dr"})
    for key, value in VALUES.items():
        theirs.set(key, value)
        assert ours.get(key) == value
        if type(value) is float:
            continue  # floats are stored raw, as django-valkey does; django-redis pickles them
        ours.set(key, value)
        assert theirs.get(key) == value


@pytest.mark.parametrize("wbits", [15, 9, -15, 31])
def test_zlib_writes_the_same_bytes_on_python_3_10(monkeypatch, wbits):
    """zlib.compress takes no wbits before Python 3.11: the compressor uses a
    compressobj there, which must write the very stream zlib.compress writes."""
    import types
    import zlib

    from django.test import override_settings

    from django_valkey_fast.compressors import zlib as module

    value = b"a value worth compressing " * 40
    with override_settings(COMPRESS_ZLIB_WBITS=wbits):
        compressor = module.ZlibCompressor({})
        expected = zlib.compress(value, level=6, wbits=wbits)
        assert compressor._compress(value) == expected
        monkeypatch.setattr(module, "sys", types.SimpleNamespace(version_info=(3, 10, 0)))
        assert compressor._compress(value) == expected
        assert compressor._decompress(expected) == value
