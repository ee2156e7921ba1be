"""Property tests: both twins give the same output, or the same error, for any input.

Collected only when the compiled twins are expected (see conftest.py).
"""

import warnings

from django.core.cache.backends.base import default_key_func
from hypothesis import given, settings, strategies as st

from django_valkey_fast import _codec_c, _codec_py, _slots_c, _slots_py, _wire_c, _wire_py
from tests.test_twins import make_codec


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


def _outcome(function, *args):
    try:
        return ("ok", function(*args))
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


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=50), st.integers(),
                          st.floats(allow_nan=False), st.booleans()), min_size=1, max_size=6))
def test_pack_twins_agree(args):
    assert _outcome(_wire_py.pack_command, args) == _outcome(_wire_c.pack_command, args)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=20).map(lambda t: "{" + t + "}x"))
def test_slot_twins_agree(key):
    assert _slots_py.key_slot(key) == _slots_c.key_slot(key)
