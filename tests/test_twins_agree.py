"""Property tests: both twins give the same output, or the same error, for any input.

Collected only when the compiled twins are expected (see conftest.py).
"""

import math
import warnings

from django.core.cache.backends.base import default_key_func
from hypothesis import given, settings, strategies as st

from django_valkey_fast import _codec_c, _codec_py, _slots_c, _slots_py, _wire_c, _wire_py
from tests.test_round_trip import (
    COMPRESSORS, SERIALIZERS, codec as round_trip_codec, stored_bytes,
    values as round_trip_values,
)
from tests.test_twins import make_codec


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


def _outcome(function, *args):
    try:
        result = function(*args)
        if isinstance(result, float) and math.isnan(result):
            return ("ok", "nan")  # nan != nan: compare that both read a nan
        return ("ok", result)
    except Exception as error:  # noqa: BLE001 - comparing the errors is the point
        return ("error", type(error), str(error))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | st.from_regex(rb"-?[0-9]{1,30}(\.[0-9]*)?", fullmatch=True))
def test_decode_twins_agree(data):
    pure = make_codec(type("I", (), {"codec": _codec_py}))
    compiled = make_codec(type("I", (), {"codec": _codec_c}))
    assert _outcome(pure.decode, data, "k") == _outcome(compiled.decode, data, "k")


@settings(max_examples=200, deadline=None)
@given(json_like)
def test_encode_twins_agree(value):
    for compressor in ("identity.IdentityCompressor", "zlib.ZlibCompressor"):
        pure = make_codec(type("I", (), {"codec": _codec_py}), compressor=compressor)
        compiled = make_codec(type("I", (), {"codec": _codec_c}), compressor=compressor)
        assert _outcome(pure.encode, value) == _outcome(compiled.encode, value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.one_of(st.none(), st.integers(-5, 5)))
def test_key_twins_agree(key, version):
    results = []
    for module in (_codec_py, _codec_c):
        maker = module.KeyMaker("pre", 1, default_key_func, True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            made = maker.make(key, version)
        results.append((made, [str(w.message) for w in caught]))
    assert results[0] == results[1]


class StrSub(str):
    """A str subclass, as a custom KEY_FUNCTION may return (Django's SafeString is one)."""


# What a custom KEY_FUNCTION may return: a str, a str subclass, or (a bug in the user's
# function) None, bytes or a number. Both twins must make the same key or raise the same
# clear TypeError; the compiled one used to read None as a str (out of bounds).
key_results = st.one_of(
    st.text(max_size=300), st.text(max_size=30).map(StrSub), st.none(),
    st.binary(max_size=30), st.integers(), st.floats(allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(key_results, st.booleans(), st.one_of(st.none(), st.integers(-5, 5)))
def test_custom_key_function_twins_agree(result, validate, version):
    outcomes = []
    for module in (_codec_py, _codec_c):
        maker = module.KeyMaker("pre", 1, lambda key, prefix, version: result, False, validate)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = _outcome(maker.make, "k", version)
            pattern = _outcome(maker.make_pattern, "k*", version)
        if outcome[0] == "ok":
            assert type(outcome[1]) is str  # an exact str goes to the wire layer
        outcomes.append((outcome, pattern, [str(w.message) for w in caught]))
    assert outcomes[0] == outcomes[1]
    if isinstance(result, str):
        assert outcomes[0][0] == ("ok", str.__str__(result))
    else:
        assert outcomes[0][0][:2] == ("error", TypeError)


@settings(max_examples=200, deadline=None)
@given(key_results)
def test_check_key_twins_agree(key):
    outcomes = []
    for module in (_codec_py, _codec_c):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = _outcome(module.check_key, key)
        outcomes.append((outcome, [str(w.message) for w in caught]))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=40, deadline=None)
@given(round_trip_values)
def test_codec_twins_agree_for_every_serializer_and_compressor(value):
    """Same stored bytes (or the same error) and the same value read back, whatever the
    serializer and the compressor (int and str subclasses, enums, Decimal, datetimes...)."""
    pure_impl = type("I", (), {"codec": _codec_py})
    compiled_impl = type("I", (), {"codec": _codec_c})
    for serializer in SERIALIZERS:
        for compressor in COMPRESSORS:
            pure = round_trip_codec(pure_impl, serializer, compressor)
            compiled = round_trip_codec(compiled_impl, serializer, compressor)
            stored = _outcome(pure.encode, value)
            assert stored == _outcome(compiled.encode, value), (serializer, compressor)
            if stored[0] == "ok":
                data = stored_bytes(stored[1])
                assert _outcome(pure.decode, data, "k") == \
                    _outcome(compiled.decode, data, "k"), (serializer, compressor)


argument = st.one_of(st.binary(max_size=300), st.text(max_size=50), st.integers(),
                     st.floats(allow_nan=False), st.booleans())
containers = st.sampled_from([list, tuple, iter, lambda args: (a for a in args)])


@settings(max_examples=300, deadline=None)
@given(st.lists(argument, min_size=1, max_size=6), containers)
def test_pack_twins_agree_for_any_iterable(args, container):
    """A generator, an iterator, a list or a tuple of arguments: the same bytes."""
    assert _outcome(_wire_py.pack_command, container(args)) == \
        _outcome(_wire_c.pack_command, container(args))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=20).map(lambda t: "{" + t + "}x"))
def test_slot_twins_agree(key):
    assert _slots_py.key_slot(key) == _slots_c.key_slot(key)


# Keys that share slots often: hash tags from a small set, plain keys from a larger one.
cluster_keys = st.lists(
    st.sampled_from(["{a}", "{b}", "{c}"]).flatmap(lambda tag: st.text(max_size=3).map(
        lambda text: tag + text)) | st.text(max_size=4) | st.binary(max_size=4),
    min_size=0, max_size=40)


@settings(max_examples=300, deadline=None)
@given(cluster_keys, st.sampled_from([tuple, list]))
def test_split_by_slot_twins_agree(keys, container):
    """Splitting a multi-key command by slot (the compiled twin groups in C): the same
    parts, in the same order, with the same spots, or the same error."""
    for command in (container(["MGET", *keys]), container(["DEL", *keys, *keys])):
        assert _outcome(_slots_py.split_keys, command, _slots_py.key_slot) == \
            _outcome(_slots_c.split_keys, command, _slots_c.key_slot)
        assert _outcome(_slots_py.split_keys, command, _slots_py.key_slot, "GET") == \
            _outcome(_slots_c.split_keys, command, _slots_c.key_slot, "GET")


def _slot_map(unserved: bool) -> list:
    """Three nodes over the slots; the third node's entries are equal tuples, not one
    object (as after a MOVED), and with ``unserved`` a range no node serves."""
    first, second = ("10.0.0.1", 7000), ("10.0.0.2", 7000)
    host = "10.0.0."  # (built at run time: a constant tuple would be one object)
    slots = [first] * 5000 + [second] * 5000 + [(host + str(3), 7000) for _ in range(6384)]
    assert slots[10000] == slots[16383] and slots[10000] is not slots[16383]
    if unserved:
        slots[12000:13000] = [None] * 1000
    return slots


@settings(max_examples=300, deadline=None)
@given(cluster_keys, st.sampled_from([tuple, list]), st.booleans())
def test_split_by_node_twins_agree(keys, container, unserved):
    """get_many's cluster split (the compiled twin splits and groups by node in one
    pass): the same nodes, part numbers, commands and spots as ``split_keys`` then
    ``group_parts``, or the same error (LookupError for a slot no node serves)."""
    slots = _slot_map(unserved)
    command = container(["MGET", *keys])

    def ordered(split):  # (the nodes' order too: the order pipelines are written in)
        def outcome():
            per_node, spots = split(command, slots, "GET")
            return None if per_node is None else list(per_node.items()), spots
        return _outcome(outcome)

    pure, compiled = ordered(_slots_py.split_by_node), ordered(_slots_c.split_by_node)
    assert pure == compiled
    if len(keys) < 2:  # (no keys, or one: nothing to split)
        assert pure == ("ok", (None, None))
