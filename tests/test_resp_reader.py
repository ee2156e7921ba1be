"""The pure-Python RESP reader gives what libvalkey's Reader gives, chunk by chunk."""

import libvalkey
from hypothesis import given, settings, strategies as st
from valkey._parsers.base import BaseParser
from valkey.exceptions import InvalidResponse, NoScriptError, ResponseError

from django_valkey_fast._resp_py import Reader as PureReader


def encode(value) -> bytes:
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, str):  # a simple string or an error
        return value.encode() + b"\r\n"
    return b"*%d\r\n" % len(value) + b"".join(encode(v) for v in value)


replies = st.recursive(
    st.none() | st.integers(-2**63, 2**63 - 1) | st.binary(max_size=50)
    | st.sampled_from(["+OK", "+QUEUED", "-ERR bad thing", "-NOSCRIPT No matching script."]),
    lambda children: st.lists(children, max_size=5),
    max_leaves=12,
)


def comparable(value):
    if isinstance(value, Exception):
        return (type(value), str(value))
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def read_all(reader, data, cuts):
    out = []
    points = sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]
    start = 0
    for point in points:
        reader.feed(data[start:point])
        start = point
        while (reply := reader.gets()) is not False:
            out.append(comparable(reply))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(replies, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_pure_reader_matches_libvalkey(values, cuts):
    data = b"".join(encode(v) for v in values)
    kwargs = {"protocolError": InvalidResponse, "replyError": BaseParser.parse_error}
    expected = read_all(libvalkey.Reader(**kwargs), data, cuts)
    assert read_all(PureReader(**kwargs), data, cuts) == expected
    assert len(expected) == len(values)


def test_error_types():
    reader = PureReader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
    reader.feed(b"-NOSCRIPT No matching script.\r\n-ERR x\r\n")
    assert isinstance(reader.gets(), NoScriptError)
    error = reader.gets()
    assert type(error) is ResponseError and str(error) == "x"
    assert reader.gets() is False


def test_protocol_error():
    reader = PureReader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
    reader.feed(b"?what\r\n")
    try:
        reader.gets()
    except InvalidResponse as error:
        assert "Protocol error" in str(error)
    else:
        raise AssertionError("no protocol error")
