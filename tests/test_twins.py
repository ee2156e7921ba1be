"""The twin modules: the compiled and the pure implementation behave identically."""

import pickle
import warnings

import pytest
from django.core.cache.backends.base import CacheKeyWarning, default_key_func
from hypothesis import given, settings, strategies as st
from valkey.connection import Connection
from valkey.exceptions import DataError

import django_valkey_fast
from django_valkey_fast import _codec, _codec_py, _wire, _wire_py
from django_valkey_fast._common import CacheKey
from django_valkey_fast.config import build_codec
from django_valkey_fast.exceptions import DecodeError
from tests.conftest import c_extensions_expected


def test_compiled_implementation_is_loaded_when_expected(request):
    if not c_extensions_expected(request.config):
        assert _codec.Codec is _codec_py.Codec
        assert _wire.pack_command is _wire_py.pack_command
        assert django_valkey_fast.COMPILED is False
        return
    from importlib import import_module

    for twin, names in django_valkey_fast._TWINS.items():  # every name of every twin
        module = import_module(f"django_valkey_fast.{twin}")
        for name in names:
            assert getattr(module, name).__module__ == f"django_valkey_fast.{twin}_c", name
    assert django_valkey_fast.COMPILED is True


def make_codec(impl, serializer="pickle.PickleSerializer",
               compressor="identity.IdentityCompressor"):
    built = build_codec({
        "SERIALIZER": f"django_valkey_fast.serializers.{serializer}",
        "COMPRESSOR": f"django_valkey_fast.compressors.{compressor}",
    })
    return impl.codec.Codec(built.serializer, built.compressor, built.mode,
                            built.min_length, built.magic)


def key_maker(impl, prefix="", version=1, key_func=default_key_func):
    return impl.codec.KeyMaker(prefix, version, key_func, key_func is default_key_func)


# -- keys -------------------------------------------------------------------------


def test_make_key_default_function(impl):
    keys = key_maker(impl, prefix="p", version=3)
    assert keys.make("foo") == "p:3:foo"
    assert keys.make("foo", 7) == "p:7:foo"
    assert keys.make(12) == "p:3:12"
    assert keys.make(CacheKey("raw:1:x")) == "raw:1:x"


def test_make_key_custom_function(impl):
    keys = key_maker(impl, "p", 2, key_func=lambda k, p, v: f"{k}|{p}|{v}")
    assert keys.make("foo") == "foo|p|2"
    assert keys.make("foo", 5) == "foo|p|5"


class SafeKey(str):
    """A str subclass, as a KEY_FUNCTION built on Django's SafeString returns."""


def test_key_function_may_return_a_str_subclass(impl):
    made = key_maker(impl, "p", 2, key_func=lambda k, p, v: SafeKey(f"{p}:{v}:{k}")).make("a")
    assert made == "p:2:a" and type(made) is str


@pytest.mark.parametrize("returned", [None, b"p:1:a", 17])
def test_key_function_returning_a_non_str_is_a_clear_type_error(impl, returned):
    """Was: the compiled twin read None as a str (out of bounds) and the twins raised
    different errors for bytes. Now both: TypeError naming what the function returned."""
    keys = key_maker(impl, "p", 1, key_func=lambda k, p, v: returned)
    with pytest.raises(TypeError, match=f"a cache key must be a str, not {type(returned).__name__}"):
        keys.make("a")
    with pytest.raises(TypeError, match="KEY_FUNCTION"):
        keys.make_pattern("a*")


def test_a_key_function_bug_is_not_swallowed_by_ignore_exceptions(make_cache):
    cache = make_cache(KEY_FUNCTION=lambda key, prefix, version: None,
                       OPTIONS={"IGNORE_EXCEPTIONS": True})
    with pytest.raises(TypeError, match="not NoneType"):
        cache.set("a", 1)
    with pytest.raises(TypeError, match="not NoneType"):
        cache.get("a")


def test_pack_command_takes_any_iterable(impl):
    expected = Connection().pack_command("SET", "k", 1)[0]
    assert impl.wire.pack_command(a for a in ("SET", "k", 1)) == expected
    assert impl.wire.pack_command(iter(["SET", "k", 1])) == expected


def test_make_pattern_escapes_prefix_and_version(impl):
    keys = key_maker(impl, prefix="a*b", version=1)
    assert keys.make_pattern("x*") == "a[*]b:1:x*"
    assert keys.make_pattern("x", version=2, prefix="q?") == "q[?]:2:x"


@pytest.mark.parametrize("key, message", [
    ("a" * 251, "longer than 250"),
    ("has space", "characters that will cause errors"),
    ("tab\there", "characters that will cause errors"),
    ("del\x7f", "characters that will cause errors"),
])
def test_key_warnings(impl, key, message):
    keys = key_maker(impl, key_func=lambda k, p, v: k)
    with pytest.warns(CacheKeyWarning, match=message):
        keys.make(key)


def test_clean_keys_do_not_warn(impl):
    keys = key_maker(impl)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keys.make("ok-key_ünïcode")
        keys.make("a" * 246)  # 250 with ":1:"


# -- values -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, -5, 2**70, 1.5, -0.25, float("inf")])
def test_numbers_are_stored_raw_and_read_back_with_their_type(impl, value):
    codec = make_codec(impl)
    assert codec.encode(value) is value
    raw = repr(value).encode()
    decoded = codec.decode(raw)
    assert decoded == value and type(decoded) is type(value)


def test_negative_int_reads_back_as_int(impl):
    assert make_codec(impl).decode(b"-5") == -5
    assert type(make_codec(impl).decode(b"-5")) is int


@pytest.mark.parametrize("value", [True, None, "text", b"bytes", [1, 2], {"a": 1}, (1, "x")])
def test_other_values_are_pickled(impl, value):
    codec = make_codec(impl)
    encoded = codec.encode(value)
    assert encoded == pickle.dumps(value, pickle.DEFAULT_PROTOCOL)
    assert codec.decode(encoded) == value


@pytest.mark.parametrize("compressor", [
    "zlib.ZlibCompressor", "gzip.GzipCompressor", "bz2.Bz2Compressor", "lzma.LzmaCompressor",
    "lz4.Lz4Compressor", "zstd.ZStdCompressor", "brotli.BrotliCompressor",
])
def test_compression_respects_min_length(impl, compressor):
    codec = make_codec(impl, compressor=compressor)
    short, long = None, "y" * 1000
    assert codec.encode(short) == pickle.dumps(short)  # too short: stored as is
    compressed = codec.encode(long)
    assert len(compressed) < len(pickle.dumps(long))
    assert codec.decode(compressed) == long
    assert codec.decode(codec.encode(short)) == short


def test_corrupt_payload_raises_decode_error_naming_the_key(impl):
    codec = make_codec(impl)
    with pytest.raises(DecodeError, match="':1:k'.*PickleSerializer"):
        codec.decode(b"\x80\x05garbage", ":1:k")


def test_bytearray_and_memoryview_follow_the_same_rules(impl):
    codec = make_codec(impl)
    assert codec.decode(bytearray(b"42")) == 42
    assert codec.decode(memoryview(pickle.dumps("x"))) == "x"


# -- wire -------------------------------------------------------------------------


def test_pack_command_matches_valkey_py(impl):
    args = ("SET", "clé", b"\x00bin", 42, 1.5, -7)
    assert impl.wire.pack_command(args) == b"".join(Connection().pack_command(*args))


def test_pack_commands_is_the_concatenation(impl):
    verb = "GET"  # one object repeated, as a cluster pipeline's parts repeat theirs
    commands = [(verb, "a"), ("SET", "b", b"x" * 10000), (verb, "c"), (verb, b"d"),
                (b"GET", "e"), ["MGET", "f", "g"], ()]
    assert impl.wire.pack_commands(commands) == b"".join(
        impl.wire.pack_command(c) for c in commands
    )
    for bad in (None, True):  # a bad verb is refused, repeated or not
        with pytest.raises(DataError, match="Invalid input of type"):
            impl.wire.pack_commands([(bad, "a"), (bad, "b")])


@pytest.mark.parametrize("bad", [True, None, object()])
def test_pack_command_rejects_what_valkey_py_rejects(impl, bad):
    with pytest.raises(DataError, match="Invalid input of type"):
        impl.wire.pack_command(("SET", "k", bad))




# -- cluster slots --------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"foo", b"{user1000}.following", b"foo{}{bar}", b"foo{{bar}}zap",
                                 b"foo{bar}{zap}", "clé", b"", b":1:" + b"x" * 500])
def test_key_slot_matches_valkey_py(impl, key):
    from valkey.crc import key_slot as reference

    data = key.encode() if isinstance(key, str) else key
    assert impl.slots.key_slot(key) == reference(data)


@pytest.mark.parametrize("version", [1.0, True, "1", 1])
def test_versions_equal_to_the_default_are_their_own_keys(impl, version):
    """``version=1.0`` or ``True`` is not version 1: the key is built from the value
    itself, as Django's and django-valkey's key functions build it (same bytes)."""
    keys = key_maker(impl, prefix="p", version=1)
    assert keys.make("k", version=version) == default_key_func("k", "p", version)
    assert keys.make("k", version=version) == f"p:{version}:k"


def test_version_one_point_zero_does_not_overwrite_version_one(cache):
    """On a real server: the value stored under version 1.0 is not version 1's."""
    cache.set("k", "one")
    cache.set("k", "one point zero", version=1.0)
    cache.set("k", "true", version=True)
    assert cache.get("k") == "one"
    assert cache.get("k", version=1.0) == "one point zero"
    assert cache.get("k", version=True) == "true"


def test_make_pattern_escapes_backslash(impl):
    """A backslash in the prefix or version is escaped too: ``ten\\`` never matches
    the keys of prefix ``ten``."""
    keys = key_maker(impl, prefix="ten\\", version=1)
    assert keys.make_pattern("*") == "ten\\\\:1:*"


def test_prefixes_with_glob_characters_stay_apart(make_cache):
    """On a real server: keys(), iter_keys() and delete_pattern() of a cache whose
    prefix holds a backslash or glob characters touch only that cache's keys, and
    glob_escape makes user input safe in a pattern."""
    from django_valkey_fast.util import glob_escape

    plain = make_cache(KEY_PREFIX="ten")
    slash = make_cache(KEY_PREFIX="ten\\")
    star = make_cache(KEY_PREFIX="t*")
    for cache in (plain, slash, star):
        cache.set("bob:1", 1)
        cache.set("bob\\:2", 2)
    assert sorted(slash.keys("*")) == ["bob:1", "bob\\:2"]
    assert sorted(star.iter_keys("*")) == ["bob:1", "bob\\:2"]
    assert slash.delete_pattern("*") == 2
    assert sorted(plain.keys("*")) == ["bob:1", "bob\\:2"]
    assert plain.delete_pattern(glob_escape("bob\\") + ":*") == 1  # only bob\'s keys
    assert plain.keys("*") == ["bob:1"]
    assert star.get("bob:1") == 1


def test_undecodable_replies_are_decode_errors(impl):
    """Every failure to decode a stored value is a DecodeError naming the key: an
    all-digit payload longer than Python converts to int, a map or an array where a
    string was expected (a hostile or RESP3 server)."""
    from django_valkey_fast.compressors.identity import IdentityCompressor
    from django_valkey_fast.exceptions import DecodeError
    from django_valkey_fast.serializers.pickle import PickleSerializer

    codec = impl.codec.Codec(PickleSerializer({}), IdentityCompressor({}), 0, 15, None)
    for reply in (b"9" * 5000, b"-" + b"9" * 5000, {b"a": b"b"}, [b"a", 1]):
        with pytest.raises(DecodeError, match="cache key ':1:k'"):
            codec.decode(reply, ":1:k")


def test_a_huge_number_in_the_server_is_a_decode_error(cache, server):
    """On a real server: a 5000-digit value planted by another client gives a
    DecodeError (the default under IGNORE_EXCEPTIONS), not a bare ValueError."""
    from django_valkey_fast.exceptions import DecodeError

    server.command("SET :1:huge " + "9" * 5000)
    with pytest.raises(DecodeError):
        cache.get("huge")


class _Tagging:
    """A PickleSerializer subclass whose methods must be the ones the codec calls."""

    def dumps(self, value):
        return b"T" + super().dumps(value)

    def loads(self, value):
        assert value[:1] == b"T"
        return ("loaded", super().loads(value[1:]))


def test_the_codec_calls_a_serializer_subclass_own_methods(impl):
    """The stock PickleSerializer hands the codec pickle's own functions (no Python
    frame of its own); a subclass that overrides dumps/loads gets its methods
    called, and PICKLE_VERSION reaches pickle either way."""
    from django_valkey_fast.compressors.identity import IdentityCompressor
    from django_valkey_fast.serializers.pickle import PickleSerializer

    tagging = type("Tagging", (_Tagging, PickleSerializer), {})({})
    codec = impl.codec.Codec(tagging, IdentityCompressor({}), 0, 15, None)
    stored = codec.encode({"a": 1})
    assert stored[:1] == b"T" and codec.decode(stored) == ("loaded", {"a": 1})
    stock = PickleSerializer({"PICKLE_VERSION": 2})
    codec = impl.codec.Codec(stock, IdentityCompressor({}), 0, 15, None)
    assert codec.encode({"a": 1})[:2] == b"\x80\x02"
    assert codec.decode(codec.encode([1, 2])) == [1, 2]


def test_split_keys_and_merge_values(impl):
    """Splitting a multi-key command by place and merging an MGET's replies back: a
    single place keeps the command whole; parts keep their keys' order; a place with
    one key gets a one-key command; values return to their keys' positions."""
    place = {"a": 0, "b": 1, "c": 0, "d": 2}.__getitem__
    parts, spots = impl.slots.split_keys(("MGET", "a", "c"), place)
    assert parts == [(0, ("MGET", "a", "c"))] and spots is None
    parts, spots = impl.slots.split_keys(("MGET", "a", "b", "c", "d"), place)
    assert parts == [(0, ("MGET", "a", "c")), (1, ("MGET", "b")), (2, ("MGET", "d"))]
    assert spots == [[1, 3], [2], [4]]
    assert impl.slots.merge_values(spots, 4, [[b"A", None], [b"B"], [b"D"]]) == [
        b"A", b"B", None, b"D"]
    # get_many's cluster path sends a place's only key as GET (a bare reply, no list).
    for place_of in (place, impl.slots.key_slot):
        keys = ("a", "b", "c", "d") if place_of is place else ("x", "{t}1", "{t}2", "y")
        parts, _ = impl.slots.split_keys(("MGET", *keys), place_of, "GET")
        assert sorted(len(command) for _, command in parts) == [2, 2, 3]
        assert all(command[0] == ("GET" if len(command) == 2 else "MGET")
                   for _, command in parts)


def test_group_parts_and_take_replies(impl):
    """Grouping a cluster plan's parts by node (ASK targets after an ASKING, a slot
    no node serves as LookupError), and keeping a node's plain replies while handing
    back its error replies."""
    from valkey.exceptions import MovedError, ResponseError

    slots = [("n1", 1)] * 2 + [("n2", 2)] + [None]
    todo = {0: (0, ("GET", "a")), 1: (2, ("GET", "b")), 2: (1, ("GET", "c"))}
    per_node = impl.slots.group_parts(slots, todo, {})
    assert per_node == {("n1", 1): ([0, 2], [("GET", "a"), ("GET", "c")]),
                        ("n2", 2): ([1], [("GET", "b")])}
    per_node = impl.slots.group_parts(slots, todo, {1: ("n3", 3)})
    assert per_node[("n3", 3)] == ([None, 1], [("ASKING",), ("GET", "b")])
    with pytest.raises(LookupError) as unserved:
        impl.slots.group_parts(slots, {5: (3, ("GET", "x"))}, {})
    assert unserved.value.args == (3,)
    replies_of = [None, None, None]
    moved = MovedError("3 127.0.0.1:7001")
    errors = impl.slots.take_replies([None, 0, 2], [b"OK", b"A", moved], replies_of, todo)
    assert errors == [(2, moved)] and replies_of == [b"A", None, None]
    assert list(todo) == [1, 2]
    # Both twins index as Python lists do: from the end when negative, else IndexError.
    assert impl.slots.group_parts(slots, {7: (-2, ("GET", "z"))}, {}) == {
        ("n2", 2): ([7], [("GET", "z")])}
    with pytest.raises(IndexError):
        impl.slots.group_parts(slots, {7: (4, ("GET", "z"))}, {})
    with pytest.raises(ValueError):
        impl.slots.group_parts(slots, {7: (0, ("GET", "z"), "extra")}, {})
    impl.slots.take_replies([-1], [b"Z"], replies_of, {-1: None})
    assert replies_of == [b"A", None, b"Z"]
    with pytest.raises(IndexError):
        impl.slots.take_replies([3], [b"Z"], replies_of, {3: None})


def test_make_many_and_decode_many(impl):
    """The multi-key forms of KeyMaker.make and Codec.decode: the same keys and
    values as one call each, missing replies left out, a corrupt one named by key."""
    from django_valkey_fast.compressors.identity import IdentityCompressor
    from django_valkey_fast.exceptions import DecodeError
    from django_valkey_fast.serializers.pickle import PickleSerializer

    keys = key_maker(impl, "p", 3)
    assert keys.make_many(["a", 7], None) == [keys.make("a"), keys.make(7)]
    assert keys.make_many(["a"], 2) == ["p:2:a"]
    codec = impl.codec.Codec(PickleSerializer({}), IdentityCompressor({}), 0, 15, None)
    replies = [codec.encode({"x": 1}), None, b"12"]
    assert codec.decode_many(["a", "b", "c"], ["p:3:a", "p:3:b", "p:3:c"], replies) == {
        "a": {"x": 1}, "c": 12}
    with pytest.raises(DecodeError, match="p:3:z"):
        codec.decode_many(["z"], ["p:3:z"], [b"\x80\x05corrupt"])


def test_key_slot_of_str_subclasses_bytes_and_hash_tags(impl):
    """The slot of a key is the slot of its text, whatever its type says of itself:
    a SafeString (whose __str__ returns itself), a CacheKey, bytes, bytearray and
    memoryview agree with the plain str; both twins agree; split_keys placing by
    key_slot (the compiled shortcut) agrees with calling it."""
    from django.utils.safestring import mark_safe

    from django_valkey_fast._common import CacheKey

    expected = impl.slots.key_slot("user:{42}")
    assert expected == impl.slots.key_slot("{42}") == impl.slots.key_slot("42") == 8000
    for key in (mark_safe("user:{42}"), CacheKey("user:{42}"), b"user:{42}",
                bytearray(b"user:{42}"), memoryview(b"user:{42}")):
        assert impl.slots.key_slot(key) == expected, type(key)
    assert impl.slots.key_slot("caf\u00e9") == impl.slots.key_slot("caf\u00e9".encode())
    keys = ("MGET", "a", mark_safe("b{x}"), b"c", CacheKey("{x}d"))
    parts, spots = impl.slots.split_keys(keys, impl.slots.key_slot)
    by_call = {}
    for position, key in enumerate(keys[1:], 1):
        by_call.setdefault(impl.slots.key_slot(key), []).append(position)
    assert spots == list(by_call.values())
    assert [place for place, _ in parts] == list(by_call)
    with pytest.raises(IndexError):
        impl.slots.split_keys((), impl.slots.key_slot)
    with pytest.raises(IndexError):
        impl.slots.merge_values([[5]], 2, [[b"v"]])


def test_fd_readable_agrees_on_every_descriptor(impl):
    """The reuse and client-side-cache checks' poll: readable when bytes wait, the peer
    closed, or the descriptor is closed; False for a negative one; both twins."""
    import socket as socket_module

    left, right = socket_module.socketpair()
    try:
        assert impl.wire.fd_readable(left.fileno()) is False
        right.sendall(b"x")
        assert impl.wire.fd_readable(left.fileno()) is True
        left.recv(1)
        right.close()
        assert impl.wire.fd_readable(left.fileno()) is True  # (EOF)
    finally:
        left.close()
    closed = left.fileno()
    assert closed == -1 and impl.wire.fd_readable(closed) is False
    import os

    number = next(n for n in range(900, 1000) if not _is_open(os, n))
    assert impl.wire.fd_readable(number) is True  # (no such descriptor: POLLNVAL)
    with pytest.raises(OverflowError):
        impl.wire.fd_readable(2 ** 40)


def _is_open(os, number) -> bool:
    try:
        os.fstat(number)
    except OSError:
        return False
    return True


def test_an_unencodable_str_fails_before_later_arguments(impl):
    """Both twins encode arguments in order: a lone surrogate is a UnicodeEncodeError
    even when a later argument is of a type no command takes."""
    with pytest.raises(UnicodeEncodeError):
        impl.wire.pack_command(("SET", "\ud800", object()))
    with pytest.raises(UnicodeEncodeError):
        impl.wire.pack_commands([("SET", "\ud800", b"v"), ("SET", "k", object())])


def test_split_by_node(impl):
    """get_many's cluster split in one pass: each slot's keys as one part (a lone key
    as GET), parts numbered in first-seen order and grouped by the node serving the
    slot; one slot for every key, or fewer than two keys: nothing to split."""
    a, b = impl.slots.key_slot("{a}"), impl.slots.key_slot("{b}")
    slots = [None] * 16384
    slots[a], slots[b] = ("n1", 1), ("n2", 2)
    command = ("MGET", "{a}1", "{b}1", "{a}2")
    assert impl.slots.split_by_node(command, slots, "GET") == (
        {("n1", 1): ([0], [("MGET", "{a}1", "{a}2")]), ("n2", 2): ([1], [("GET", "{b}1")])},
        [[1, 3], [2]])
    assert impl.slots.split_by_node(("MGET", "{a}1", "{a}2"), slots, "GET") == (None, None)
    assert impl.slots.split_by_node(("MGET", "{a}1"), slots, "GET") == (None, None)
    slots[b] = None
    with pytest.raises(LookupError) as unserved:
        impl.slots.split_by_node(command, slots, "GET")
    assert unserved.value.args == (b,)


def test_group_parts_of_a_list_and_place_values(impl):
    """get_many's cluster path: a list of parts grouped by node in order (a slot no
    node serves is LookupError), and each part's MGET reply put at its keys' places;
    the parts whose reply is an error or missing are handed back to run again."""
    from valkey.exceptions import MovedError, ResponseError

    slots = [("n1", 1)] * 2 + [("n2", 2)] + [None]
    parts = [(0, ("MGET", "a", "c")), (2, ("MGET", "b")), (1, ("MGET", "d"))]
    assert impl.slots.group_parts(slots, parts, None) == {
        ("n1", 1): ([0, 2], [("MGET", "a", "c"), ("MGET", "d")]),
        ("n2", 2): ([1], [("MGET", "b")])}
    with pytest.raises(LookupError) as unserved:
        impl.slots.group_parts(slots, [(3, ("MGET", "x"))], None)
    assert unserved.value.args == (3,)
    spots = [[1, 3], [2], [4]]
    values = [None] * 4
    moved = MovedError("2 127.0.0.1:7001")
    assert impl.slots.place_values(values, spots, [0, 2], [[b"A", b"C"], moved]) == [2]
    assert values == [b"A", None, b"C", None]
    assert impl.slots.place_values(values, spots, [1, 2], [[b"B"]]) == [2]  # (no reply)
    assert values == [b"A", b"B", b"C", None]
    # A one-key part's GET reply (bytes, or None: no such key) is placed as it is; an
    # error is not a value, whatever the part's size.
    values = [b"old"] * 4
    wrong = ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
    assert impl.slots.place_values(values, spots, [1, 2, 0], [b"B", None, wrong]) == [0]
    assert values == [b"old", b"B", b"old", None]
    # With a decoder: each value placed decoded (told its key), a missing key's None
    # not placed; an error reply is still handed back.
    command = ("MGET", "ka", "kb", "kc", "kd")
    values = ["absent"] * 4
    assert impl.slots.place_values(values, spots, [0, 1, 2], [[b"A", None], b"B", wrong],
                                   lambda value, key: (key, value), command) == [2]
    assert values == [("ka", b"A"), ("kb", b"B"), "absent", "absent"]
